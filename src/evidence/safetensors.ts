// Reading safetensors as data, for the verifier: the header, each tensor's digest (the same
// definition as medpipe/safetensors_io.py, so Python and TypeScript agree), and whether every
// float is finite. Nothing is decoded into a framework; the file is never executed.
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

export interface TensorEntry {
  name: string;
  dtype: string;
  shape: number[];
  /** Byte range inside the data section. */
  begin: number;
  end: number;
}

export interface SafetensorsFile {
  path: string;
  metadata: Record<string, string>;
  tensors: TensorEntry[];
  /** The data section (everything after the header). */
  data: Buffer;
}

const ITEM: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

export class SafetensorsError extends Error {}

export function readSafetensors(path: string): SafetensorsFile {
  return parseSafetensors(readFileSync(path), path);
}

/** Parses safetensors bytes already in memory (the verifier's, read and hashed once); `path` names them in errors. */
export function parseSafetensors(buf: Buffer, path: string): SafetensorsFile {
  const fail = (why: string): never => {
    throw new SafetensorsError(`${path}: ${why}`);
  };
  if (buf.length < 8) fail("too short for a safetensors header");
  const n = Number(buf.readBigUInt64LE(0));
  if (n > buf.length - 8 || n > 100_000_000) fail(`header length ${n} does not fit the file`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8")) as Record<string, unknown>;
  } catch {
    return fail("the header is not JSON");
  }
  const data = buf.subarray(8 + n);
  const metadata = (header.__metadata__ ?? {}) as Record<string, string>;
  const tensors: TensorEntry[] = [];
  for (const [name, v] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const t = v as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
    const item = ITEM[t.dtype ?? ""];
    if (!item || !Array.isArray(t.shape) || !Array.isArray(t.data_offsets))
      fail(`tensor ${name}: bad header entry`);
    const [begin, end] = t.data_offsets as [number, number];
    const count = (t.shape as number[]).reduce((a, b) => a * b, 1);
    if (begin < 0 || end > data.length || end - begin !== count * (item as number))
      fail(`tensor ${name}: bad data offsets`);
    tensors.push({ name, dtype: t.dtype as string, shape: t.shape as number[], begin, end });
  }
  return { path, metadata, tensors, data };
}

/** sha256 of "<DTYPE>:<d0>,<d1>,...\n" followed by the tensor's raw little-endian bytes. */
export function tensorDigests(f: SafetensorsFile): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of f.tensors) {
    out[t.name] = createHash("sha256")
      .update(`${t.dtype}:${t.shape.join(",")}\n`, "ascii")
      .update(f.data.subarray(t.begin, t.end))
      .digest("hex");
  }
  return out;
}

/** One digest for a model: sha256 over "<name>\t<digest>\n" lines sorted by name. */
export function digestOfDigests(digests: Record<string, string>): string {
  const h = createHash("sha256");
  for (const name of Object.keys(digests).sort()) h.update(`${name}\t${digests[name]}\n`, "utf8");
  return h.digest("hex");
}

/** Exponent bits of each float format, in the little-endian word that holds them: all set is inf or NaN. */
const EXPONENT: Record<string, { bits: 16 | 32; mask: number; stride: number; offset: number }> = {
  F32: { bits: 32, mask: 0x7f800000, stride: 1, offset: 0 },
  F64: { bits: 32, mask: 0x7ff00000, stride: 2, offset: 1 }, // the high word of each double
  F16: { bits: 16, mask: 0x7c00, stride: 1, offset: 0 },
  BF16: { bits: 16, mask: 0x7f80, stride: 1, offset: 0 },
};

/** Names of float tensors holding a NaN or an infinity. */
export function nonFiniteTensors(f: SafetensorsFile): string[] {
  const bad: string[] = [];
  for (const t of f.tensors) {
    const e = EXPONENT[t.dtype];
    if (!e) continue;
    // An aligned copy, read as words (the hosts Node runs on are little-endian, as the file is).
    const copy = new Uint8Array(f.data.subarray(t.begin, t.end)).buffer;
    const words = e.bits === 32 ? new Uint32Array(copy) : new Uint16Array(copy);
    for (let i = e.offset; i < words.length; i += e.stride)
      if (((words[i] as number) & e.mask) >>> 0 === e.mask) {
        bad.push(t.name);
        break;
      }
  }
  return bad;
}
