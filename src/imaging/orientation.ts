import { linearPart, multiply4, orthogonalFactor3, voxelSizes } from "./affine.js";
import { dtypeInfo, dtypeOfArray } from "./dtype.js";
import type { Affine, Image, VoxelArray } from "./types.js";

/**
 * nibabel's `ornt`: one row per array axis, [world axis (0 = x, 1 = y, 2 = z),
 * +1 if the index grows towards R/A/S, -1 towards L/P/I].
 */
export type Orientation = Array<[number, 1 | -1]>;

export const RAS: Orientation = [
  [0, 1],
  [1, 1],
  [2, 1],
];

/**
 * The world axis each array axis is closest to (nibabel `io_orientation`):
 * shears are removed by polar decomposition, then axes are claimed greedily
 * in array-axis order, each taking the world axis with the largest component.
 */
export function ioOrientation(affine: Affine, tol?: number): Orientation {
  const zooms = voxelSizes(affine).map((z) => (z === 0 ? 1 : z));
  const r = orthogonalFactor3(
    linearPart(affine).map((x, i) => x / zooms[i % 3]!),
    tol,
  );
  const ornt: Orientation = [];
  for (let col = 0; col < 3; col++) {
    const c = [0, 1, 2].map((row) => r[3 * row + col]!);
    // np.allclose(col, 0): |x| <= 1e-8 for all.
    if (c.every((x) => Math.abs(x) <= 1e-8))
      throw new Error(`affine is singular: array axis ${col} has no world direction`);
    let best = 0;
    for (let row = 1; row < 3; row++) if (Math.abs(c[row]!) > Math.abs(c[best]!)) best = row;
    ornt.push([best, c[best]! < 0 ? -1 : 1]);
    // This world axis is taken: later array axes must pick another.
    for (let k = 0; k < 3; k++) r[3 * best + k] = 0;
  }
  return ornt;
}

/** Axis codes such as ["L", "P", "S"] (nibabel `aff2axcodes` / `ornt2axcodes`). */
export function axisCodes(ornt: Orientation): string[] {
  const labels = [
    ["L", "R"],
    ["P", "A"],
    ["I", "S"],
  ];
  return ornt.map(([axis, dir]) => labels[axis]![dir === 1 ? 1 : 0]!);
}

/** The orientation that takes an array in `start` orientation to `end` (nibabel `ornt_transform`). */
export function orientationTransform(start: Orientation, end: Orientation): Orientation {
  return start.map(([world, dir]) => {
    const j = end.findIndex(([w]) => w === world);
    if (j < 0) throw new Error(`orientations do not share world axis ${world}`);
    return [j, end[j]![1] === dir ? 1 : -1];
  });
}

export function isIdentity(ornt: Orientation): boolean {
  return ornt.every(([axis, dir], i) => axis === i && dir === 1);
}

/**
 * Matrix taking voxel indices of the reoriented array to those of the original
 * (nibabel `inv_ornt_aff`); the new affine is `affine · this`.
 */
export function orientationAffine(ornt: Orientation, shape: number[]): Affine {
  const m = new Array<number>(16).fill(0);
  m[15] = 1;
  ornt.forEach(([to, dir], i) => {
    m[4 * i + to] = dir;
    m[4 * i + 3] = dir === -1 ? (shape[i] ?? 1) - 1 : 0;
  });
  return m;
}

type Placed = Pick<Image, "data" | "shape" | "spacing" | "affine">;

/**
 * Flips and permutes the first three axes as `ornt` says (nibabel
 * `apply_orientation`): array axis i becomes axis ornt[i][0], reversed when
 * ornt[i][1] is -1. Later axes (time, channels) stay. Shape, spacing and affine
 * follow, so every voxel keeps its world position. A 2D image is treated as
 * one slice thick (its result is 3D).
 */
export function applyOrientation<T extends Placed>(image: T, ornt: Orientation): T {
  const shape = image.shape.slice();
  const spacing = image.spacing.slice();
  while (shape.length < 3) {
    shape.push(1);
    spacing.push(1);
  }
  const src = [0, 0, 0];
  ornt.forEach(([to], i) => {
    src[to] = i;
  });
  const outShape = [...src.map((i) => shape[i]!), ...shape.slice(3)];
  const outSpacing = [...src.map((i) => spacing[i]!), ...spacing.slice(3)];
  const data = reorderVoxels(image.data, shape, ornt, src);
  const affine = multiply4(image.affine, orientationAffine(ornt, shape));
  return { ...image, data, shape: outShape, spacing: outSpacing, affine };
}

function reorderVoxels(data: VoxelArray, shape: number[], ornt: Orientation, src: number[]): VoxelArray {
  const stride = [1, shape[0]!, shape[0]! * shape[1]!];
  const block = shape[0]! * shape[1]! * shape[2]!;
  const blocks = data.length / block;
  // Input offset of output index 0 and the input step per output step along each output axis.
  let origin = 0;
  const step = [0, 0, 0];
  ornt.forEach(([to, dir], i) => {
    if (dir === -1) origin += (shape[i]! - 1) * stride[i]!;
    step[to] = dir * stride[i]!;
  });
  const [n0, n1, n2] = src.map((i) => shape[i]!) as [number, number, number];
  const [s0, s1, s2] = step as [number, number, number];
  const out = new (dtypeInfo(dtypeOfArray(data)).ctor)(data.length);
  let to = 0;
  for (let b = 0; b < blocks; b++) {
    const base = b * block + origin;
    for (let k = 0; k < n2; k++) {
      for (let j = 0; j < n1; j++) {
        let from = base + k * s2 + j * s1;
        for (let i = 0; i < n0; i++, from += s0) out[to++] = data[from]!;
      }
    }
  }
  return out;
}

/** What is needed to put a canonical image back exactly as it was (JSON-serialisable). */
export interface CanonicalTransform {
  /** Orientation of the original image (io_orientation of its affine). */
  ornt: Orientation;
  originalShape: number[];
  originalSpacing: number[];
  originalAffine: Affine;
}

/**
 * Reorients to the closest canonical RAS+ orientation (nibabel
 * `as_closest_canonical`): data flipped/transposed, affine updated. Returns the
 * image unchanged (same data buffer) when it is already closest to RAS.
 */
export function toClosestCanonical<T extends Placed>(image: T): { image: T; transform: CanonicalTransform } {
  const ornt = ioOrientation(image.affine);
  const transform: CanonicalTransform = {
    ornt,
    originalShape: image.shape.slice(),
    originalSpacing: image.spacing.slice(),
    originalAffine: image.affine.slice(),
  };
  return { image: isIdentity(ornt) ? image : applyOrientation(image, ornt), transform };
}

/**
 * Inverse of toClosestCanonical for an image on the canonical grid (e.g. a
 * prediction): voxels moved back exactly, and the original affine, shape and
 * spacing restored bit for bit rather than recomputed.
 */
export function fromClosestCanonical<T extends Placed>(image: T, transform: CanonicalTransform): T {
  const back = isIdentity(transform.ornt)
    ? image
    : applyOrientation(image, orientationTransform(RAS, transform.ornt));
  const spatial = transform.originalShape.slice(0, 3);
  if (back.shape.slice(0, spatial.length).some((n, i) => n !== spatial[i]))
    throw new Error(
      `image shape [${image.shape.join(", ")}] does not match the canonical form of [${transform.originalShape.join(", ")}]`,
    );
  return {
    ...back,
    shape: [...spatial, ...back.shape.slice(3)],
    spacing: [...transform.originalSpacing.slice(0, spatial.length), ...back.spacing.slice(3)],
    affine: transform.originalAffine.slice(),
  };
}
