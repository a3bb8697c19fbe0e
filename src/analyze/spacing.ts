// The dataset-level rules, pure: target spacing (nnU-Net's or fastMONAI's), size statistics
// after resampling, and the patch-size suggestion with its reasons.
import { percentileSorted } from "../imaging/normalize.js";
import { resampledShape } from "../imaging/resample.js";
import type { AxisStatistics, SpacingRule } from "./types.js";

/** numpy's median: the middle value, or the mean of the two middle values. NaN when empty. */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const n = s.length;
  if (n === 0) return Number.NaN;
  return n % 2 === 1 ? s[(n - 1) / 2]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

/** numpy's default ("linear") percentile of unsorted values. */
export function percentile(values: readonly number[], q: number): number {
  return percentileSorted(Float64Array.from(values).sort(), q);
}

/**
 * Header spacings are float32 (1.37 is stored as 1.3700000047683716): suggestions are rounded to
 * 1e-6 mm so that plan.json says 1.37. The change in resampled sizes is far below a voxel.
 */
export function roundMicron(x: number): number {
  return Math.round(x * 1e6) / 1e6;
}

export interface TargetSpacing {
  target: number[];
  /** The axis given its 10th percentile instead of the median (nnU-Net rule), else null. */
  anisotropicAxis: number | null;
}

/**
 * The target spacing for a list of per-case spacings (all of one length, canonical axis order).
 *
 * - "nnunet": the median per axis. When the coarsest median axis is more than `threshold` times
 *   the finest of the others (anisotropic data), that axis takes the 10th percentile of its
 *   spacings instead (finer than the median, so thin-slice cases keep more of their detail), but
 *   never finer than the coarsest other axis (nnU-Net's guard). nnU-Net also asks for the voxel
 *   counts to be anisotropic; this rule looks at spacing only.
 * - "most_common": per axis the value occurring most often (fastMONAI's suggestion), ties to the
 *   smallest value; values are compared after rounding to 1e-6 mm.
 */
export function targetSpacing(spacings: number[][], rule: SpacingRule, threshold = 3): TargetSpacing {
  if (spacings.length === 0) throw new Error("target spacing: no readable case");
  const dims = spacings[0]!.length;
  const axis = (d: number): number[] => spacings.map((s) => s[d]!);
  if (rule === "most_common") {
    return {
      target: Array.from({ length: dims }, (_, d) => mostCommon(axis(d).map(roundMicron))),
      anisotropicAxis: null,
    };
  }
  const target = Array.from({ length: dims }, (_, d) => median(axis(d)));
  let worst = 0;
  for (let d = 1; d < dims; d++) if (target[d]! > target[worst]!) worst = d;
  const others = target.filter((_, d) => d !== worst);
  let anisotropicAxis: number | null = null;
  if (others.length > 0 && target[worst]! > threshold * Math.min(...others)) {
    target[worst] = Math.max(percentile(axis(worst), 10), Math.max(...others));
    anisotropicAxis = worst;
  }
  return { target: target.map(roundMicron), anisotropicAxis };
}

function mostCommon(values: number[]): number {
  const counts = new Map<number, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  let best = Number.NaN;
  let bestCount = 0;
  for (const [v, n] of counts)
    if (n > bestCount || (n === bestCount && v < best)) {
      best = v;
      bestCount = n;
    }
  return best;
}

/** min, median, max, p10 and p90 per axis over a list of equally long vectors. */
export function axisStatistics(rows: number[][]): AxisStatistics {
  const dims = rows[0]?.length ?? 0;
  const axis = (d: number): number[] => rows.map((r) => r[d]!);
  const per = (f: (v: number[]) => number): number[] => Array.from({ length: dims }, (_, d) => f(axis(d)));
  return {
    min: per((v) => Math.min(...v)),
    median: per(median),
    max: per((v) => Math.max(...v)),
    p10: per((v) => percentile(v, 10)),
    p90: per((v) => percentile(v, 90)),
  };
}

/** Every case's shape after resampling to `target` (imaging's `resampledShape`), canonical axes. */
export function resampledSizes(
  cases: { shape: number[]; spacing: number[] }[],
  target: number[],
): number[][] {
  return cases.map((c) => resampledShape(c.shape, c.spacing, target));
}

export interface PatchRule {
  multiple: number;
  min: number;
  max: number;
}

export interface PatchSuggestion {
  patch: number[];
  reasons: string[];
}

/**
 * Per axis: the median resampled size floored to a multiple of `multiple`, clamped to
 * [min, max], then shrunk to the largest multiple that fits the smallest volume (never below one
 * `multiple`: such a volume is padded). Every change is recorded as a reason line.
 */
export function suggestPatch(sizes: AxisStatistics, rule: PatchRule): PatchSuggestion {
  const reasons: string[] = [];
  const patch = sizes.median.map((med, d) => {
    const smallest = sizes.min[d]!;
    let p = Math.floor(med / rule.multiple) * rule.multiple;
    if (p > rule.max) {
      reasons.push(`Dim ${d}: patch_size clamped from ${p} to ${rule.max} (the largest patch considered).`);
      p = rule.max;
    }
    if (p < rule.min) {
      reasons.push(`Dim ${d}: patch_size raised from ${p} to ${rule.min} (the smallest patch considered).`);
      p = rule.min;
    }
    if (p > smallest) {
      const fit = Math.max(rule.multiple, Math.floor(smallest / rule.multiple) * rule.multiple);
      const pad = fit > smallest ? "; smaller volumes are padded" : "";
      reasons.push(
        `Dim ${d}: patch_size reduced from ${p} to ${fit} to fit smallest volume (min=${smallest}, median=${med})${pad}.`,
      );
      p = fit;
    }
    return p;
  });
  return { patch, reasons };
}
