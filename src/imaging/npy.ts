import { open, rename, rm, writeFile } from "node:fs/promises";
import { dtypeFromNpyKind, dtypeInfo, dtypeOfArray, swapBytes } from "./dtype.js";
import { ImageReadError, ImageWriteError, reason } from "./errors.js";
import type { Dtype, Volume, VoxelArray } from "./types.js";

/** A numpy array as stored in a `.npy` file: flat data in the file's order. */
export interface NpyArray {
  data: VoxelArray;
  dtype: Dtype;
  shape: number[];
  /** true: first axis fastest (the Volume order); false: last axis fastest (numpy's default C order). */
  fortranOrder: boolean;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** Reads a `.npy` file (format versions 1-3; little- or big-endian; the dtypes of `Dtype`). */
export async function readNpy(path: string): Promise<NpyArray> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(path, "r");
  } catch (err) {
    throw new ImageReadError(path, `cannot open (${reason(err)})`);
  }
  try {
    const pre = new Uint8Array(12);
    const { bytesRead } = await handle.read(pre, 0, 12, 0);
    if (bytesRead < 10 || MAGIC.some((m, i) => pre[i] !== m))
      throw new ImageReadError(path, "not a .npy file (bad magic)");
    const major = pre[6]!;
    if (major < 1 || major > 3)
      throw new ImageReadError(path, `unsupported .npy format version ${major}.${pre[7]}`);
    const view = new DataView(pre.buffer);
    const lenBytes = major === 1 ? 2 : 4;
    const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
    const start = 8 + lenBytes;
    const text = Buffer.alloc(headerLen);
    if ((await handle.read(text, 0, headerLen, start)).bytesRead < headerLen)
      throw new ImageReadError(path, "truncated: header incomplete");
    const meta = parseHeader(text.toString(major === 3 ? "utf8" : "latin1"), path);
    const count = meta.shape.reduce((a, b) => a * b, 1);
    const info = dtypeInfo(meta.dtype);
    const data = new info.ctor(count);
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    let got = 0;
    while (got < bytes.length) {
      const r = await handle.read(bytes, got, bytes.length - got, start + headerLen + got);
      if (r.bytesRead === 0) break;
      got += r.bytesRead;
    }
    if (got < bytes.length)
      throw new ImageReadError(path, `truncated: ${got} of ${bytes.length} data bytes present`);
    if (meta.bigEndian) swapBytes(bytes, info.bytes);
    return { data, dtype: meta.dtype, shape: meta.shape, fortranOrder: meta.fortranOrder };
  } finally {
    await handle.close();
  }
}

/**
 * A `.npy` from bytes already in memory (`path` names it in errors): the same formats and
 * checks as readNpy. The data is a copy, aligned for its typed array.
 */
