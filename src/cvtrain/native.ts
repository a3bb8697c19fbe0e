// A held-out prediction from the preprocessed grid to a scored NIfTI in the image's own space:
// the preprocess inverse (toNativeSpace), post-processing, the NIfTI file, and the metrics against
// the original label with that case's own spacing.
import { npyToVolume, readNifti, readNpy, writeNifti, writeNpy } from "../imaging/index.js";
import type { Image } from "../imaging/types.js";
import { evaluateCase, flattenMetrics, keepLargestComponent } from "../metrics/index.js";
import { toNativeSpace } from "../preprocess/native.js";
import type { CaseProperties } from "../preprocess/types.js";

export interface PostProcessing {
  keepLargestComponent: boolean;
  /** Binary tasks only: class 1 where its probability exceeds this (else the argmax). */
  threshold: number | null;
}

/**
 * The native-space label map of one case from its grid probabilities (class-last blocks,
 * Fortran order, as medpipe.predict writes them): probabilities resampled linearly back to the
 * canonical grid and reoriented (toNativeSpace), then argmax or threshold, then per foreground
 * class only its largest connected component (full connectivity) when asked.
 */
export function nativeLabel(
  probabilities: Float32Array,
  properties: CaseProperties,
  classes: number,
  post: PostProcessing,
): Image<Uint8Array> {
  const native = toNativeSpace({ probabilities }, properties);
  const label = native.label;
  if (post.threshold !== null) {
    if (classes !== 2)
      throw new Error(
        `plan.inference.threshold applies to binary tasks only; this one has ${classes} classes`,
      );
    const p = native.probabilities;
    if (!p) throw new Error("internal: toNativeSpace returned no probabilities");
    const n = label.data.length;
    for (let i = 0; i < n; i++) label.data[i] = (p.data[n + i] as number) > post.threshold ? 1 : 0;
  }
  if (post.keepLargestComponent) keepLargestPerClass(label.data, label.shape, classes);
  return label;
}

/** In place: voxels of class k outside class k's largest component become background. */
export function keepLargestPerClass(data: Uint8Array, shape: number[], classes: number): void {
  const mask = new Uint8Array(data.length);
  for (let k = 1; k < classes; k++) {
    let any = false;
    for (let i = 0; i < data.length; i++) {
      const hit = data[i] === k;
      mask[i] = hit ? 1 : 0;
      any ||= hit;
    }
    if (!any) continue;
    const keep = keepLargestComponent(mask, shape);
    for (let i = 0; i < data.length; i++) if (mask[i] && !keep[i]) data[i] = 0;
  }
}

/**
 * Writes the label map as NIfTI with the original image's affine (exactly, as nibabel reads it),
 * or, for a `.npy` path (2D slices, which carry no placement), as a Fortran-order uint8 array.
 */
export async function writePrediction(path: string, label: Image<Uint8Array>): Promise<void> {
  if (path.endsWith(".npy")) {
    await writeNpy(path, { data: label.data, dtype: "uint8", shape: label.shape, fortranOrder: true });
    return;
  }
  await writeNifti(path, { data: label.data, shape: label.shape, affine: label.affine, dtype: "uint8" });
}

/** JSON has no NaN or Infinity: they travel as the strings `pipeline evaluate` writes too. */
export type JsonNumber = number | "NaN" | "Infinity" | "-Infinity";

export function jsonNumber(v: number): JsonNumber {
  return Number.isFinite(v) ? v : Number.isNaN(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity";
}

export function fromJsonNumber(v: JsonNumber): number {
  return typeof v === "number" ? v : v === "NaN" ? Number.NaN : v === "Infinity" ? Infinity : -Infinity;
}

export interface LabelScore {
  label: number;
  name: string;
  metrics: Record<string, JsonNumber>;
}

export interface CaseScore {
  id: string;
  /** Voxel size in mm the distances were measured with: the reference label's own. */
  spacing: number[];
  shape: number[];
  labels: LabelScore[];
}

/**
 * Every metric of every foreground class (labels 1..K-1, scored one by one) of a native-space
 * prediction against the original label file. The spacing comes from that file.
 */
export async function scoreCase(
  id: string,
  prediction: Image<Uint8Array>,
  referencePath: string,
  labelNames: Record<string, string>,
): Promise<CaseScore> {
  // A .npy label (2D slices) has no header: spacing 1, as the analysis read it.
  const ref = referencePath.endsWith(".npy")
    ? npyToVolume(await readNpy(referencePath))
    : await readNifti(referencePath);
  const spatial = ref.shape.slice(0, prediction.shape.length);
  if (
    ref.shape.length > prediction.shape.length &&
    ref.shape.slice(prediction.shape.length).some((d) => d !== 1)
  )
    throw new Error(`${referencePath}: label shape [${ref.shape}] is not a ${prediction.shape.length}D map`);
  const reference = { data: ref.data, shape: spatial, spacing: ref.spacing.slice(0, spatial.length) };
  const labels = Object.keys(labelNames)
    .map(Number)
    .filter((k) => k !== 0)
    .sort((a, b) => a - b);
  const results = evaluateCase(
    { data: prediction.data, shape: prediction.shape, spacing: reference.spacing },
    reference,
    { labels },
  );
  return {
    id,
    spacing: reference.spacing,
    shape: spatial,
    labels: results.map((r) => {
      const k = r.label as number;
      const flat = flattenMetrics(r);
      return {
        label: k,
        name: labelNames[String(k)] ?? String(k),
        metrics: Object.fromEntries(Object.entries(flat).map(([m, v]) => [m, jsonNumber(v)])),
      };
    }),
  };
}
