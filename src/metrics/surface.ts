// Surface-distance metrics, MONAI-compatible voxel definition ("monai-voxel"):
//
// - surface voxels are foreground voxels with at least one face neighbour (6 in 3D, 4 in
//   2D) in background, i.e. mask XOR binary_erosion(mask) with scipy's default cross
//   structure. Outside the array counts as background (scipy's border_value=0, and MONAI's
//   crop pads with zeros), so foreground voxels on the array border are surface voxels;
// - each surface voxel's distance to the other mask's surface is read from an exact EDT
//   with the case's spacing;
// - HD = largest distance in either direction; HD95 = the larger of the two directed 95th
//   percentiles (numpy's linear interpolation); ASSD = mean of both directions' distances
//   pooled; NSD(τ) = (pred-surface voxels within τ of the reference surface + reference-
//   surface voxels within τ of the predicted surface) / (all surface voxels of both);
// - both masks empty: distances 0 and NSD 1; exactly one empty: distances Infinity, NSD 0.
//
// Everything is computed inside the bounding box of the union of both masks: all surface
// voxels lie in it and everything outside it is background in both masks, so the surfaces
// and the nearest-surface distances found in the box are exactly those of the full grid.
import { squaredDistanceToSites } from "./edt.js";
import { type Box, crop, type Grid3, grid3, unionBox } from "./grid.js";

export type SurfaceDefinition = "monai-voxel";

export const DEFAULT_TOLERANCES_MM: readonly number[] = [0.5, 1, 2];

export interface NsdValue {
  toleranceMm: number;
  value: number;
}

export interface SurfaceMetrics {
  /** Which definition produced these numbers. */
  definition: SurfaceDefinition;
  hd: number;
  hd95: number;
  assd: number;
  nsd: NsdValue[];
  predSurfaceVoxels: number;
  refSurfaceVoxels: number;
}

export interface SurfaceDistances {
  /** Distance (mm) from each predicted-surface voxel to the nearest reference-surface voxel. */
  predToRef: Float64Array;
  /** Distance (mm) from each reference-surface voxel to the nearest predicted-surface voxel. */
  refToPred: Float64Array;
}

/** Surface voxels of a 0/1 mask, with outside-the-grid counted as background. */
export function surfaceVoxels(mask: Uint8Array, g: Grid3): Uint8Array {
  const { nx, ny, nz } = g;
  const sxy = nx * ny;
  const out = new Uint8Array(mask.length);
  const useZ = g.rank === 3;
  let i = 0;
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++, i++) {
        if (mask[i] === 0) continue;
        const edge =
          x === 0 ||
          x === nx - 1 ||
          y === 0 ||
          y === ny - 1 ||
          mask[i - 1] === 0 ||
          mask[i + 1] === 0 ||
          mask[i - nx] === 0 ||
          mask[i + nx] === 0 ||
          (useZ && (z === 0 || z === nz - 1 || mask[i - sxy] === 0 || mask[i + sxy] === 0));
        if (edge) out[i] = 1;
      }
    }
  }
  return out;
}

/** Distances at the voxels where `at` is set to the nearest voxel where `sites` is set. */
function directedDistances(
  sites: Uint8Array,
  at: Uint8Array,
  count: number,
  shape: number[],
  spacing: readonly number[],
  work: Float64Array,
): Float64Array {
  const d2 = squaredDistanceToSites(sites, shape, spacing, at, work);
  const out = new Float64Array(count);
  let k = 0;
  for (let i = 0; i < at.length; i++) if (at[i] !== 0) out[k++] = Math.sqrt(d2[i]!);
  return out;
}

function countSet(a: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) n += a[i]!;
  return n;
}

/**
 * Both directed surface-distance lists of two 0/1 masks on the same grid. Either list is
 * empty when its own mask is empty; when only the other mask is empty its distances are
 * Infinity.
 */
export function surfaceDistances(
  pred: Uint8Array,
  ref: Uint8Array,
  shape: readonly number[],
  spacing: readonly number[],
): SurfaceDistances {
  if (pred.length !== ref.length) throw new Error("surface: prediction and reference differ in size");
  if (spacing.length !== shape.length)
    throw new Error(`surface: spacing [${spacing}] does not fit [${shape}]`);
  const g = grid3(shape, pred.length);
  const box: Box | null = unionBox(pred, ref, g);
  if (box === null) return { predToRef: new Float64Array(0), refToPred: new Float64Array(0) };
  const cg: Grid3 = {
    nx: box.x1 - box.x0 + 1,
    ny: box.y1 - box.y0 + 1,
    nz: box.z1 - box.z0 + 1,
    rank: g.rank,
  };
  const cropShape = g.rank === 3 ? [cg.nx, cg.ny, cg.nz] : [cg.nx, cg.ny];
  const ps = surfaceVoxels(crop(pred, g, box), cg);
  const rs = surfaceVoxels(crop(ref, g, box), cg);
  const np = countSet(ps);
  const nr = countSet(rs);
  const work = new Float64Array(ps.length);
  return {
    predToRef: directedDistances(rs, ps, np, cropShape, spacing, work),
    refToPred: directedDistances(ps, rs, nr, cropShape, spacing, work),
  };
}

