// One read per file: a case's file is read into memory once, its sha256 (for the fingerprint)
// taken from those bytes, and a NIfTI image decoded from the same bytes (gunzipped on libuv's
// thread pool in one piece, its voxels a view of the inflated buffer: no second read of the file,
// no per-chunk copies). Only well-formed files take this path: anything irregular (not NIfTI,
// truncated, a bad header, a failed inflate) is handed back as `null`, and the caller reads the
// file with `readNifti`, whose one-line reasons name the problem exactly as before.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { promisify } from "node:util";
import { gunzip } from "node:zlib";
import { dtypeInfo, swapBytes } from "../imaging/dtype.js";
import { type NiftiHeader, parseNiftiHeader, sniffNifti, voxOffsetOf } from "../imaging/nifti-header.js";
import type { NiftiImage } from "../imaging/nifti-read.js";
import type { Dtype, VoxelArray } from "../imaging/types.js";

const inflate = promisify(gunzip);

/** The largest single inflate buffer asked for (bigger files inflate in several chunks). */
const MAX_CHUNK = 1 << 30;

export interface FileBytes {
  bytes: Buffer;
  sha256: string;
}

/** The file's bytes and their sha256; throws what `readFile` throws. */
export async function readWithDigest(path: string): Promise<FileBytes> {
  const bytes = await readFile(path);
  return { bytes, sha256: createHash("sha256").update(bytes).digest("hex") };
}

/**
 * The image a `.nii` / `.nii.gz` file's bytes hold, as `readNifti` reads it (same voxels, dtype,
 * scaling, shape, spacing and affine), or null when the bytes are not a well-formed NIfTI file.
 */
export async function decodeNifti(file: Buffer): Promise<NiftiImage | null> {
  let bytes: Uint8Array = file;
  if (file.length >= 18 && file[0] === 0x1f && file[1] === 0x8b) {
    // The gzip trailer holds the inflated size (mod 2^32): one output buffer of that size.
    const size = file.readUInt32LE(file.length - 4);
    try {
      bytes = await inflate(file, { chunkSize: Math.min(MAX_CHUNK, Math.max(1 << 16, size)) });
    } catch {
      return null;
    }
  }
  if (bytes.length < 4) return null;
  const sniff = sniffNifti(bytes.subarray(0, 4));
  if (!sniff || bytes.length < sniff.size) return null;
  const offset = voxOffsetOf(bytes.subarray(0, sniff.size), sniff.size, sniff.littleEndian);
  if (!Number.isSafeInteger(offset) || bytes.length < offset) return null;
  let header: NiftiHeader;
  try {
    header = parseNiftiHeader(bytes.subarray(0, offset));
  } catch {
    return null;
  }
  const info = dtypeInfo(header.storedDtype);
  const count = header.shape.reduce((a, b) => a * b, 1);
  const length = count * info.bytes;
  if (!Number.isSafeInteger(length) || bytes.length - offset < length) return null;
  const start = bytes.byteOffset + offset;
  let raw: VoxelArray;
  if (start % info.bytes === 0) raw = new info.ctor(bytes.buffer as ArrayBuffer, start, count);
  else {
    raw = new info.ctor(count);
    new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength).set(bytes.subarray(offset, offset + length));
  }
  // The buffer is this call's own (read or inflated for it), so it may be swapped in place.
  if (!header.littleEndian) swapBytes(new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength), info.bytes);
  const { data, dtype } = applyScaling(raw, header);
  return {
    data,
    dtype,
    shape: header.shape.slice(),
    spacing: header.zooms.slice(),
    affine: header.affine.slice(),
    header,
  };
}

/** `readNifti`'s scaling with its default element type (float64 for wide types, else float32). */
function applyScaling(raw: VoxelArray, header: NiftiHeader): { data: VoxelArray; dtype: Dtype } {
  if (!header.scaling) return { data: raw, dtype: header.storedDtype };
  const wide =
    header.storedDtype === "int32" || header.storedDtype === "uint32" || header.storedDtype === "float64";
  const out = wide ? new Float64Array(raw.length) : new Float32Array(raw.length);
  const { slope, inter } = header.scaling;
  for (let i = 0; i < raw.length; i++) out[i] = raw[i]! * slope + inter;
  return { data: out, dtype: wide ? "float64" : "float32" };
}
