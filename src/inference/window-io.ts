// Moving one window between the volume (first axis fastest, layout.ts) and a C-order
// network tensor (last axis fastest), with optional flips for TTA.
//
// Every geometry is lifted to exactly three spatial axes by appending axes of size 1
// (patch 1, start 0, padding 0): a 2D window (p0, p1) is then (p0, p1, 1), whose C-order
// index (i·p1 + j)·1 + 0 and volume index x + n0·(y + n1·0) are the 2D ones, so one set of
// loops serves 1D, 2D and 3D without changing any number.

import { GAUSSIAN_FLOOR, type WeightFactors } from "./windows.js";

/** The volume and patch, lifted to three spatial axes. Padding is virtual: never materialised. */
export interface Geometry {
  /** Unpadded spatial size. */
  size: [number, number, number];
  patch: [number, number, number];
  /** Zero padding before each axis (rule 1): padded coordinate u is volume coordinate u − before. */
  before: [number, number, number];
}

/** Lifts per-axis values to three axes, filling the missing ones with `fill`. */
export function lift3(values: readonly number[], fill: number): [number, number, number] {
  return [values[0] ?? fill, values[1] ?? fill, values[2] ?? fill];
}

/** Lifts a flip subset (spatial axis indices) to one boolean per lifted axis. */
export function flipFlags(axes: readonly number[]): [boolean, boolean, boolean] {
  return [axes.includes(0), axes.includes(1), axes.includes(2)];
}

export function patchVoxels(g: Geometry): number {
  return g.patch[0] * g.patch[1] * g.patch[2];
}

/** z rows walked together by accumulateWindow and gatherWindow: 16 floats, one 64-byte cache line. */
const TILE = 16;

/**
 * Copies the window at padded start `start` of every channel of `volume` into `out` at
 * `offset`, as a C-order (C, *patch) block, flipped on the `flip` axes (the flipped
 * window's voxel i is the window's voxel P−1−i). Padded voxels read as zero.
 *
 * The volume's fastest axis is x, the block's is z. The loops take TILE z values at a time
 * with x outside them: each x step reads one float from each of TILE volume rows (which move
 * forward together, so every cache line fetched is used whole) and writes TILE consecutive
 * block floats, one cache line (1.6× faster at 160×160×80 than x innermost, whose writes
 * land one window row apart).
 */
export function gatherWindow(
  volume: Float32Array,
  channels: number,
  g: Geometry,
  start: readonly number[],
  flip: readonly boolean[],
  out: Float32Array,
  offset: number,
): void {
  const [n0, n1, n2] = g.size;
  const [p0, p1, p2] = g.patch;
  const plane = n0 * n1;
  const p = p0 * p1 * p2;
  const rowStride = p1 * p2; // C-order step between i and i + 1
  // Window index i holds volume x = x0 + i (flipped: x0 + P−1−i); the real voxels lie in
  // [iLo, iHi) along x and [kLo, kHi) along z, the rest is padding.
  const x0 = start[0]! - g.before[0];
  const z0 = start[2]! - g.before[2];
  const realRange = (origin: number, size: number, patch: number, flipped: boolean): [number, number] => {
    const lo = Math.max(0, -origin);
    const hi = Math.min(patch, size - origin);
    if (hi <= lo) return [0, 0];
    return flipped ? [patch - hi, patch - lo] : [lo, hi];
  };
  const [iLo, iHi] = realRange(x0, n0, p0, flip[0]!);
  const [kLo, kHi] = realRange(z0, n2, p2, flip[2]!);
  for (let c = 0; c < channels; c++) {
    const block = offset + c * p;
    const channelBase = c * plane * n2;
    for (let j = 0; j < p1; j++) {
      const y = start[1]! + (flip[1] ? p1 - 1 - j : j) - g.before[1];
      const col = block + j * p2; // block index of (0, j, 0)
      if (y < 0 || y >= n1 || iHi === iLo || kHi === kLo) {
        for (let i = 0; i < p0; i++) out.fill(0, col + i * rowStride, col + i * rowStride + p2);
        continue;
      }
      // Padding along z or x (calls only where there is some: a fill call costs as much as
      // copying a dozen floats).
      if (kLo > 0 || kHi < p2 || iLo > 0 || iHi < p0)
        for (let i = 0; i < p0; i++) {
          const row = col + i * rowStride;
          if (i < iLo || i >= iHi) out.fill(0, row, row + p2);
          else {
            if (kLo > 0) out.fill(0, row, row + kLo);
            if (kHi < p2) out.fill(0, row + kHi, row + p2);
          }
        }
      // Volume index of window voxel (i, j, k): the x and z parts walk forwards or backwards.
      const base = channelBase + n0 * y;
      const xStep = flip[0] ? -1 : 1;
      const zStep = flip[2] ? -plane : plane;
      const xAt = (i: number): number => x0 + (flip[0] ? p0 - 1 - i : i);
      const zAt = (k: number): number => plane * (z0 + (flip[2] ? p2 - 1 - k : k));
      for (let kb = kLo; kb < kHi; kb += TILE) {
        const ke = Math.min(kb + TILE, kHi);
        for (let i = iLo, x = base + xAt(iLo); i < iHi; i++, x += xStep) {
          const row = col + i * rowStride;
          for (let k = kb, v = x + zAt(kb); k < ke; k++, v += zStep) out[row + k] = volume[v]!;
        }
      }
    }
  }
}

