import { multiply4 } from "./affine.js";
import type { Affine, Image, Volume } from "./types.js";

/*
 * Grid convention (the one scipy.ndimage.zoom uses with grid_mode=True, torch with
 * align_corners=False, skimage.transform.resize): voxels are cells, and the
 * field of view is kept. Output voxel o along an axis of n -> m voxels samples
 * the input at x = (o + 0.5) * n / m - 0.5, clamped to [0, n - 1] (edge values
 * repeat, scipy mode="nearest"). Linear interpolation is separable, so 3D
 * trilinear is three 1D passes.
 */

/** nnU-Net's output shape: round_half_even(shape * spacing / target), at least 1. */
export function resampledShape(shape: number[], spacing: number[], target: number[]): number[] {
  return shape.map((n, i) => Math.max(1, roundHalfEven((n * spacing[i]!) / target[i]!)));
}

function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * The axis to interpolate by nearest neighbour (nnU-Net's "separate z"): when
 * the spacing (else the target) is anisotropic, max / min > threshold, its
 * single coarsest axis; otherwise null.
 */
export function anisotropicAxis(spacing: number[], target: number[], threshold = 3): number | null {
  for (const s of [spacing, target]) {
    const max = Math.max(...s);
    if (max / Math.min(...s) > threshold) {
      const axes = s.flatMap((x, i) => (x === max ? [i] : []));
      return axes.length === 1 ? axes[0]! : null;
    }
  }
  return null;
}

type Mode = "linear" | "nearest";

/** Per output sample along one axis: the two input cells it reads and the upper one's weight. */
function axisSampling(n: number, m: number, mode: Mode) {
  const lo = new Int32Array(m);
  const hi = new Int32Array(m);
  const w = new Float64Array(m);
  for (let o = 0; o < m; o++) {
    const x = Math.min(Math.max(((o + 0.5) * n) / m - 0.5, 0), n - 1);
    if (mode === "nearest") {
      // Nearest cell centre; a sample exactly between two centres takes the upper one.
      lo[o] = Math.min(n - 1, Math.floor(((o + 0.5) * n) / m));
      hi[o] = lo[o]!;
    } else {
      lo[o] = Math.floor(x);
      hi[o] = Math.min(lo[o]! + 1, n - 1);
      w[o] = x - lo[o]!;
    }
  }
  return { lo, hi, w };
}

/** One 1D pass along `axis` of a first-axis-fastest array. */
function resampleAxis(
  src: ArrayLike<number>,
  shape: number[],
  axis: number,
  m: number,
  mode: Mode,
): Float32Array {
  const n = shape[axis]!;
  const inner = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const outer = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const out = new Float32Array(inner * m * outer);
  const { lo, hi, w } = axisSampling(n, m, mode);
  // The first axis gets its own kernel: with inner = 1 the general one would run a loop of one
  // iteration per output voxel, which costs more than the interpolation itself.
  if (inner === 1) resampleLines(src, out, n, m, outer, lo, hi, w);
  else resamplePlanes(src, out, n, m, inner, outer, lo, hi, w);
  return out;
}

/** Along the fastest axis: `outer` contiguous lines of n samples → m samples. */
function resampleLines(
  src: ArrayLike<number>,
  out: Float32Array,
  n: number,
  m: number,
  outer: number,
  lo: Int32Array,
  hi: Int32Array,
  w: Float64Array,
): void {
  let d = 0;
  for (let base = 0; base < outer * n; base += n) {
    for (let o = 0; o < m; o++, d++) {
      const wo = w[o]!;
      const a = src[base + lo[o]!]!;
      // Same expression as resamplePlanes, so both kernels give the same bits.
      out[d] = wo === 0 ? a : a * (1 - wo) + src[base + hi[o]!]! * wo;
    }
  }
}

/** Along a slower axis: whole rows/planes of `inner` voxels are blended at once. */
function resamplePlanes(
  src: ArrayLike<number>,
  out: Float32Array,
  n: number,
  m: number,
  inner: number,
  outer: number,
  lo: Int32Array,
  hi: Int32Array,
  w: Float64Array,
): void {
  for (let b = 0; b < outer; b++) {
    const srcBase = b * n * inner;
    const dstBase = b * m * inner;
    for (let o = 0; o < m; o++) {
      const a0 = srcBase + lo[o]! * inner;
      const a1 = srcBase + hi[o]! * inner;
      const wo = w[o]!;
      const d = dstBase + o * inner;
      if (wo === 0) for (let i = 0; i < inner; i++) out[d + i] = src[a0 + i]!;
      else for (let i = 0; i < inner; i++) out[d + i] = src[a0 + i]! * (1 - wo) + src[a1 + i]! * wo;
    }
  }
}

function resampleChannel(
  data: ArrayLike<number>,
  shape: number[],
  outShape: number[],
  nearestAxis: number | null,
): Float32Array {
  let cur: ArrayLike<number> = data;
  const curShape = shape.slice();
  for (let axis = 0; axis < shape.length; axis++) {
    // An axis that keeps its size samples exactly at the cell centres (weight 0): skip the copy.
    if (curShape[axis] === outShape[axis]) continue;
    cur = resampleAxis(cur, curShape, axis, outShape[axis]!, axis === nearestAxis ? "nearest" : "linear");
    curShape[axis] = outShape[axis]!;
  }
  // Never hand back the caller's buffer: the result is a new float32 array.
  return cur === data || !(cur instanceof Float32Array) ? Float32Array.from(cur) : cur;
}

export interface ResampleOptions {
  /** Axis interpolated by nearest neighbour instead of linearly (see anisotropicAxis). */
  nearestAxis?: number | null;
}

/** Trilinear (bilinear in 2D) resampling of an intensity volume to `outShape`; float32 out. */
export function resampleImage(
  volume: Volume,
  outShape: number[],
  options: ResampleOptions = {},
): Volume<Float32Array> {
  const data = resampleChannel(volume.data, volume.shape, outShape, options.nearestAxis ?? null);
  return { data, shape: outShape.slice(), spacing: newSpacing(volume, outShape) };
}

/**
 * Label resampling without label mixing: each label's one-hot mask is resampled
 * linearly and every voxel takes the label with the highest value (ties to the
 * lowest label, as numpy's argmax). One mask in memory at a time.
 */
export function resampleLabels(
  volume: Volume,
  outShape: number[],
  options: ResampleOptions = {},
): Volume<Uint8Array> {
  const labels = [...new Set(Array.from(volume.data as ArrayLike<number>))].sort((a, b) => a - b);
  if (labels.some((l) => !Number.isInteger(l) || l < 0 || l > 255))
    throw new Error(
      `labels must be integers 0..255, got ${labels
        .filter((l) => !Number.isInteger(l) || l < 0 || l > 255)
        .slice(0, 5)
        .join(", ")}`,
    );
  const count = outShape.reduce((a, b) => a * b, 1);
  const out = new Uint8Array(count);
  const best = new Float32Array(count).fill(Number.NEGATIVE_INFINITY);
  const mask = new Uint8Array(volume.data.length);
  for (const label of labels) {
    for (let i = 0; i < mask.length; i++) mask[i] = volume.data[i] === label ? 1 : 0;
    const p = resampleChannel(mask, volume.shape, outShape, options.nearestAxis ?? null);
    for (let i = 0; i < count; i++)
      if (p[i]! > best[i]!) {
        best[i] = p[i]!;
        out[i] = label;
      }
  }
  return { data: out, shape: outShape.slice(), spacing: newSpacing(volume, outShape) };
}

function newSpacing(volume: Volume, outShape: number[]): number[] {
  return volume.spacing.map((s, i) => (s * volume.shape[i]!) / outShape[i]!);
}

/** The affine of the resampled grid under the cell convention: same field of view, voxel o at input (o + 0.5) n/m - 0.5. */
export function resampledAffine(affine: Affine, shape: number[], outShape: number[]): Affine {
  const m = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
  for (let i = 0; i < 3; i++) {
    const f = (shape[i] ?? 1) / (outShape[i] ?? 1);
    m[5 * i] = f;
    m[4 * i + 3] = 0.5 * f - 0.5;
  }
  return multiply4(affine, m);
}

/**
 * Resamples an image to `target` spacing (mm per axis of the first three):
 * nnU-Net's shape rule, trilinear for intensities or one-hot-linear + argmax for
 * labels, nearest along a strongly anisotropic axis; the affine keeps the field of view.
 */
export function resampleToSpacing(
  image: Image,
  target: number[],
  kind: "image" | "label",
  anisotropyThreshold = 3,
): Image {
  const spatial = image.shape.slice(0, 3);
  const outShape = [...resampledShape(spatial, image.spacing.slice(0, 3), target), ...image.shape.slice(3)];
  const nearestAxis = anisotropicAxis(image.spacing.slice(0, 3), target, anisotropyThreshold);
  const vol =
    kind === "label"
      ? resampleLabels(image, outShape, { nearestAxis })
      : resampleImage(image, outShape, { nearestAxis });
  return {
    ...vol,
    dtype: kind === "label" ? "uint8" : "float32",
    affine: resampledAffine(image.affine, image.shape, outShape),
  };
}
