// Formal evaluation: a model package on the validation cases in their original spacing, through
// the code every other prediction goes through (src/infer: the package's plan, the sliding window
// on onnxruntime or torch, back to the native grid, post-processing) and scored with src/metrics
// on the native grid against the label remapped to model classes.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { DatasetCase } from "../datasets/types.js";
import { readImage, readNiftiHeader } from "../imaging/index.js";
import {
  type BackendOptions,
  inferCase,
  openBackend,
  readModelPackage,
  writePrediction,
} from "../infer/index.js";
import { confusion, overlapMetrics } from "../metrics/index.js";
import type { Mapping } from "./inputs.js";
import { remapTable } from "./prepare.js";

export interface FormalCase {
  id: string;
  /** Model class → Dice; null when the class is absent from both prediction and reference. */
  dice: Record<string, number | null>;
  /** Mean over the classes with a Dice; null when there is none. */
  mean_dice: number | null;
  prediction: string;
  /** The original label file the prediction was scored against (absolute). */
  label: string;
  /** The image file(s) predicted, one per channel (absolute). */
  image: string[];
}

export interface FormalResult {
  package: string;
  /** sha256 of `sha256sum model.onnx plan.json` inside the package (readModelPackage). */
  package_digest: string;
  cases: FormalCase[];
  /** Mean over the cases' mean_dice (cases with none left out); null when no case has one. */
  mean_dice: number | null;
  /** What ran the sliding window: onnxruntime (CPU) or torch, and torch's device. */
  backend: string;
  device: string;
  seconds: number;
}

/** Dice of class k: 2 TP / (2 TP + FP + FN), NaN → null when k is in neither map. */
export function classDice(pred: Uint8Array, ref: Uint8Array, k: number): number | null {
  const p = new Uint8Array(pred.length);
  const r = new Uint8Array(ref.length);
  for (let i = 0; i < pred.length; i++) {
    p[i] = pred[i] === k ? 1 : 0;
    r[i] = ref[i] === k ? 1 : 0;
  }
  const d = overlapMetrics(confusion(p, r)).dice;
  return Number.isNaN(d) ? null : d;
}

const mean = (xs: number[]): number | null => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

/**
 * Predicts every case with the package and scores the mapped classes. Predictions go to
 * `predictionsDir/<id>.nii.gz`, or `<id>.npy` for a 2D model (the evidence the numbers come from).
 */
export async function formalEvaluation(
  packageDir: string,
  cases: DatasetCase[],
  mapping: Mapping,
  predictionsDir: string,
  onCase: (id: string, dice: number | null) => void = () => {},
  backend: BackendOptions = {},
): Promise<FormalResult> {
  const t0 = performance.now();
  const pkg = await readModelPackage(packageDir);
  const net = await openBackend(pkg, backend);
  const lut = remapTable(mapping);
  const classes = [...new Set(mapping.map(([, k]) => k))].sort((a, b) => a - b);
  await mkdir(predictionsDir, { recursive: true });
  const rows: FormalCase[] = [];
  try {
    for (const c of cases) {
      const pred = await inferCase(net.model, pkg.plan, c.image);
      const labelPath = c.label as string;
      const ref = await readImage(labelPath);
      const n = pred.label.data.length;
      if (ref.data.length < n)
        throw new Error(`${labelPath}: ${ref.data.length} voxels, the prediction has ${n}`);
      const mapped = new Uint8Array(n);
      for (let i = 0; i < n; i++) mapped[i] = lut[ref.data[i] as number] as number;
      const dice: Record<string, number | null> = {};
      for (const k of classes) dice[String(k)] = classDice(pred.label.data, mapped, k);
      // as infer writes them: NIfTI beside NIfTI images, .npy for 2D slices
      const slice = pkg.plan.spatial_dims === 2;
      const rel = `${c.id}${slice ? ".npy" : ".nii.gz"}`;
      await writePrediction(
        join(predictionsDir, rel),
        pred.label,
        slice ? null : await readNiftiHeader(c.image[0] as string),
      );
      const row = {
        id: c.id,
        dice,
        mean_dice: mean(Object.values(dice).filter((d): d is number => d !== null)),
        prediction: rel,
        label: labelPath,
        image: c.image.slice(),
      };
      rows.push(row);
      onCase(c.id, row.mean_dice);
    }
  } finally {
    await net.release();
  }
  return {
    package: pkg.dir,
    package_digest: pkg.digest.package,
    cases: rows,
    mean_dice: mean(rows.map((r) => r.mean_dice).filter((d): d is number => d !== null)),
    backend: net.name,
    device: net.runtime.device,
    seconds: (performance.now() - t0) / 1000,
  };
}