/**
 * Softmax over channels, in place, of a C-order (K, *patch) block at `offset` in `logits`.
 * Max-subtracted, in double, stored as float32.
 */
export function softmaxInPlace(logits: Float32Array, offset: number, classes: number, voxels: number): void {
  if (classes === 2) {
    softmax2InPlace(logits, offset, voxels);
    return;
  }
  const e = new Float64Array(classes);
  for (let t = offset, end = offset + voxels; t < end; t++) {
    let max = logits[t]!;
    for (let c = 1, i = t + voxels; c < classes; c++, i += voxels) max = Math.max(max, logits[i]!);
    let sum = 0;
    for (let c = 0, i = t; c < classes; c++, i += voxels) {
      const x = logits[i]!;
      // exp(0) is exactly 1: skipping it saves one of the K exps, the bulk of the time here.
      const v = x === max ? 1 : Math.exp(x - max);
      e[c] = v;
      sum += v;
    }
    for (let c = 0, i = t; c < classes; c++, i += voxels) logits[i] = e[c]! / sum;
  }
}

/** softmaxInPlace for two classes: the same operations, unrolled (1.5× faster; same bits). */
function softmax2InPlace(logits: Float32Array, offset: number, voxels: number): void {
  for (let t = offset, u = offset + voxels, end = offset + voxels; t < end; t++, u++) {
    const a = logits[t]!;
    const b = logits[u]!;
    if (a >= b) {
      const e = a === b ? 1 : Math.exp(b - a);
      const sum = 1 + e;
      logits[t] = 1 / sum;
      logits[u] = e / sum;
    } else {
      const e = Math.exp(a - b);
      const sum = e + 1;
      logits[t] = e / sum;
      logits[u] = 1 / sum;
    }
  }
}

/**
 * The class-1 probability of a two-class C-order (2, *patch) block at `offset`, written over
 * class 1's logits; class 0's are left alone. The operations are softmax2InPlace's for class 1,
 * so the value has the same bits; half the stores, and no division for the background.
 */
export function foregroundOfTwoInPlace(logits: Float32Array, offset: number, voxels: number): void {
  for (let t = offset, u = offset + voxels, end = offset + voxels; t < end; t++, u++) {
    const a = logits[t]!;
    const b = logits[u]!;
    if (a >= b) {
      const e = a === b ? 1 : Math.exp(b - a);
      logits[u] = e / (1 + e);
    } else logits[u] = 1 / (Math.exp(a - b) + 1);
  }
}

