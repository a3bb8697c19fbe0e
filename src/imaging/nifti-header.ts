import { NIFTI1, NIFTI2 } from "nifti-reader-js";
import { affineFromQform, baseAffine, identity4 } from "./affine.js";
import { type DtypeInfo, dtypeFromNiftiCode } from "./dtype.js";
import type { Affine } from "./types.js";

/** Header facts of a NIfTI file, after the repairs nibabel makes on load. */
export interface NiftiHeader {
  version: 1 | 2;
  littleEndian: boolean;
  /** dim[1..dim[0]]. */
  shape: number[];
  /** pixdim[1..dim[0]]; spatial ones made positive and non-zero as nibabel does. */
  zooms: number[];
  /** On-disk voxel type. */
  storedDtype: DtypeInfo["dtype"];
  datatypeCode: number;
  voxOffset: number;
  sclSlope: number;
  sclInter: number;
  /** The scaling nibabel applies, or null when the data is used as stored. */
  scaling: { slope: number; inter: number } | null;
  qformCode: number;
  sformCode: number;
  qfac: 1 | -1;
  qform: Affine;
  sform: Affine;
  /** nibabel's get_best_affine: sform if its code is set, else qform if set, else the base affine. */
  affine: Affine;
  affineSource: "sform" | "qform" | "base";
  xyztUnits: number;
  intentCode: number;
  description: string;
}

/** A malformed header; the reader adds the file name. */
export class HeaderProblem extends Error {}

export const NIFTI1_HEADER_BYTES = 348;
export const NIFTI2_HEADER_BYTES = 540;

/** Header size and byte order from the first 4 bytes, or null if they are not a NIfTI sizeof_hdr. */
export function sniffNifti(first4: Uint8Array): { size: number; littleEndian: boolean } | null {
  const view = new DataView(first4.buffer, first4.byteOffset, 4);
  for (const littleEndian of [true, false]) {
    const size = view.getInt32(0, littleEndian);
    if (size === NIFTI1_HEADER_BYTES || size === NIFTI2_HEADER_BYTES) return { size, littleEndian };
  }
  return null;
}

/** Where the voxels start, read straight from the bytes (needed before the extensions can be skipped). */
export function voxOffsetOf(header: Uint8Array, size: number, littleEndian: boolean): number {
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  const raw =
    size === NIFTI1_HEADER_BYTES
      ? Math.trunc(view.getFloat32(108, littleEndian))
      : Number(view.getBigInt64(168, littleEndian));
  // nibabel raises a too-low offset of a single file (0 included) to the minimum.
  return Math.max(raw, size + 4);
}

// nibabel resets xform codes outside the NIfTI table to 0 on load.
const xformCode = (code: number): number => (Number.isInteger(code) && code >= 0 && code <= 4 ? code : 0);

/**
 * Parses a header (and any extensions) with nifti-reader-js and derives what
 * nibabel would: repaired pixdims, scaling and the best affine. `bytes` must
 * hold the whole header; srow is read directly because the library only
 * exposes the affine it prefers.
 */
