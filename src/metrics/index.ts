// Public surface of the metrics library: one call per case, one result per label.
import type { Volume } from "../imaging/types.js";
import { binarize } from "./grid.js";
import { type LesionDetection, type LesionOptions, lesionDetection } from "./lesions.js";
import {
  confusion,
  type OverlapMetrics,
  overlapMetrics,
  type VolumeMetrics,
  volumeMetrics,
} from "./overlap.js";
import { DEFAULT_TOLERANCES_MM, type SurfaceMetrics, surfaceMetrics } from "./surface.js";

export type { CaseRow, LabelSummary, MetricSummary, MetricTable, SummaryOptions } from "./aggregate.js";
export { summarize, summarizeCases } from "./aggregate.js";
export type { Components, Connectivity } from "./components.js";
export { faceConnectivity, fullConnectivity, keepLargestComponent, labelComponents } from "./components.js";
export { distanceTransform, squaredDistanceToSites } from "./edt.js";
export type { LesionDetection, LesionOptions } from "./lesions.js";
export { lesionDetection } from "./lesions.js";
export type { ConfusionCounts, OverlapMetrics, VolumeMetrics } from "./overlap.js";
export { confusion, overlapMetrics, volumeMetrics } from "./overlap.js";
export type { NsdValue, SurfaceDefinition, SurfaceDistances, SurfaceMetrics } from "./surface.js";
export {
  DEFAULT_TOLERANCES_MM,
  metricsFromDistances,
  percentile,
  surfaceDistances,
  surfaceMetrics,
} from "./surface.js";

export interface EvaluateOptions {
  /** Label values to score one by one; default: binary, every nonzero voxel is foreground. */
  labels?: readonly number[];
  /** NSD tolerances in mm; default 0.5, 1, 2. */
  tolerancesMm?: readonly number[];
  lesions?: LesionOptions;
  /** Skip the surface metrics (the costly part) when only overlap numbers are wanted. */
  surface?: boolean;
}

export interface LabelMetrics {
  /** The label value scored, or "foreground" for the binary (nonzero) case. */
  label: number | "foreground";
  overlap: OverlapMetrics;
  volume: VolumeMetrics;
  lesions: LesionDetection;
  surface?: SurfaceMetrics;
}

function sameGrid(pred: Volume, ref: Volume): void {
  const a = pred.shape;
  const b = ref.shape;
  if (a.length !== b.length || a.some((s, i) => s !== b[i])) {
    throw new Error(`metrics: prediction grid [${a}] differs from reference grid [${b}]`);
  }
  if (ref.spacing.length !== b.length) {
    throw new Error(`metrics: reference spacing [${ref.spacing}] does not fit its shape [${b}]`);
  }
}

/**
 * Every metric for one case. Spacing comes from the reference volume; the prediction
 * must be on the same grid (resampling is the caller's business).
 */
export function evaluateCase(pred: Volume, ref: Volume, options: EvaluateOptions = {}): LabelMetrics[] {
  sameGrid(pred, ref);
  const { shape, spacing } = ref;
  const tolerances = options.tolerancesMm ?? DEFAULT_TOLERANCES_MM;
  const targets: (number | undefined)[] = options.labels ? [...options.labels] : [undefined];
  return targets.map((label) => {
    const p = binarize(pred.data, label);
    const r = binarize(ref.data, label);
    const c = confusion(p, r);
    const out: LabelMetrics = {
      label: label ?? "foreground",
      overlap: overlapMetrics(c),
      volume: volumeMetrics(c, spacing),
      lesions: lesionDetection(p, r, shape, options.lesions),
    };
    if (options.surface !== false) out.surface = surfaceMetrics(p, r, shape, spacing, tolerances);
    return out;
  });
}

/** Flat name → number view of one label's metrics, ready for `summarizeCases`. */
export function flattenMetrics(m: LabelMetrics): Record<string, number> {
  const o = m.overlap;
  const flat: Record<string, number> = {
    dice: o.dice,
    iou: o.iou,
    sensitivity: o.sensitivity,
    precision: o.precision,
    specificity: o.specificity,
    rve: m.volume.rve,
    ldr: m.lesions.rate,
  };
  if (m.surface) {
    flat.hd = m.surface.hd;
    flat.hd95 = m.surface.hd95;
    flat.assd = m.surface.assd;
    for (const n of m.surface.nsd) flat[`nsd@${n.toleranceMm}mm`] = n.value;
  }
  return flat;
}
