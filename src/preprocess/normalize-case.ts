// The plan's normalization applied to one resampled channel. It runs after resampling, on the
// grid the network sees, so "foreground" means the resampled label's voxels > 0.
//
// One rule for training and inference (preprocess and the infer skill both call this), so an
// unlabelled image at inference is normalized the way its training cases were whenever the plan
// makes that possible:
// - zscore with `mean` and `std` in the plan: those dataset statistics for every case, labelled
//   or not (identical at training and inference by construction);
// - zscore over "foreground" without them: the case's label > 0 when it has a label (the heart
//   reference); an unlabelled case falls back to its nonzero voxels (nnU-Net's masked z-score),
//   the closest statistic that needs no label; `applied.fallback` says so;
// - zscore over "all"/"nonzero", ct, none: need no label, same everywhere.
import { ctNormalize, zscore } from "../imaging/normalize.js";
import type { ChannelStats, PlanNormalization } from "./types.js";

const EPS = 1e-8; // the divisor floor of imaging/normalize.ts (nnU-Net's)

/** What a case's normalization actually did (recorded in properties.json and by infer). */
export interface AppliedNormalization {
  scheme: PlanNormalization["scheme"];
  /** Where mean and std came from: the plan (dataset statistics), the case's own voxels, or none. */
  statistics: "dataset" | "case" | "none";
  /** zscore: the voxels the statistics were over ("case") or that were mapped ("dataset"). */
  over?: "all" | "nonzero" | "foreground";
  /** True when the plan asked for foreground statistics and the case has no label. */
  fallback: boolean;
}

/** The rule above, decided from the plan and whether the case has a label. */
export function normalizationFor(norm: PlanNormalization, labelled: boolean): AppliedNormalization {
  if (norm.scheme === "none") return { scheme: "none", statistics: "none", fallback: false };
  if (norm.scheme === "ct") return { scheme: "ct", statistics: "dataset", fallback: false };
  const over = norm.over ?? "all";
  if (norm.mean !== undefined && norm.std !== undefined)
    return { scheme: "zscore", statistics: "dataset", over, fallback: false };
  if (over === "foreground" && !labelled)
    return { scheme: "zscore", statistics: "case", over: "nonzero", fallback: true };
  return { scheme: "zscore", statistics: "case", over, fallback: false };
}

/**
 * Normalizes `data` as the plan says (see the rule above) and returns float32 values, the
 * statistics used and what was applied:
 * - zscore over "all" voxels, "nonzero" voxels (the rest stay 0, nnU-Net's masked scheme) or
 *   "foreground" voxels (label > 0; every voxel is mapped with the same mean and std);
 * - zscore with the plan's mean and std: every voxel mapped with them ("nonzero": zeros stay 0);
 * - ct: clip to plan.clip, then z-score with the plan's (dataset) mean and std;
 * - none: the values as they are.
 * Throws a plain message (the caller adds the file) when a label has no foreground.
 */
export function normalizeChannel(
  data: Float32Array,
  norm: PlanNormalization,
  label: Uint8Array | null,
): { data: Float32Array; stats: ChannelStats; applied: AppliedNormalization } {
  const applied = normalizationFor(norm, label !== null);
  if (norm.scheme === "none") return { data, stats: { mean: 0, std: 1, count: 0 }, applied };
  if (norm.scheme === "ct") {
    const [lo, hi] = norm.clip as [number, number];
    const mean = norm.mean as number;
    const std = norm.std as number;
    return {
      data: ctNormalize(data, { mean, std, p00_5: lo, p99_5: hi }),
      stats: { mean, std, count: 0 },
      applied,
    };
  }
  if (applied.statistics === "dataset") {
    const mean = norm.mean as number;
    const std = norm.std as number;
    const scale = 1 / Math.max(std, EPS);
    const keepZeros = applied.over === "nonzero";
    const out = new Float32Array(data.length);
    for (let i = 0; i < data.length; i++) {
      const x = data[i]!;
      out[i] = keepZeros && x === 0 ? 0 : (x - mean) * scale;
    }
    return { data: out, stats: { mean, std, count: 0 }, applied };
  }
  if (applied.over === "foreground") {
    const out = zscore(data, { over: "mask", mask: label!, outside: "normalize" });
    if (out.stats.count === 0)
      throw new Error("normalization over 'foreground' needs a label > 0, and it is empty");
    return { data: out.data, stats: out.stats, applied };
  }
  const out = zscore(data, { over: applied.over === "nonzero" ? "nonzero" : "all" });
  return { data: out.data, stats: out.stats, applied };
}
