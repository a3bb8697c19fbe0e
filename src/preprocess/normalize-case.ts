// The plan's normalization applied to one resampled channel. It runs after resampling, on the
// grid the network sees.
//
// One rule for training, held-out evaluation and inference (preprocess, the infer skill and
// finetune's formal evaluation all call this), and it reads the image alone: a case's label
// never enters its own normalization. A label-derived statistic would be impossible for an
// unlabelled image at inference, and on a held-out case it would hand the network its answer
// (the structure's voxels mapped to mean 0, std 1 in every case).
// - zscore with `mean` and `std` in the plan: those dataset statistics for every image;
// - zscore over "above_mean" (the default for MR and other non-CT data): the image's own
//   foreground, its voxels brighter than the image's mean, give mean and std, and every voxel is
//   mapped with them (the heart reference's foreground z-normalization, read label-free);
// - zscore over "all" / "nonzero" (nnU-Net's per-case and masked schemes), ct, none.
import { ctNormalize, zscore } from "../imaging/normalize.js";
import type { ChannelStats, PlanNormalization } from "./types.js";

const EPS = 1e-8; // the divisor floor of imaging/normalize.ts (nnU-Net's)

/** What a case's normalization did (recorded by infer per case). */
export interface AppliedNormalization {
  scheme: PlanNormalization["scheme"];
  /** Where mean and std came from: the plan (dataset statistics), the image's own voxels, or none. */
  statistics: "dataset" | "case" | "none";
  /** zscore: the voxels the statistics were over ("case") or that were mapped ("dataset"). */
  over?: "all" | "nonzero" | "above_mean";
}

/** The rule above, decided from the plan alone. */
export function normalizationFor(norm: PlanNormalization): AppliedNormalization {
  if (norm.scheme === "none") return { scheme: "none", statistics: "none" };
  if (norm.scheme === "ct") return { scheme: "ct", statistics: "dataset" };
  const over = norm.over ?? "all";
  if (norm.mean !== undefined && norm.std !== undefined)
    return { scheme: "zscore", statistics: "dataset", over };
  return { scheme: "zscore", statistics: "case", over };
}

/**
 * Normalizes `data` as the plan says (see the rule above) and returns float32 values, the
 * statistics used and what was applied:
 * - zscore over "all" voxels, "nonzero" voxels (the rest stay 0, nnU-Net's masked scheme) or
 *   "above_mean" voxels (every voxel is mapped with their mean and std);
 * - zscore with the plan's mean and std: every voxel mapped with them ("nonzero": zeros stay 0);
 * - ct: clip to plan.clip, then z-score with the plan's (dataset) mean and std;
 * - none: the values as they are.
 */
export function normalizeChannel(
  data: Float32Array,
  norm: PlanNormalization,
): { data: Float32Array; stats: ChannelStats; applied: AppliedNormalization } {
  const applied = normalizationFor(norm);
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
  const out = zscore(data, { over: applied.over ?? "all" });
  return { data: out.data, stats: out.stats, applied };
}
