// Lesion detection rate: the share of reference connected components the prediction finds.
import { type Connectivity, faceConnectivity, labelComponents } from "./components.js";

export interface LesionOptions {
  /**
   * Connectivity of reference lesions. Default: face connectivity (6 in 3D, 4 in 2D), which
   * is scipy.ndimage.label's default and what the reference CV workflow used.
   */
  connectivity?: Connectivity;
  /**
   * 0 (default): any overlap detects a lesion. Above 0: a lesion is detected when its
   * per-lesion Dice is strictly greater than this, where per-lesion Dice compares the lesion
   * L with the prediction inside it, 2|P∩L| / (|L| + |P∩L|) — the reference workflow's
   * definition, a monotone function of the covered fraction f: 2f / (1 + f).
   */
  diceThreshold?: number;
}

export interface LesionDetection {
  lesions: number;
  detected: number;
  /** detected / lesions; NaN when the reference has no lesion. */
  rate: number;
  connectivity: Connectivity;
  diceThreshold: number;
}

/** `pred` and `ref` are 0/1 masks on the same grid. */
export function lesionDetection(
  pred: Uint8Array,
  ref: Uint8Array,
  shape: readonly number[],
  options: LesionOptions = {},
): LesionDetection {
  const connectivity = options.connectivity ?? faceConnectivity(shape.length);
  const diceThreshold = options.diceThreshold ?? 0;
  const { labels, count, sizes } = labelComponents(ref, shape, connectivity);
  const hits = new Float64Array(count + 1);
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i]!;
    if (l !== 0 && pred[i] !== 0) hits[l]!++;
  }
  let detected = 0;
  for (let l = 1; l <= count; l++) {
    const h = hits[l]!;
    const found = diceThreshold > 0 ? (2 * h) / (sizes[l]! + h) > diceThreshold : h > 0;
    if (found) detected++;
  }
  return {
    lesions: count,
    detected,
    rate: count === 0 ? Number.NaN : detected / count,
    connectivity,
    diceThreshold,
  };
}