/**
 * dst += src flipped back on the `flip` axes, for a C-order (K, *patch) block: the model
 * saw the flipped window, so its output voxel at flipped index f(t) belongs to window
 * voxel t (flipping is its own inverse). Float32 sums, as torch's.
 */
export function addFlippedBack(
  src: Float32Array,
  dst: Float32Array,
  offset: number,
  classes: number,
  g: Geometry,
  flip: readonly boolean[],
): void {
  const [p0, p1, p2] = g.patch;
  const p = p0 * p1 * p2;
  if (!flip[0] && !flip[1] && !flip[2]) {
    for (let t = offset, end = offset + classes * p; t < end; t++) dst[t] = dst[t]! + src[t]!;
    return;
  }
  for (let c = 0; c < classes; c++) {
    const base = offset + c * p;
    for (let i = 0; i < p0; i++) {
      const fi = flip[0] ? p0 - 1 - i : i;
      for (let j = 0; j < p1; j++) {
        const fj = flip[1] ? p1 - 1 - j : j;
        const to = base + (i * p1 + j) * p2;
        const from = base + (fi * p1 + fj) * p2;
        if (flip[2]) for (let k = 0; k < p2; k++) dst[to + k] = dst[to + k]! + src[from + p2 - 1 - k]!;
        else for (let k = 0; k < p2; k++) dst[to + k] = dst[to + k]! + src[from + k]!;
      }
    }
  }
}

/**
 * acc[:, window] += w · probs for one window's C-order (K, *patch) probabilities at `offset`;
 * acc is channel-planar, first axis fastest, over the *unpadded* volume (padded voxels are
 * cropped at the end anyway, so they are skipped). The weight sum is not kept alongside: see
 * divideByWeightSum. Math.fround(p·w) rounds the product to float32 before the float32 add,
 * as torch's `acc += p * weight` does, so the sums agree bit for bit for equal inputs. The
 * weights w are the importance map's float32 values, computed from its factors (windows.ts):
 * the patch-sized map is never stored or read.
 *
 * The window's last axis (z) is its fastest, the accumulator's first (x): one of the two is
 * always walked across. The loops take TILE z values at a time, with x outside them: each x
 * step reads TILE consecutive window floats (one cache line) and writes one float to each of
 * TILE accumulator rows, which move forward together, so both sides use whole cache lines
 * (3.5× faster than x innermost over the 51 KB window stride of a 160×160×80 patch). Each
 * voxel still gets exactly one addition per window, so the bits do not change.
 */
