// Reading the float16 probability maps medpipe.predict writes (`<id>.probs.npy`). The imaging
// library's npy reader has no half floats (no typed array holds them), so this reader widens
// them to float32 through a 65536-entry table: every half value maps exactly to one float.
import { readFile } from "node:fs/promises";

export interface Float16Npy {
  /** Widened to float32, in the file's element order. */
  data: Float32Array;
  shape: number[];
  fortranOrder: boolean;
}

let table: Float32Array | undefined;

/** float32 value of every float16 bit pattern (IEEE 754 binary16, subnormals included). */
function halfTable(): Float32Array {
  if (table) return table;
  table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    let v: number;
    if (exp === 0) v = frac * 2 ** -24;
    else if (exp === 31) v = frac ? Number.NaN : Infinity;
    else v = (1 + frac / 1024) * 2 ** (exp - 15);
    table[h] = sign * v;
  }
  return table;
}

export async function readNpyFloat16(path: string): Promise<Float16Npy> {
  const bytes = await readFile(path);
  if (bytes.length < 10 || bytes.toString("latin1", 0, 6) !== "\x93NUMPY")
    throw new Error(`${path}: not a .npy file`);
  const major = bytes[6] as number;
  const headerLen = major === 1 ? bytes.readUInt16LE(8) : bytes.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + headerLen;
  const header = bytes.toString("latin1", major === 1 ? 10 : 12, start);
  const descr = /'descr'\s*:\s*'([<>|=]?)f2'/.exec(header);
  const order = /'fortran_order'\s*:\s*(True|False)/.exec(header);
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
  if (!descr || !order || !shape) throw new Error(`${path}: not a float16 .npy (header ${header.trim()})`);
  if (descr[1] === ">") throw new Error(`${path}: big-endian float16 is not supported`);
  const dims = (shape[1] as string)
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  const count = dims.reduce((a, b) => a * b, 1);
  if (bytes.length - start < 2 * count)
    throw new Error(`${path}: truncated: ${bytes.length - start} data bytes for ${count} values`);
  const t = halfTable();
  const data = new Float32Array(count);
  // One aligned copy of the payload as 16-bit words (the host is little-endian, like the file).
  const words = new Uint16Array(count);
  new Uint8Array(words.buffer).set(bytes.subarray(start, start + 2 * count));
  for (let i = 0; i < count; i++) data[i] = t[words[i] as number] as number;
  return { data, shape: dims, fortranOrder: order[1] === "True" };
}
