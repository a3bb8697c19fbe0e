// The plan's normalization applied to one resampled channel. It runs after resampling, on the
// grid the network sees, so "foreground" means the resampled label's voxels > 0.
import { ctNormalize, zscore } from "../imaging/normalize.js";
import type { ChannelStats, PlanNormalization } from "./types.js";

/**
 * Normalizes `data` as the plan says and returns float32 values with the statistics used:
 * - zscore over "all" voxels, "nonzero" voxels (the rest stay 0, nnU-Net's masked scheme) or
 *   "foreground" voxels (label > 0; every voxel is mapped with the same mean and std);
 * - ct: clip to plan.clip, then z-score with the plan's (dataset) mean and std;
 * - none: the values as they are.
 * Throws a plain message (the caller adds the file) when foreground statistics have no label.
 */
export function normalizeChannel(
  data: Float32Array,
  norm: PlanNormalization,
  label: Uint8Array | null,
): { data: Float32Array; stats: ChannelStats } {
  if (norm.scheme === "none") return { data, stats: { mean: 0, std: 1, count: 0 } };
  if (norm.scheme === "ct") {
    const [lo, hi] = norm.clip as [number, number];
    const mean = norm.mean as number;
    const std = norm.std as number;
    return { data: ctNormalize(data, { mean, std, p00_5: lo, p99_5: hi }), stats: { mean, std, count: 0 } };
  }
  const over = norm.over ?? "all";
  if (over === "foreground") {
    if (!label) throw new Error("normalization over 'foreground' needs a label, and this case has none");
    const out = zscore(data, { over: "mask", mask: label, outside: "normalize" });
    if (out.stats.count === 0)
      throw new Error("normalization over 'foreground' needs a label > 0, and it is empty");
    return { data: out.data, stats: out.stats };
  }
  const out = zscore(data, { over: over === "nonzero" ? "nonzero" : "all" });
  return { data: out.data, stats: out.stats };
}
