// Geometry of one image, pure: spatial shape, orientation codes, the shape and spacing after
// reorientation to closest-canonical RAS, and how far two affines place the same grid apart.
import { axisCodes, ioOrientation } from "../imaging/orientation.js";
import type { Affine } from "../imaging/types.js";

/** Spatial axes of a shape: the first three (later ones are time or channels); 2D stays 2D. */
export function spatialShape(shape: number[]): number[] {
  return shape.slice(0, Math.min(3, shape.length));
}

/** Channels a file holds: the product of the axes after the third (1 for a 2D or 3D file). */
export function channelCount(shape: number[]): number {
  return shape.slice(3).reduce((a, b) => a * b, 1);
}

export interface Placement {
  axisCodes: string[];
  canonicalShape: number[];
  canonicalSpacing: number[];
}

/**
 * Orientation codes (nibabel `aff2axcodes`) and the shape and spacing the volume has after
 * `as_closest_canonical`: array axis i lands on world axis ornt[i][0]. 2D images keep their own
 * axes (they are one slice; preprocess does not permute them).
 */
export function placement(affine: Affine, shape: number[], spacing: number[]): Placement {
  const ornt = ioOrientation(affine);
  const codes = axisCodes(ornt);
  if (shape.length < 3)
    return { axisCodes: codes.slice(0, shape.length), canonicalShape: shape, canonicalSpacing: spacing };
  const canonicalShape = [0, 0, 0];
  const canonicalSpacing = [0, 0, 0];
  ornt.forEach(([world], i) => {
    canonicalShape[world] = shape[i]!;
    canonicalSpacing[world] = spacing[i]!;
  });
  return { axisCodes: codes, canonicalShape, canonicalSpacing };
}

/**
 * The largest distance (mm) between where affines `a` and `b` put the same voxel, over the corners
 * of a grid of `shape` (the distance is affine in the index, so its maximum is at a corner).
 */
export function cornerDrift(a: Affine, b: Affine, shape: number[]): number {
  const dims = Math.min(3, shape.length);
  let worst = 0;
  for (let corner = 0; corner < 1 << dims; corner++) {
    const v = [0, 0, 0, 1];
    for (let d = 0; d < dims; d++) v[d] = corner & (1 << d) ? shape[d]! - 1 : 0;
    let sq = 0;
    for (let r = 0; r < 3; r++) {
      let diff = 0;
      for (let c = 0; c < 4; c++) diff += (a[4 * r + c]! - b[4 * r + c]!) * v[c]!;
      sq += diff * diff;
    }
    worst = Math.max(worst, Math.sqrt(sq));
  }
  return worst;
}

/** "[48, 48, 40]"-style text for messages. */
export function fmtShape(shape: number[]): string {
  return `[${shape.join(", ")}]`;
}
