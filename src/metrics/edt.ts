// Exact Euclidean distance transform on a grid with anisotropic spacing.
//
// Separable algorithm of Felzenszwalb & Huttenlocher ("Distance Transforms of Sampled
// Functions", 2012): the squared distance is a sum of per-axis squared offsets, so one
// pass per axis suffices — a plain 1D nearest-site scan on the first axis, then a lower
// envelope of parabolas on each further axis. Works for any rank in first-axis-fastest order.
import type { VoxelArray } from "../imaging/types.js";

/** Reusable per-line buffers, sized for the longest axis, so no pass allocates per line. */
interface Scratch {
  /** The line being transformed. */
  f: Float64Array;
  /** Envelope: site positions, their f + (w·q)² offsets, and the parabola boundaries. */
  v: Int32Array;
  c: Float64Array;
  z: Float64Array;
}

function scratchFor(shape: readonly number[]): Scratch {
  const n = Math.max(1, ...shape);
  return { f: new Float64Array(n), v: new Int32Array(n), c: new Float64Array(n), z: new Float64Array(n + 1) };
}

function checkGrid(length: number, shape: readonly number[], spacing: readonly number[]): void {
  if (shape.length === 0 || spacing.length !== shape.length) {
    throw new Error(`EDT: shape [${shape}] and spacing [${spacing}] must be non-empty and of equal length`);
  }
  let n = 1;
  for (const s of shape) {
    if (!Number.isInteger(s) || s < 1) throw new Error(`EDT: bad shape [${shape}]`);
    n *= s;
  }
  if (n !== length) throw new Error(`EDT: data has ${length} voxels but shape [${shape}] needs ${n}`);
  for (const s of spacing) {
    if (!(s > 0) || !Number.isFinite(s)) throw new Error(`EDT: spacing must be positive, got [${spacing}]`);
  }
}

/**
 * Lower envelope of the parabolas (w·(p−q))² + f(q) over the finite entries of f[0..n),
 * written straight into out[base + p·stride]. Entries of f that are Infinity are not
 * sites; the caller skips lines that have none.
 */
function envelopeLine(
  out: Float64Array,
  base: number,
  stride: number,
  n: number,
  w: number,
  s: Scratch,
): void {
  const { f, v, c, z } = s;
  const w2 = w * w;
  const half = 1 / (2 * w2);
  let k = -1;
  for (let q = 0; q < n; q++) {
    const fq = f[q]!;
    if (fq === Infinity) continue;
    const cq = fq + w2 * q * q;
    if (k < 0) {
      k = 0;
      v[0] = q;
      c[0] = cq;
      z[0] = -Infinity;
      z[1] = Infinity;
      continue;
    }
    let x = ((cq - c[k]!) * half) / (q - v[k]!);
    while (x <= z[k]!) {
      k--;
      x = ((cq - c[k]!) * half) / (q - v[k]!);
    }
    k++;
    v[k] = q;
    c[k] = cq;
    z[k] = x;
    z[k + 1] = Infinity;
  }
  k = 0;
  for (let p = 0, j = base; p < n; p++, j += stride) {
    while (z[k + 1]! < p) k++;
    const r = v[k]!;
    // (offset·w)² rather than w²·offset², and the new axis added to the old sum, so the
    // value is rounded exactly as scipy's ((dx·sx)² + (dy·sy)²) + (dz·sz)²: distances that
    // sit on a tolerance on paper compare the same way in both.
    const dp = (p - r) * w;
    out[j] = dp * dp + f[r]!;
  }
}

/**
 * Squared distance (mm²) from every voxel to the nearest voxel whose `sites` entry is
 * nonzero; Infinity everywhere when there is no site at all.
 *
 * With `queries`, only the voxels where `queries` is nonzero are guaranteed: lines of the
 * last axis that hold no query are skipped, which is most of them when the queries are a
 * surface. Other entries are then partial sums and must not be read.
 * `out`, when given, is overwritten and returned instead of a fresh array.
 */
export function squaredDistanceToSites(
  sites: VoxelArray,
  shape: readonly number[],
  spacing: readonly number[],
  queries?: VoxelArray,
  out?: Float64Array,
): Float64Array {
  checkGrid(sites.length, shape, spacing);
  if (queries && queries.length !== sites.length) throw new Error("EDT: queries and sites differ in size");
  const total = sites.length;
  if (out && out.length !== total) throw new Error("EDT: output buffer has the wrong size");
  out ??= new Float64Array(total);
  const s = scratchFor(shape);
  const f = s.f;

  // First axis: contiguous lines, nearest site by a forward and a backward sweep.
  const n0 = shape[0]!;
  const w0 = spacing[0]!;
  for (let base = 0; base < total; base += n0) {
    let last = -1;
    for (let i = 0; i < n0; i++) {
      if (sites[base + i] !== 0) last = i;
      out[base + i] = last < 0 ? Infinity : (i - last) * w0 * ((i - last) * w0);
    }
    last = -1;
    for (let i = n0 - 1; i >= 0; i--) {
      if (sites[base + i] !== 0) last = i;
      if (last >= 0) {
        const dd = (last - i) * w0 * ((last - i) * w0);
        if (dd < out[base + i]!) out[base + i] = dd;
      }
    }
  }

  // Further axes: gather each strided line, take the lower envelope, scatter back.
  let stride = n0;
  for (let axis = 1; axis < shape.length; axis++) {
    const n = shape[axis]!;
    const w = spacing[axis]!;
    const block = stride * n;
    const only = axis === shape.length - 1 ? queries : undefined;
    for (let outer = 0; outer < total; outer += block) {
      for (let inner = 0; inner < stride; inner++) {
        const base = outer + inner;
        if (only) {
          let wanted = false;
          for (let i = 0, j = base; i < n; i++, j += stride) {
            if (only[j] !== 0) {
              wanted = true;
              break;
            }
          }
          if (!wanted) continue;
        }
        let any = false;
        for (let i = 0, j = base; i < n; i++, j += stride) {
          const val = out[j]!;
          f[i] = val;
          if (val !== Infinity) any = true;
        }
        // A line with no finite value cannot change: skip the envelope entirely.
        if (any) envelopeLine(out, base, stride, n, w, s);
      }
    }
    stride = block;
  }
  return out;
}

/**
 * scipy.ndimage.distance_transform_edt semantics: for every nonzero voxel the distance
 * (mm) to the nearest zero voxel, 0 at zero voxels. Infinity everywhere if no voxel is zero
 * (scipy's answer there is not a distance at all, so we do not imitate it).
 */
export function distanceTransform(
  mask: VoxelArray,
  shape: readonly number[],
  spacing: readonly number[],
): Float64Array {
  const zeros = new Uint8Array(mask.length);
  for (let i = 0; i < mask.length; i++) zeros[i] = mask[i] === 0 ? 1 : 0;
  const d = squaredDistanceToSites(zeros, shape, spacing);
  for (let i = 0; i < d.length; i++) d[i] = Math.sqrt(d[i]!);
  return d;
}
