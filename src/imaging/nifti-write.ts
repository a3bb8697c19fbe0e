import { createWriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { qformFromAffine } from "./affine.js";
import { dtypeInfo, dtypeOfArray } from "./dtype.js";
import { ImageWriteError, reason } from "./errors.js";
import type { Affine, Dtype, VoxelArray } from "./types.js";

export interface NiftiWriteOptions {
  /** qform_code; default 1 (scanner anatomical), as ITK writes. */
  qformCode?: number;
  /** sform_code; default 1. */
  sformCode?: number;
  /** xyzt_units; default 2 (mm; no time unit). */
  xyztUnits?: number;
  description?: string;
  /** gzip level 1..9 for `.gz` paths; default 1, nibabel's default (much faster, slightly larger). */
  compressionLevel?: number;
}

/** What the writer needs: voxels in first-axis-fastest order, their shape and the affine. */
export interface NiftiWritable {
  data: VoxelArray;
  shape: number[];
  affine: Affine;
  /** Used for pixdim[4..7] of 4D+ images; spatial pixdims always come from the affine. */
  spacing?: number[];
  /** "bool" is stored as uint8; otherwise must match the typed array. */
  dtype?: Dtype;
}

const HEADER_BYTES = 348;
const VOX_OFFSET = 352;
const CHUNK = 1 << 22;

/**
 * Writes a NIfTI-1 file (`.nii.gz` when the path ends in `.gz`, else `.nii`),
 * with the affine stored both as sform (exactly, to float32) and as qform
 * (rotation + zooms + qfac, shears dropped), so every viewer places it the same.
 * The file appears atomically (written beside, then renamed).
 */
export async function writeNifti(
  path: string,
  image: NiftiWritable,
  options: NiftiWriteOptions = {},
): Promise<void> {
  const header = buildHeader(path, image, options);
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  const bytes = new Uint8Array(image.data.buffer, image.data.byteOffset, image.data.byteLength);
  async function* chunks(): AsyncGenerator<Uint8Array> {
    yield header;
    for (let at = 0; at < bytes.length; at += CHUNK)
      yield bytes.subarray(at, Math.min(at + CHUNK, bytes.length));
  }
  try {
    const out = createWriteStream(tmp);
    if (path.endsWith(".gz")) {
      await pipeline(Readable.from(chunks()), createGzip({ level: options.compressionLevel ?? 1 }), out);
    } else {
      await pipeline(Readable.from(chunks()), out);
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new ImageWriteError(path, `write failed (${reason(err)})`);
  }
}

function buildHeader(path: string, image: NiftiWritable, options: NiftiWriteOptions): Uint8Array {
  const { shape, affine, data } = image;
  const native = dtypeOfArray(data);
  const declared = image.dtype ?? native;
  if (declared !== native && !(declared === "bool" && native === "uint8"))
    throw new ImageWriteError(path, `dtype ${declared} does not match the ${native} data`);
  const info = dtypeInfo(native);
  if (shape.length < 1 || shape.length > 7)
    throw new ImageWriteError(path, `cannot store ${shape.length} dimensions`);
  if (shape.some((n) => !Number.isInteger(n) || n < 1 || n > 32767))
    throw new ImageWriteError(path, `shape [${shape.join(", ")}] does not fit NIfTI-1 (1..32767 per axis)`);
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length)
    throw new ImageWriteError(
      path,
      `shape [${shape.join(", ")}] needs ${count} voxels, data has ${data.length}`,
    );
  if (affine.length !== 16 || affine.some((x) => !Number.isFinite(x)))
    throw new ImageWriteError(path, "affine must be 16 finite numbers (4x4 row-major)");

  const buf = new ArrayBuffer(VOX_OFFSET);
  const v = new DataView(buf);
  const le = true;
  v.setInt32(0, HEADER_BYTES, le);
  v.setUint8(38, "r".charCodeAt(0));
  v.setInt16(40, shape.length, le);
  for (let i = 0; i < 7; i++) v.setInt16(42 + 2 * i, shape[i] ?? 1, le);
  v.setInt16(70, info.niftiCode, le);
  v.setInt16(72, info.bytes * 8, le);

  const q = qformFromAffine(affine);
  const pixdim = [q.qfac, ...q.zooms, ...[3, 4, 5, 6].map((i) => image.spacing?.[i] ?? 1)];
  for (const [i, p] of pixdim.entries()) v.setFloat32(76 + 4 * i, p, le);
  v.setFloat32(108, VOX_OFFSET, le);
  v.setFloat32(112, 1, le);
  v.setFloat32(116, 0, le);
  v.setUint8(123, options.xyztUnits ?? 2);
  writeText(v, 148, 80, options.description ?? "medpipe");
  v.setInt16(252, options.qformCode ?? 1, le);
  v.setInt16(254, options.sformCode ?? 1, le);
  for (let i = 0; i < 3; i++) {
    v.setFloat32(256 + 4 * i, q.quatern[i]!, le);
    v.setFloat32(268 + 4 * i, q.offset[i]!, le);
  }
  for (let i = 0; i < 12; i++) v.setFloat32(280 + 4 * i, affine[i]!, le);
  writeText(v, 344, 4, "n+1");
  return new Uint8Array(buf);
}

function writeText(view: DataView, at: number, max: number, text: string): void {
  // Fixed-width, NUL-padded ASCII; the last byte stays NUL so readers find the end.
  for (let i = 0; i < Math.min(text.length, max - 1); i++) view.setUint8(at + i, text.charCodeAt(i) & 0x7f);
}
