// Voxel-count metrics of one binary prediction against one binary reference.

export interface ConfusionCounts {
  tp: number;
  fp: number;
  fn: number;
  tn: number;
}

export interface OverlapMetrics extends ConfusionCounts {
  /** 2TP / (2TP + FP + FN); NaN when both masks are empty (nnU-Net), 0 when exactly one is. */
  dice: number;
  /** TP / (TP + FP + FN); same empty-mask rule as Dice. */
  iou: number;
  /** TP / (TP + FN); NaN when the reference is empty. */
  sensitivity: number;
  /** TP / (TP + FP); NaN when the prediction is empty. */
  precision: number;
  /** TN / (TN + FP); NaN when the reference covers the whole grid. */
  specificity: number;
}

export interface VolumeMetrics {
  predVolumeMm3: number;
  refVolumeMm3: number;
  /**
   * Signed relative volume error (Vpred − Vref) / Vref: positive means over-segmentation.
   * NaN when the reference is empty (the reference CV workflow's convention), whatever the
   * prediction holds.
   */
  rve: number;
}

export function confusion(pred: Uint8Array, ref: Uint8Array): ConfusionCounts {
  if (pred.length !== ref.length) throw new Error("overlap: prediction and reference differ in size");
  let tp = 0;
  let np = 0;
  let nr = 0;
  for (let i = 0; i < pred.length; i++) {
    const p = pred[i]!;
    const r = ref[i]!;
    np += p;
    nr += r;
    tp += p & r;
  }
  return { tp, fp: np - tp, fn: nr - tp, tn: pred.length - np - nr + tp };
}

/** a / b with 0/0 = NaN: the metric is undefined rather than perfect or failed. */
function ratio(a: number, b: number): number {
  return b === 0 ? Number.NaN : a / b;
}

export function overlapMetrics(c: ConfusionCounts): OverlapMetrics {
  return {
    ...c,
    dice: ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn),
    iou: ratio(c.tp, c.tp + c.fp + c.fn),
    sensitivity: ratio(c.tp, c.tp + c.fn),
    precision: ratio(c.tp, c.tp + c.fp),
    specificity: ratio(c.tn, c.tn + c.fp),
  };
}

export function volumeMetrics(c: ConfusionCounts, spacing: readonly number[]): VolumeMetrics {
  const voxel = spacing.reduce((a, b) => a * b, 1);
  const np = c.tp + c.fp;
  const nr = c.tp + c.fn;
  return { predVolumeMm3: np * voxel, refVolumeMm3: nr * voxel, rve: ratio(np - nr, nr) };
}