export function parseNpyBuffer(bytes: Uint8Array, path: string): NpyArray {
  if (bytes.length < 10 || MAGIC.some((m, i) => bytes[i] !== m))
    throw new ImageReadError(path, "not a .npy file (bad magic)");
  const major = bytes[6]!;
  if (major < 1 || major > 3)
    throw new ImageReadError(path, `unsupported .npy format version ${major}.${bytes[7]}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const start = major === 1 ? 10 : 12;
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  if (bytes.length < start + headerLen) throw new ImageReadError(path, "truncated: header incomplete");
  const text = Buffer.from(bytes.buffer, bytes.byteOffset + start, headerLen);
  const meta = parseHeader(text.toString(major === 3 ? "utf8" : "latin1"), path);
  const count = meta.shape.reduce((a, b) => a * b, 1);
  const info = dtypeInfo(meta.dtype);
  const data = new info.ctor(count);
  const out = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const body = bytes.subarray(start + headerLen);
  if (body.length < out.length)
    throw new ImageReadError(path, `truncated: ${body.length} of ${out.length} data bytes present`);
  out.set(body.subarray(0, out.length));
  if (meta.bigEndian) swapBytes(out, info.bytes);
  return { data, dtype: meta.dtype, shape: meta.shape, fortranOrder: meta.fortranOrder };
}

function parseHeader(
  text: string,
  path: string,
): { dtype: Dtype; bigEndian: boolean; fortranOrder: boolean; shape: number[] } {
  // The header is a Python dict literal with three fixed keys; a regex per key is enough.
  const descr = /'descr'\s*:\s*'([<>|=])([a-z]\d+)'/.exec(text);
  const order = /'fortran_order'\s*:\s*(True|False)/.exec(text);
  const shape = /'shape'\s*:\s*\(([^)]*)\)/.exec(text);
  if (!descr || !order || !shape)
    throw new ImageReadError(path, `malformed .npy header ${JSON.stringify(text.trim())}`);
  const info = dtypeFromNpyKind(descr[2]!);
  if (!info) throw new ImageReadError(path, `unsupported .npy dtype '${descr[1]}${descr[2]}'`);
  const dims = shape[1]!
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map(Number);
  if (dims.some((n) => !Number.isInteger(n) || n < 0))
    throw new ImageReadError(path, `malformed .npy shape (${shape[1]})`);
  return { dtype: info.dtype, bigEndian: descr[1] === ">", fortranOrder: order[1] === "True", shape: dims };
}

/**
 * Writes a `.npy` file (version 1.0 unless the header needs 2.0), little-endian.
 * `dtype: "bool"` stores a Uint8Array of 0/1 as numpy bool.
 */
export async function writeNpy(path: string, array: NpyArray): Promise<void> {
  const { data, shape } = array;
  const native = dtypeOfArray(data);
  if (array.dtype !== native && !(array.dtype === "bool" && native === "uint8"))
    throw new ImageWriteError(path, `dtype ${array.dtype} does not match the ${native} data`);
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length)
    throw new ImageWriteError(
      path,
      `shape (${shape.join(", ")}) needs ${count} elements, data has ${data.length}`,
    );
  const kind = dtypeInfo(array.dtype).npyKind;
  const byteOrder = kind.endsWith("1") ? "|" : "<";
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  const dict = `{'descr': '${byteOrder}${kind}', 'fortran_order': ${array.fortranOrder ? "True" : "False"}, 'shape': ${shapeText}, }`;
  // numpy pads the header with spaces and a newline so the data starts on a 64-byte boundary.
  const padded = (pre: number) => Math.ceil((pre + dict.length + 1) / 64) * 64;
  const v1 = padded(10) - 10 < 65536;
  const pre = v1 ? 10 : 12;
  const total = padded(pre);
  const head = Buffer.alloc(total, 0x20);
  head.set(MAGIC, 0);
  head[6] = v1 ? 1 : 2;
  head[7] = 0;
  if (v1) head.writeUInt16LE(total - pre, 8);
  else head.writeUInt32LE(total - pre, 8);
  head.write(dict, pre, "latin1");
  head[total - 1] = 0x0a;
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    await writeFile(tmp, [head, new Uint8Array(data.buffer, data.byteOffset, data.byteLength)]);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new ImageWriteError(path, `write failed (${reason(err)})`);
  }
}

/**
 * The npy form of a Volume: Fortran order with shape = volume.shape, so that
 * numpy's `arr[x, y, z]` is voxel (x, y, z). Shares the buffer (no copy).
 */
export function volumeToNpy(volume: Volume, dtype?: Dtype): NpyArray {
  return {
    data: volume.data,
    dtype: dtype ?? dtypeOfArray(volume.data),
    shape: volume.shape.slice(),
    fortranOrder: true,
  };
}

/**
 * A Volume holding the same array: `arr[i, j, k]` becomes voxel (i, j, k) whatever
 * the file's order. Fortran-order files are used as they are; C-order files are
 * transposed into first-axis-fastest order (one copy).
 */
export function npyToVolume(array: NpyArray, spacing?: number[]): Volume {
  const { shape } = array;
  const data = array.fortranOrder || shape.length <= 1 ? array.data : cToFortran(array.data, shape);
  return { data, shape: shape.slice(), spacing: spacing ?? shape.map(() => 1) };
}

function cToFortran(src: VoxelArray, shape: number[]): VoxelArray {
  const info = dtypeInfo(dtypeOfArray(src));
  const out = new info.ctor(src.length);
  const n = shape.length;
  // Walk the destination in its own order, tracking the source index incrementally.
  const cStride = new Array<number>(n);
  let s = 1;
  for (let a = n - 1; a >= 0; a--) {
    cStride[a] = s;
    s *= shape[a]!;
  }
  const idx = new Array<number>(n).fill(0);
  let from = 0;
  for (let to = 0; to < out.length; to++) {
    out[to] = src[from]!;
    for (let a = 0; a < n; a++) {
      idx[a]!++;
      from += cStride[a]!;
      if (idx[a]! < shape[a]!) break;
      from -= cStride[a]! * shape[a]!;
      idx[a] = 0;
    }
  }
  return out;
}
