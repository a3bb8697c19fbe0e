// Readers for the verifier that take bytes already read (and hashed) through Pack, so nothing
// is judged from a second, unhashed read of the same file. Formats are parsed as data only.
import { gunzipSync } from "node:zlib";
import { dtypeInfo, swapBytes } from "../imaging/dtype.js";
import { parseNiftiHeader, sniffNifti, voxOffsetOf } from "../imaging/nifti-header.js";
import { npyToVolume, parseNpyBuffer } from "../imaging/npy.js";
import type { Affine, VoxelArray } from "../imaging/types.js";

export interface NiftiData {
  data: VoxelArray;
  shape: number[];
  spacing: number[];
  /** nibabel's best affine; null for a .npy, which has no placement. */
  affine: Affine | null;
}

/** A .nii or .nii.gz from its bytes: voxels in file order, scaled as nibabel would. */
export function parseNifti(raw: Buffer, rel: string): NiftiData {
  const bytes = raw.length >= 2 && raw[0] === 0x1f && raw[1] === 0x8b ? gunzipSync(raw) : raw;
  const u8 = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const sniff = sniffNifti(u8.subarray(0, 4));
  if (!sniff) throw new Error(`${rel}: not a NIfTI file`);
  const offset = voxOffsetOf(u8.subarray(0, sniff.size), sniff.size, sniff.littleEndian);
  const header = parseNiftiHeader(u8.subarray(0, offset));
  const info = dtypeInfo(header.storedDtype);
  const count = header.shape.reduce((a, b) => a * b, 1);
  if (offset + count * info.bytes > u8.length) throw new Error(`${rel}: truncated voxel data`);
  const stored = new info.ctor(count);
  // A copy, so the typed array is aligned whatever the voxel offset.
  const view = new Uint8Array(stored.buffer, stored.byteOffset, stored.byteLength);
  view.set(u8.subarray(offset, offset + view.length));
  if (!header.littleEndian) swapBytes(view, info.bytes);
  let data: VoxelArray = stored;
  if (header.scaling) {
    const out = new Float64Array(count);
    for (let i = 0; i < count; i++)
      out[i] = (stored[i] as number) * header.scaling.slope + header.scaling.inter;
    data = out;
  }
  return { data, shape: header.shape.slice(), spacing: header.zooms.slice(), affine: header.affine.slice() };
}

/**
 * A label map from its bytes: NIfTI (.nii, .nii.gz), or a 2D/3D `.npy` (the npy2d layout), whose
 * voxels come back first axis fastest like NIfTI's, spacing 1 (as the npy2d reader assumes).
 */
export function parseLabelMap(raw: Buffer, rel: string): NiftiData {
  if (!rel.toLowerCase().endsWith(".npy")) return parseNifti(raw, rel);
  const volume = npyToVolume(parseNpyBuffer(raw, rel));
  return { data: volume.data, shape: volume.shape, spacing: volume.spacing, affine: null };
}

export interface NpyData {
  data: Float32Array | Uint8Array;
  shape: number[];
  fortranOrder: boolean;
}

/** A .npy of float32 or uint8 (what the preprocessed images and grid labels are), from its bytes. */
export function parseNpy(buf: Buffer, rel: string): NpyData {
  if (buf.length < 10 || buf[0] !== 0x93 || buf.toString("latin1", 1, 6) !== "NUMPY")
    throw new Error(`${rel}: not a .npy file`);
  const major = buf[6] as number;
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString("latin1", start, start + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortranOrder = /'fortran_order':\s*True/.test(header);
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || shapeText === undefined) throw new Error(`${rel}: unreadable .npy header`);
  const shape = shapeText
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map(Number);
  const count = shape.reduce((a, b) => a * b, 1);
  const body = buf.subarray(start + headerLen);
  if (descr === "<f4") {
    if (body.length < count * 4) throw new Error(`${rel}: truncated`);
    const data = new Float32Array(count);
    new Uint8Array(data.buffer).set(body.subarray(0, count * 4));
    return { data, shape, fortranOrder };
  }
  if (descr === "|u1" || descr === "<u1") {
    if (body.length < count) throw new Error(`${rel}: truncated`);
    return { data: new Uint8Array(body.subarray(0, count)), shape, fortranOrder };
  }
  throw new Error(`${rel}: dtype ${descr} is not one the verifier reads`);
}
