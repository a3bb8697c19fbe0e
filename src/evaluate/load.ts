// Loading masks into the space they are compared in: both NIfTI files reoriented to their
// closest canonical (RAS+) orientation, as nibabel's as_closest_canonical does, so a
// prediction stored in LPS and a reference stored in RAS line up voxel for voxel.
// .npy masks carry no placement: they are used as stored, with spacing 1.

import { ImageReadError } from "../imaging/errors.js";
import { readNifti, readNiftiHeader } from "../imaging/nifti-read.js";
import { npyToVolume, readNpy } from "../imaging/npy.js";
import { toClosestCanonical } from "../imaging/orientation.js";
import type { Affine, Volume, VoxelArray } from "../imaging/types.js";
import { UsageError } from "../manifest/diagnostics.js";

/** Largest tolerated difference between the two canonical affines, in mm (per entry). */
export const AFFINE_TOLERANCE_MM = 1e-3;

/** A mask in the comparison space. `affine` is null for .npy files (no placement). */
export interface PlacedMask extends Volume {
  file: string;
  affine: Affine | null;
}

const isNpy = (file: string): boolean => file.endsWith(".npy");

/**
 * Drops trailing singleton axes past the third (a label map saved as x·y·z·1), and refuses
 * anything that is not a 2D or 3D grid.
 */
function spatialShape(shape: readonly number[], file: string): number[] {
  let n = shape.length;
  while (n > 3 && shape[n - 1] === 1) n--;
  if (n < 2 || n > 3)
    throw new UsageError(`${file}: shape [${shape.join(", ")}] is not a 2D or 3D label map`);
  return shape.slice(0, n);
}

/**
 * Reorients a NIfTI grid to closest-canonical RAS. A 2D file is reoriented as one slice
 * thick (the imaging library's convention) and the singleton axis is then removed again,
 * wherever reorientation put it, so 2D masks are scored with 2D neighbourhoods.
 */
function canonical(data: VoxelArray, shape: number[], spacing: number[], affine: Affine) {
  const { image, transform } = toClosestCanonical({ data, shape, spacing, affine });
  if (shape.length === 3) return image;
  const drop = transform.ornt[2]![0];
  return {
    ...image,
    shape: image.shape.filter((_, i) => i !== drop),
    spacing: image.spacing.filter((_, i) => i !== drop),
  };
}

/** Reading problems become usage errors: the user named a file we cannot use. */
async function readOrUsage<T>(read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (err) {
    if (err instanceof ImageReadError) throw new UsageError(err.message);
    throw err;
  }
}

/**
 * The grid a file would have in the comparison space, from its header only (a .nii.gz is
 * inflated just past the header). `data` is empty: applying the orientation to zero voxels
 * moves nothing but yields exactly the shape, spacing and affine the full load will have.
 */
export async function readGrid(file: string): Promise<PlacedMask> {
  if (isNpy(file)) return loadMask(file);
  const h = await readOrUsage(() => readNiftiHeader(file));
  const shape = spatialShape(h.shape, file);
  const placed = canonical(new Uint8Array(0), shape, h.zooms.slice(0, shape.length), h.affine);
  return { file, data: placed.data, shape: placed.shape, spacing: placed.spacing, affine: placed.affine };
}

/** Reads a mask and brings it into the comparison space. */
export async function loadMask(file: string): Promise<PlacedMask> {
  if (isNpy(file))
    return placeMask(file, { ...npyToVolume(await readOrUsage(() => readNpy(file))), affine: null });
  return placeMask(file, await readOrUsage(() => readNifti(file)));
}

/**
 * A mask already read (voxels first axis fastest; `affine` null for a .npy) brought into the
 * comparison space: the one definition of that space, also for the verifier, which reads its
 * files itself.
 */
export function placeMask(
  file: string,
  mask: { data: VoxelArray; shape: readonly number[]; spacing: readonly number[]; affine: Affine | null },
): PlacedMask {
  const shape = spatialShape(mask.shape, file);
  if (mask.affine === null)
    return { file, data: mask.data, shape, spacing: shape.map(() => 1), affine: null };
  // Trailing singleton axes hold no voxels of their own: the data needs no change.
  const placed = canonical(mask.data, shape, mask.spacing.slice(0, shape.length), mask.affine);
  return { file, data: placed.data, shape: placed.shape, spacing: placed.spacing, affine: placed.affine };
}

/** Largest absolute difference over the 3x4 voxel-to-world part of two affines (mm). */
export function maxAffineDifference(a: Affine, b: Affine): number {
  let max = 0;
  for (let i = 0; i < 12; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

const dims = (shape: readonly number[]): string => `[${shape.join(", ")}]`;

/** Why two masks cannot be compared voxel for voxel (one line), or null when they can. */
export function gridProblem(pred: PlacedMask, gt: PlacedMask): string | null {
  if ((pred.affine === null) !== (gt.affine === null)) {
    const kind = (m: PlacedMask) => (m.affine === null ? ".npy" : "NIfTI");
    return `--pred ${pred.file} is ${kind(pred)} but --gt ${gt.file} is ${kind(gt)}: a pair must be both NIfTI or both .npy`;
  }
  const sameShape = pred.shape.length === gt.shape.length && pred.shape.every((n, i) => n === gt.shape[i]);
  if (pred.affine === null || gt.affine === null) {
    return sameShape
      ? null
      : `shapes differ: --pred ${pred.file} ${dims(pred.shape)} vs --gt ${gt.file} ${dims(gt.shape)}`;
  }
  const diff = maxAffineDifference(pred.affine, gt.affine);
  if (sameShape && diff <= AFFINE_TOLERANCE_MM) return null;
  return (
    `grids differ after reorientation to RAS: --pred ${pred.file} ${dims(pred.shape)} vs --gt ${gt.file} ${dims(gt.shape)}, ` +
    `max affine difference ${formatMm(diff)} mm (tolerance ${AFFINE_TOLERANCE_MM} mm)`
  );
}

function formatMm(v: number): string {
  return v === 0 ? "0" : v >= 0.01 ? v.toFixed(3) : v.toPrecision(3);
}
