// The way back: a prediction on the preprocessed grid → the original image grid and orientation,
// using a case's properties.json. cv-train and infer call this before scoring or writing NIfTI.
import { readFile } from "node:fs/promises";
import { fromClosestCanonical } from "../imaging/orientation.js";
import { resampleImage, resampleLabels } from "../imaging/resample.js";
import type { Image, Volume } from "../imaging/types.js";
import type { CaseProperties } from "./types.js";

/**
 * A prediction on the preprocessed grid (shape = properties.resampled_shape, first axis fastest).
 * `label`: a label map (any integer array). `probabilities`: per-class values with the class
 * axis last, shape [...resampled_shape, K] (Fortran order, as image.npy). Give one or both.
 */
export interface GridPrediction {
  label?: ArrayLike<number>;
  probabilities?: Float32Array;
  /**
   * A two-class prediction as its class-1 probability alone (shape resampled_shape): half the
   * resampling of `probabilities`; the label is then p > 0.5, the argmax of (1 − p, p).
   */
  foreground?: Float32Array;
}

/** The prediction in native space: original shape, spacing and affine (bit for bit). */
export interface NativePrediction {
  label: Image<Uint8Array>;
  /** Shape [...original_shape, K] when probabilities were given. */
  probabilities?: Image<Float32Array>;
  /** Shape original_shape when a foreground probability was given. */
  foreground?: Image<Float32Array>;
}

const product = (s: number[]) => s.reduce((a, b) => a * b, 1);

/**
 * Maps a prediction back to the original image: the inverse resampling to canonical_shape
 * (labels one-hot linear + argmax, probabilities linear; nearest along the same anisotropic axis
 * as the forward pass), then the inverse of the closest-canonical reorientation. When only
 * probabilities are given, the label is their argmax in native space (ties → lowest class);
 * when only a foreground probability is given, the label is p > 0.5 there.
 * For a case whose spacing equals the target, the label comes back exactly.
 */
export function toNativeSpace(prediction: GridPrediction, properties: CaseProperties): NativePrediction {
  const grid = properties.resampled_shape;
  const canonical = properties.canonical_shape;
  const n = product(grid);
  const options = { nearestAxis: properties.nearest_axis };
  const onGrid = (data: Volume["data"]): Volume => ({
    data,
    shape: grid,
    spacing: properties.target_spacing,
  });

  let probs: Float32Array | null = null;
  let classes = 0;
  if (prediction.probabilities) {
    const p = prediction.probabilities;
    if (p.length % n !== 0 || p.length === 0)
      throw new Error(
        `probabilities have ${p.length} values, not a multiple of the grid's ${n} voxels [${grid.join(", ")}]`,
      );
    classes = p.length / n;
    const m = product(canonical);
    probs = new Float32Array(m * classes);
    for (let k = 0; k < classes; k++)
      probs.set(resampleImage(onGrid(p.subarray(k * n, (k + 1) * n)), canonical, options).data, k * m);
  }

  let foreground: Float32Array | null = null;
  if (prediction.foreground) {
    if (prediction.foreground.length !== n)
      throw new Error(
        `foreground has ${prediction.foreground.length} voxels, the grid [${grid.join(", ")}] has ${n}`,
      );
    foreground = resampleImage(onGrid(prediction.foreground), canonical, options).data;
  }

  let label: Uint8Array;
  if (prediction.label) {
    if (prediction.label.length !== n)
      throw new Error(`label has ${prediction.label.length} voxels, the grid [${grid.join(", ")}] has ${n}`);
    const src = prediction.label instanceof Uint8Array ? prediction.label : Uint8Array.from(prediction.label);
    label = resampleLabels(onGrid(src), canonical, options).data;
  } else if (probs) label = argmax(probs, classes);
  else if (foreground) label = Uint8Array.from(foreground, (p) => (p > 0.5 ? 1 : 0));
  else throw new Error("toNativeSpace needs a label map, probabilities or a foreground probability");

  const place = <T extends Float32Array | Uint8Array>(data: T, extra: number[]): Image<T> => {
    const image: Image<T> = {
      data,
      shape: [...canonical, ...extra],
      spacing: [...properties.canonical_spacing, ...extra.map(() => 1)],
      affine: properties.canonical_affine.slice(),
      dtype: data instanceof Uint8Array ? "uint8" : "float32",
    };
    // 2D slices were never reoriented; the 3D inverse also restores the original affine exactly.
    if (properties.spatial_dims === 2) return { ...image, affine: properties.original_affine.slice() };
    return fromClosestCanonical(image, properties.canonical);
  };
  const out: NativePrediction = { label: place(label, []) };
  if (probs) out.probabilities = place(probs, [classes]);
  if (foreground) out.foreground = place(foreground, []);
  return out;
}

/** Class index with the highest value per voxel; class-last blocks of `count` voxels each. */
function argmax(probs: Float32Array, classes: number): Uint8Array {
  const count = probs.length / classes;
  const out = new Uint8Array(count);
  const best = probs.slice(0, count);
  for (let k = 1; k < classes; k++) {
    const base = k * count;
    for (let i = 0; i < count; i++)
      if (probs[base + i]! > best[i]!) {
        best[i] = probs[base + i]!;
        out[i] = k;
      }
  }
  return out;
}

/** Reads a case's properties.json (as preprocess wrote it). */
export async function readProperties(path: string): Promise<CaseProperties> {
  return JSON.parse(await readFile(path, "utf8")) as CaseProperties;
}