/** Exchanges two entries; kept out of line so the selection loop stays readable. */
function swap(a: Float64Array, i: number, j: number): void {
  const t = a[i]!;
  a[i] = a[j]!;
  a[j] = t;
}

/** Rearranges `a` so that a[k] holds the k-th smallest value, smaller ones before, larger after. */
function selectInPlace(a: Float64Array, k: number): void {
  let lo = 0;
  let hi = a.length - 1;
  while (hi > lo) {
    // Median of three as pivot: surface distances arrive spatially ordered, often sorted runs.
    const mid = (lo + hi) >>> 1;
    if (a[mid]! < a[lo]!) swap(a, mid, lo);
    if (a[hi]! < a[lo]!) swap(a, hi, lo);
    if (a[hi]! < a[mid]!) swap(a, hi, mid);
    const pivot = a[mid]!;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i]! < pivot) i++;
      while (a[j]! > pivot) j--;
      if (i <= j) {
        swap(a, i, j);
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return;
  }
}

/**
 * q-th percentile (0..100) with numpy's default linear interpolation, including numpy's
 * two-sided lerp so the result rounds as numpy's does. Does not modify `values`.
 */
export function percentile(values: Float64Array, q: number): number {
  const n = values.length;
  if (n === 0) return Number.NaN;
  const a = Float64Array.from(values);
  const pos = (q / 100) * (n - 1);
  const lo = Math.floor(pos);
  const t = pos - lo;
  selectInPlace(a, lo);
  const below = a[lo]!;
  if (t === 0 || lo + 1 >= n) return below;
  let above = Infinity;
  for (let i = lo + 1; i < n; i++) if (a[i]! < above) above = a[i]!;
  const diff = above - below;
  return t >= 0.5 ? above - diff * (1 - t) : below + diff * t;
}

function maxOf(a: Float64Array): number {
  let m = -Infinity;
  for (let i = 0; i < a.length; i++) if (a[i]! > m) m = a[i]!;
  return m;
}

/** The monai-voxel metrics from both directed distance lists. */
export function metricsFromDistances(
  d: SurfaceDistances,
  tolerances: readonly number[] = DEFAULT_TOLERANCES_MM,
): SurfaceMetrics {
  const np = d.predToRef.length;
  const nr = d.refToPred.length;
  const base = { definition: "monai-voxel" as const, predSurfaceVoxels: np, refSurfaceVoxels: nr };
  if (np === 0 && nr === 0) {
    return { ...base, hd: 0, hd95: 0, assd: 0, nsd: tolerances.map((t) => ({ toleranceMm: t, value: 1 })) };
  }
  if (np === 0 || nr === 0) {
    return {
      ...base,
      hd: Infinity,
      hd95: Infinity,
      assd: Infinity,
      nsd: tolerances.map((t) => ({ toleranceMm: t, value: 0 })),
    };
  }
  let sum = 0;
  for (let i = 0; i < np; i++) sum += d.predToRef[i]!;
  for (let i = 0; i < nr; i++) sum += d.refToPred[i]!;
  const within = (a: Float64Array, t: number): number => {
    let c = 0;
    for (let i = 0; i < a.length; i++) if (a[i]! <= t) c++;
    return c;
  };
  return {
    ...base,
    hd: Math.max(maxOf(d.predToRef), maxOf(d.refToPred)),
    hd95: Math.max(percentile(d.predToRef, 95), percentile(d.refToPred, 95)),
    assd: sum / (np + nr),
    nsd: tolerances.map((t) => ({
      toleranceMm: t,
      value: (within(d.predToRef, t) + within(d.refToPred, t)) / (np + nr),
    })),
  };
}

/** HD, HD95, ASSD and NSD of two 0/1 masks on the same grid (monai-voxel definition). */
export function surfaceMetrics(
  pred: Uint8Array,
  ref: Uint8Array,
  shape: readonly number[],
  spacing: readonly number[],
  tolerances: readonly number[] = DEFAULT_TOLERANCES_MM,
): SurfaceMetrics {
  return metricsFromDistances(surfaceDistances(pred, ref, shape, spacing), tolerances);
}
