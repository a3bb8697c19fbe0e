import { type ByteSource, openByteSource } from "./byte-source.js";
import { dtypeInfo, swapBytes } from "./dtype.js";
import { ImageReadError, reason } from "./errors.js";
import {
  HeaderProblem,
  type NiftiHeader,
  parseNiftiHeader,
  sniffNifti,
  voxOffsetOf,
} from "./nifti-header.js";
import type { Dtype, Image, VoxelArray } from "./types.js";

/** An image read from a NIfTI file, with the header facts it came with. */
export interface NiftiImage extends Image {
  header: NiftiHeader;
}

export interface NiftiReadOptions {
  /**
   * Element type of scaled data (only used when scl_slope/scl_inter apply).
   * Default: float64 for int32, uint32 and float64 files (float32 would lose
   * digits), float32 otherwise. nibabel always yields float64; values agree to
   * float32 rounding. Scaling is computed in float64 either way.
   */
  scaledDtype?: "float32" | "float64";
}

/** Reads only the header (a .nii.gz is inflated just far enough). */
export async function readNiftiHeader(path: string): Promise<NiftiHeader> {
  const source = await openSource(path);
  try {
    return await readHeaderFrom(source, path);
  } finally {
    await source.close();
  }
}

/**
 * Reads a NIfTI-1 or NIfTI-2 `.nii` / `.nii.gz` file: voxels in file order
 * (first axis fastest), scaled as nibabel scales them, with nibabel's best affine.
 */
export async function readNifti(path: string, options: NiftiReadOptions = {}): Promise<NiftiImage> {
  const source = await openSource(path);
  try {
    const header = await readHeaderFrom(source, path);
    const info = dtypeInfo(header.storedDtype);
    const count = header.shape.reduce((a, b) => a * b, 1);
    let raw: VoxelArray;
    try {
      raw = new info.ctor(count);
    } catch {
      throw new ImageReadError(path, `cannot allocate ${count} voxels of ${info.dtype}`);
    }
    const bytes = new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength);
    const got = await readOrFail(source, bytes, path);
    if (got < bytes.length)
      throw new ImageReadError(path, `truncated: ${got} of ${bytes.length} data bytes present`);
    if (!header.littleEndian) swapBytes(bytes, info.bytes);
    const { data, dtype } = applyScaling(raw, header, options);
    return {
      data,
      dtype,
      shape: header.shape.slice(),
      spacing: header.zooms.slice(),
      affine: header.affine.slice(),
      header,
    };
  } finally {
    await source.close();
  }
}

async function openSource(path: string): Promise<ByteSource> {
  try {
    return await openByteSource(path);
  } catch (err) {
    throw new ImageReadError(path, `cannot open (${reason(err)})`);
  }
}

async function readOrFail(source: ByteSource, into: Uint8Array, path: string): Promise<number> {
  try {
    return await source.read(into);
  } catch (err) {
    const why = reason(err);
    const gz = source.compressed ? "corrupt or truncated gzip stream" : "read failed";
    throw new ImageReadError(path, `${gz} (${why})`);
  }
}

async function readHeaderFrom(source: ByteSource, path: string): Promise<NiftiHeader> {
  const first = new Uint8Array(4);
  if ((await readOrFail(source, first, path)) < 4)
    throw new ImageReadError(path, "truncated: no NIfTI header");
  const sniff = sniffNifti(first);
  if (!sniff) throw new ImageReadError(path, "not a NIfTI file (sizeof_hdr is neither 348 nor 540)");
  const head = new Uint8Array(sniff.size);
  head.set(first);
  if ((await readOrFail(source, head.subarray(4), path)) < sniff.size - 4)
    throw new ImageReadError(path, "truncated: header incomplete");
  // The extensions lie between the header and the voxels; nifti-reader-js parses them from one buffer.
  const offset = voxOffsetOf(head, sniff.size, sniff.littleEndian);
  const whole = new Uint8Array(offset);
  whole.set(head);
  if ((await readOrFail(source, whole.subarray(sniff.size), path)) < offset - sniff.size)
    throw new ImageReadError(path, "truncated: ends before the voxel data starts");
  try {
    return parseNiftiHeader(whole);
  } catch (err) {
    if (err instanceof HeaderProblem) throw new ImageReadError(path, err.message);
    throw err;
  }
}

function applyScaling(
  raw: VoxelArray,
  header: NiftiHeader,
  options: NiftiReadOptions,
): { data: VoxelArray; dtype: Dtype } {
  if (!header.scaling) return { data: raw, dtype: header.storedDtype };
  const wide =
    header.storedDtype === "int32" || header.storedDtype === "uint32" || header.storedDtype === "float64";
  const dtype = options.scaledDtype ?? (wide ? "float64" : "float32");
  const out = dtype === "float64" ? new Float64Array(raw.length) : new Float32Array(raw.length);
  const { slope, inter } = header.scaling;
  for (let i = 0; i < raw.length; i++) out[i] = raw[i]! * slope + inter;
  return { data: out, dtype };
}