export function accumulateWindow(
  probs: Float32Array,
  offset: number,
  classes: number,
  weights: WeightFactors,
  g: Geometry,
  start: readonly number[],
  acc: Float32Array,
): void {
  const [n0, n1, n2] = g.size;
  const [p0, p1, p2] = g.patch;
  const [wa, wb, wc] = weights.profiles;
  const peak = weights.peak;
  const plane = n0 * n1;
  const voxels = plane * n2;
  const p = p0 * p1 * p2;
  const rowStride = p1 * p2;
  const x0 = start[0]! - g.before[0];
  const iLo = Math.max(0, -x0);
  const iHi = Math.min(p0, n0 - x0);
  const z0 = start[2]! - g.before[2];
  const kLo = Math.max(0, -z0);
  const kHi = Math.min(p2, n2 - z0);
  const tile = new Float64Array(TILE); // the weights of one tile row, float32 values
  for (let j = 0; j < p1; j++) {
    const y = start[1]! + j - g.before[1];
    if (y < 0 || y >= n1) continue;
    for (let kb = kLo; kb < kHi; kb += TILE) {
      const ke = Math.min(kb + TILE, kHi);
      for (let i = iLo; i < iHi; i++) {
        const t0 = i * rowStride + j * p2; // window index of (i, j, 0)
        const v0 = n0 * y + plane * z0 + x0 + i; // volume index of (i, j, 0)
        // weightAt(weights, i, j, k) for the tile, inlined: (a·b)·c, then the gaussian's peak and floor
        const ab = wa[i]! * wb[j]!;
        for (let k = kb; k < ke; k++)
          tile[k - kb] = Math.fround(
            peak === null ? ab * wc[k]! : Math.max((ab * wc[k]!) / peak, GAUSSIAN_FLOOR),
          );
        if (classes === 1) {
          for (let k = kb, t = t0 + kb, v = v0 + plane * kb; k < ke; k++, t++, v += plane)
            acc[v] = acc[v]! + Math.fround(probs[offset + t]! * tile[k - kb]!);
        } else if (classes === 2) {
          // Unrolled for the common two-class case (same operations).
          for (let k = kb, t = t0 + kb, v = v0 + plane * kb; k < ke; k++, t++, v += plane) {
            const w = tile[k - kb]!;
            acc[v] = acc[v]! + Math.fround(probs[offset + t]! * w);
            acc[v + voxels] = acc[v + voxels]! + Math.fround(probs[offset + p + t]! * w);
          }
        } else
          for (let k = kb, t = t0 + kb, v = v0 + plane * kb; k < ke; k++, t++, v += plane) {
            const w = tile[k - kb]!;
            for (let c = 0; c < classes; c++) {
              const a = c * voxels + v;
              acc[a] = acc[a]! + Math.fround(probs[offset + c * p + t]! * w);
            }
          }
      }
    }
  }
}

/**
 * acc[c, v] /= norm[v] for every class, where norm[v] is the float32 sum of the weights of
 * the windows covering v, in window order (C order over the per-axis `starts`, as the
 * windows were accumulated). It is recomputed here, one x row at a time, instead of being
 * accumulated in a volume-sized buffer: the same additions in the same order, so the same
 * bits, and one volume less of peak memory. Every voxel is covered by a window with
 * weight > 0 (rule 4), so norm > 0.
 */
export function divideByWeightSum(
  acc: Float32Array,
  classes: number,
  weights: WeightFactors,
  g: Geometry,
  starts: readonly [readonly number[], readonly number[], readonly number[]],
): void {
  const [n0, n1, n2] = g.size;
  const [p0, p1, p2] = g.patch;
  const [b0, b1, b2] = g.before;
  const [wa, wb, wc] = weights.profiles;
  const peak = weights.peak;
  const voxels = n0 * n1 * n2;
  const norm = new Float32Array(n0);
  for (let z = 0; z < n2; z++) {
    for (let y = 0; y < n1; y++) {
      norm.fill(0);
      // For each voxel the terms arrive in window order: x windows, then y, then z.
      for (const s0 of starts[0]) {
        const lo = Math.max(0, s0 - b0);
        const hi = Math.min(n0, s0 - b0 + p0);
        const di = b0 - s0; // window index i of voxel x is x + di
        for (const s1 of starts[1]) {
          const oy = y + b1 - s1;
          if (oy < 0 || oy >= p1) continue;
          const bj = wb[oy]!;
          for (const s2 of starts[2]) {
            const oz = z + b2 - s2;
            if (oz < 0 || oz >= p2) continue;
            const ck = wc[oz]!;
            // weightAt(weights, x + di, oy, oz), inlined: (a·b)·c in that order
            if (peak === null)
              for (let x = lo; x < hi; x++) norm[x] = norm[x]! + Math.fround(wa[x + di]! * bj * ck);
            else
              for (let x = lo; x < hi; x++)
                norm[x] = norm[x]! + Math.fround(Math.max((wa[x + di]! * bj * ck) / peak, GAUSSIAN_FLOOR));
          }
        }
      }
      const row = n0 * (y + n1 * z);
      for (let c = 0, plane = row; c < classes; c++, plane += voxels)
        for (let x = 0; x < n0; x++) acc[plane + x] = acc[plane + x]! / norm[x]!;
    }
  }
}