export function parseNiftiHeader(bytes: Uint8Array): NiftiHeader {
  const sniff = sniffNifti(bytes);
  if (!sniff) throw new HeaderProblem("not a NIfTI file (sizeof_hdr is neither 348 nor 540)");
  const version = sniff.size === NIFTI1_HEADER_BYTES ? 1 : 2;
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const view = new DataView(buffer);
  const magic = new TextDecoder("latin1").decode(
    new Uint8Array(buffer, version === 1 ? 344 : 4, version === 1 ? 4 : 8),
  );
  if (version === 1 && magic === "ni1\0")
    throw new HeaderProblem("NIfTI-1 .hdr/.img pairs are not supported; convert to a single .nii file");
  if (version === 1 ? magic !== "n+1\0" : !magic.startsWith("n+2\0"))
    throw new HeaderProblem(`bad NIfTI-${version} magic ${JSON.stringify(magic)}`);

  const hdr = version === 1 ? new NIFTI1() : new NIFTI2();
  try {
    hdr.readHeader(buffer);
  } catch (err) {
    throw new HeaderProblem(`unreadable header (${err instanceof Error ? err.message : String(err)})`);
  }
  const le = sniff.littleEndian;

  const ndim = hdr.dims[0] ?? 0;
  if (!(ndim >= 1 && ndim <= 7)) throw new HeaderProblem(`dim[0] = ${ndim} is outside 1..7`);
  const shape = hdr.dims.slice(1, ndim + 1);
  if (shape.some((n) => !Number.isInteger(n) || n < 1))
    throw new HeaderProblem(`invalid dimensions [${shape.join(", ")}]`);

  const info = dtypeFromNiftiCode(hdr.datatypeCode);
  if (!info)
    throw new HeaderProblem(
      `unsupported datatype ${hdr.datatypeCode} (${hdr.getDatatypeCodeString(hdr.datatypeCode)})`,
    );

  const pixdim = hdr.pixDims.slice();
  for (let i = 1; i <= 3; i++) {
    const p = pixdim[i] ?? 1;
    pixdim[i] = p === 0 || !Number.isFinite(p) ? 1 : Math.abs(p);
  }
  const zooms = shape.map((_, i) => pixdim[i + 1] ?? 1);
  const qfac = pixdim[0] === -1 ? -1 : 1;

  const qformCode = xformCode(hdr.qform_code);
  const sformCode = xformCode(hdr.sform_code);
  const [b, c, d] = [hdr.quatern_b, hdr.quatern_c, hdr.quatern_d];
  const normSq = b * b + c * c + d * d;
  // nibabel tolerates rounding just past 1 (a few eps of the stored precision), then takes a = 0.
  const eps = version === 1 ? 2 ** -23 : Number.EPSILON;
  if (qformCode > 0 && 1 - normSq < -3 * eps)
    throw new HeaderProblem(`qform quaternion (${b}, ${c}, ${d}) has norm > 1`);
  const qform = affineFromQform({
    quatern: [b, c, d],
    offset: [hdr.qoffset_x, hdr.qoffset_y, hdr.qoffset_z],
    zooms: [pixdim[1]!, pixdim[2]!, pixdim[3]!],
    qfac,
  });

  const sform = identity4();
  const srowAt = version === 1 ? 280 : 400;
  const width = version === 1 ? 4 : 8;
  for (let i = 0; i < 12; i++) {
    const at = srowAt + i * width;
    sform[i] = version === 1 ? view.getFloat32(at, le) : view.getFloat64(at, le);
  }

  let affine: Affine;
  let affineSource: NiftiHeader["affineSource"];
  if (sformCode > 0) {
    affine = sform;
    affineSource = "sform";
  } else if (qformCode > 0) {
    affine = qform;
    affineSource = "qform";
  } else {
    affine = baseAffine(shape, zooms);
    affineSource = "base";
  }

  const slope = hdr.scl_slope;
  const inter = hdr.scl_inter;
  let scaling: NiftiHeader["scaling"] = null;
  if (slope !== 0 && Number.isFinite(slope)) {
    if (!Number.isFinite(inter))
      throw new HeaderProblem(`valid scl_slope ${slope} but non-finite scl_inter ${inter}`);
    if (!(slope === 1 && inter === 0)) scaling = { slope, inter };
  }

  return {
    version,
    littleEndian: le,
    shape,
    zooms,
    storedDtype: info.dtype,
    datatypeCode: hdr.datatypeCode,
    voxOffset: voxOffsetOf(bytes, sniff.size, le),
    sclSlope: slope,
    sclInter: inter,
    scaling,
    qformCode,
    sformCode,
    qfac,
    qform,
    sform,
    affine,
    affineSource,
    xyztUnits: hdr.xyzt_units,
    intentCode: hdr.intent_code,
    description: hdr.description,
  };
}
