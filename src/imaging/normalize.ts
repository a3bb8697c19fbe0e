// Intensity normalization: per-image z-score (over all, non-zero or above-mean voxels) and nnU-Net's
// CT scheme (clip to dataset percentiles, then z-score with dataset statistics). The dataset
// statistics are computed elsewhere (analyze) from a sample of foreground intensities; the
// sampling and percentile rules live here so that both sides use the same definitions.

import { percentileRanks, selectRanks } from "./order-statistics.js";

/** Which voxels the z-score statistics are computed over. */
export type ZScoreOver = "all" | "nonzero" | "above_mean";

export interface ZScoreOptions {
  /**
   * "all": every voxel; "nonzero": voxels != 0, the zeros stay 0 (MONAI's
   * NormalizeIntensity(nonzero=True), nnU-Net's masked z-score); "above_mean": voxels brighter
   * than the image's mean (its foreground: for MR, the body rather than the air around it), and
   * every voxel is mapped with their statistics (TorchIO's ZNormalization with a masking method).
   */
  over: ZScoreOver;
  /** Lower bound on the divisor; default 1e-8 (nnU-Net), so a constant image maps to 0, not NaN. */
  eps?: number;
}

/** Mean and population standard deviation (ddof 0, numpy's default) of a set of voxels. */
export interface MeanStd {
  mean: number;
  std: number;
  /** How many voxels the statistics are over. */
  count: number;
}

/**
 * The dataset-level statistics CT normalization needs, over foreground voxels of all training
 * cases (nnU-Net's `foreground_intensity_properties_per_channel`). `p00_5`/`p99_5` are the
 * 0.5th and 99.5th percentiles, numpy's default ("linear") definition.
 */
export interface CtStatistics {
  mean: number;
  std: number;
  p00_5: number;
  p99_5: number;
}

/** Summary of a sample of intensities: what analyze records per channel. */
export interface IntensityStatistics extends CtStatistics {
  count: number;
  min: number;
  max: number;
  median: number;
}

const DEFAULT_EPS = 1e-8;

/**
 * Mean and population std of the selected voxels, both in float64. Two passes (mean, then
 * squared deviations) so large offsets such as CT's -1000 do not cost precision.
 * An empty selection gives mean 0, std 0, count 0.
 */
export function meanStd(data: ArrayLike<number>, select?: (i: number) => boolean): MeanStd {
  let sum = 0;
  let count = 0;
  for (let i = 0; i < data.length; i++) {
    if (select && !select(i)) continue;
    sum += data[i]!;
    count++;
  }
  if (count === 0) return { mean: 0, std: 0, count: 0 };
  const mean = sum / count;
  let sq = 0;
  for (let i = 0; i < data.length; i++) {
    if (select && !select(i)) continue;
    const d = data[i]! - mean;
    sq += d * d;
  }
  return { mean, std: Math.sqrt(sq / count), count };
}

/**
 * Z-score normalization of one channel: `(x - mean) / max(std, eps)` with the statistics over the
 * voxels `options.over` selects. Returns float32 (the preprocessed-volume type) and the statistics
 * used. An empty selection (an all-zero image under "nonzero", a constant one under "above_mean")
 * gives all zeros: there is nothing to normalize against.
 */
export function zscore(
  data: ArrayLike<number>,
  options: ZScoreOptions,
): { data: Float32Array; stats: MeanStd } {
  const { over } = options;
  let select: ((i: number) => boolean) | undefined;
  if (over === "nonzero") select = (i) => data[i] !== 0;
  else if (over === "above_mean") {
    const threshold = meanStd(data).mean;
    select = (i) => data[i]! > threshold;
  }
  const stats = meanStd(data, select);
  const out = new Float32Array(data.length);
  if (stats.count === 0) return { data: out, stats };
  const scale = 1 / Math.max(stats.std, options.eps ?? DEFAULT_EPS);
  for (let i = 0; i < data.length; i++) {
    if (over === "nonzero" && data[i] === 0) continue;
    out[i] = (data[i]! - stats.mean) * scale;
  }
  return { data: out, stats };
}

/**
 * nnU-Net's CTNormalization: clip every voxel to [p00_5, p99_5] of the dataset's foreground
 * intensities, then `(x - mean) / max(std, eps)` with the dataset's foreground mean and std
 * (computed before clipping, as nnU-Net does). Float32 out.
 */
export function ctNormalize(data: ArrayLike<number>, stats: CtStatistics, eps = DEFAULT_EPS): Float32Array {
  const { p00_5: lo, p99_5: hi, mean } = stats;
  if (!(lo <= hi)) throw new Error(`ctNormalize: percentile range [${lo}, ${hi}] is empty or not a number`);
  const scale = 1 / Math.max(stats.std, eps);
  const out = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const x = data[i]!;
    out[i] = ((x < lo ? lo : x > hi ? hi : x) - mean) * scale;
  }
  return out;
}

/**
 * Percentile `q` (0..100) of values that are ALREADY SORTED ascending, numpy's default method
 * ("linear", type 7 of Hyndman & Fan): the value at fractional rank h = (n - 1) q / 100,
 * interpolated linearly between its two neighbours. NaN for an empty array.
 */
export function percentileSorted(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  if (!(q >= 0 && q <= 100)) throw new Error(`percentile: q ${q} outside 0..100`);
  const h = ((n - 1) * q) / 100;
  const lo = Math.floor(h);
  const hi = Math.min(lo + 1, n - 1);
  const t = h - lo;
  const a = sorted[lo]!;
  const b = sorted[hi]!;
  // numpy's _lerp: from the nearer end, so q = 100 returns the maximum exactly.
  return t >= 0.5 ? b - (b - a) * (1 - t) : a + (b - a) * t;
}

/** Percentiles of unsorted values (a copy with just the ranks they read put in place). */
export function percentiles(values: ArrayLike<number>, qs: number[]): number[] {
  const ordered = Float64Array.from(values);
  if (ordered.length > 0)
    selectRanks(
      ordered,
      qs.flatMap((q) => percentileRanks(ordered.length, q)),
    );
  return qs.map((q) => percentileSorted(ordered, q));
}

/**
 * nnU-Net's per-case foreground sample: `count` intensities drawn uniformly WITH replacement
 * from the voxels where `mask` is non-zero (its `collect_foreground_intensities`, 10 000 per case),
 * so every case weighs the same in the dataset statistics whatever its size. Seeded and
 * deterministic; the generator is not numpy's, so the indices differ from nnU-Net's own while the
 * distribution is the same. Empty when the mask is empty.
 */
export function sampleForeground(
  data: ArrayLike<number>,
  mask: ArrayLike<number>,
  options: { count?: number; seed?: number } = {},
): Float64Array {
  if (mask.length !== data.length)
    throw new Error(`sampleForeground: mask has ${mask.length} voxels, image has ${data.length}`);
  const where: number[] = [];
  for (let i = 0; i < mask.length; i++) if (mask[i] !== 0) where.push(i);
  const count = options.count ?? 10_000;
  if (where.length === 0) return new Float64Array(0);
  const random = mulberry32(options.seed ?? 1234);
  const out = new Float64Array(count);
  for (let k = 0; k < count; k++) out[k] = data[where[Math.floor(random() * where.length)]!]!;
  return out;
}

/**
 * The statistics nnU-Net's fingerprint records over the pooled foreground samples of all cases:
 * mean, population std, min, max, median and the 0.5/99.5 percentiles ("linear").
 * NaN everywhere for an empty sample.
 */
export function intensityStatistics(samples: ArrayLike<number>): IntensityStatistics {
  const sorted = Float64Array.from(samples).sort();
  const n = sorted.length;
  const { mean, std } = n === 0 ? { mean: Number.NaN, std: Number.NaN } : meanStd(sorted);
  return {
    count: n,
    mean,
    std,
    min: n === 0 ? Number.NaN : sorted[0]!,
    max: n === 0 ? Number.NaN : sorted[n - 1]!,
    median: percentileSorted(sorted, 50),
    p00_5: percentileSorted(sorted, 0.5),
    p99_5: percentileSorted(sorted, 99.5),
  };
}

// A tiny seeded generator (mulberry32) so that foreground sampling is reproducible run to run.
function mulberry32(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
