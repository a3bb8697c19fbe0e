// One image (one case, one file per channel) through a model package: the preprocess skill's
// own in-memory preprocessing, the sliding window (onnxruntime here, or a whole-volume backend
// such as torch), back to the image's native grid, label decision (argmax or threshold) there,
// keep-largest-component per class.
import type { Image } from "../imaging/types.js";
import {
  type ChannelVolume,
  channelsFirst,
  slidingWindowInference,
  voxelCount,
  type WindowModel,
} from "../inference/index.js";
import { keepLargestComponent } from "../metrics/index.js";
// Module by module, not preprocess/index.js: that one also brings the worker pool, which the
// verifier (onnx-runner.ts predicts a case with this) must not reach.
import { prepareCase } from "../preprocess/case.js";
import { toNativeSpace } from "../preprocess/native.js";
import type { AppliedNormalization } from "../preprocess/normalize-case.js";
import type { CaseProperties } from "../preprocess/types.js";
import { InferError } from "./errors.js";
import { type InferencePlan, planClasses, windowSettings } from "./package.js";

/**
 * A backend that runs the whole sliding window itself (the torch worker): softmax
 * probabilities [K, ...spatial] for a preprocessed volume [C, ...spatial], with the plan's
 * window settings it was started with.
 */
export interface VolumePredictor {
  /** Where the network came from (its file), for one-line error messages. */
  readonly source: string;
  predictVolume(volume: ChannelVolume): Promise<ChannelVolume>;
}

const isVolumePredictor = (m: WindowModel | VolumePredictor): m is VolumePredictor => "predictVolume" in m;

export interface InferCaseOptions {
  /** Also return the per-class probabilities in native space (shape [...original, K]). */
  probabilities?: boolean;
  /** Called after each batch of windows (onnxruntime; a VolumePredictor reports per volume only). */
  onProgress?: (done: number, total: number) => void;
}

export interface CasePrediction {
  /** uint8 label map with the image's own shape (spatial part), spacing and affine. */
  label: Image<Uint8Array>;
  /** Softmax probabilities in native space, class axis last; only when asked for. */
  probabilities?: Image<Float32Array>;
  /** The preprocessing record (as properties.json), e.g. for the resampled grid. */
  properties: CaseProperties;
  normalization: AppliedNormalization;
  /** Axis codes of the image, e.g. ["L", "P", "S"] (["-", "-"] for 2D slices). */
  orientation: string[];
  /** Label value (as a string) → voxels in native space, after post-processing; every class listed. */
  voxels: Record<string, number>;
  /** Voxels keep-largest-component removed, per foreground class (empty when it is off). */
  removed: Record<string, number>;
  seconds: CaseInferenceSeconds;
}

/** Seconds per step of one case. */
export interface CaseInferenceSeconds {
  /** Reading, reorienting, resampling and normalizing (prepareCase). */
  preprocess: number;
  /** The sliding window. */
  inference: number;
  /** Probabilities back to the native grid and the label decision. */
  native: number;
  /** Threshold and keep-largest-component. */
  postprocess: number;
  total: number;
}

const since = (t: number) => (performance.now() - t) / 1000;

/**
 * Predicts one case. `imagePaths` are its channel files in channel order (one 4D file may carry
 * several channels). The plan is the model package's (readModelPackage); the model any
 * WindowModel (in practice loadModel(package): the sliding window runs here on onnxruntime) or a
 * VolumePredictor (the torch backend). Errors name the offending file in one line.
 */
export async function inferCase(
  model: WindowModel | VolumePredictor,
  plan: InferencePlan,
  imagePaths: readonly string[],
  options: InferCaseOptions = {},
): Promise<CasePrediction> {
  const t0 = performance.now();
  // The very function preprocess runs for a training case, with no label: same reorientation,
  // resampling and normalization rule (normalize-case.ts), nothing written.
  const prepared = await prepareCase({
    id: "infer",
    image: imagePaths.slice(),
    label: null,
    spatialDims: plan.spatial_dims,
    targetSpacing: plan.target_spacing,
    normalization: plan.normalization,
    channels: plan.dataset.channels.length,
    labelValues: [],
  });
  const { properties } = prepared;
  const grid = properties.resampled_shape;
  const volume: ChannelVolume = channelsFirst(
    prepared.image,
    [...grid, plan.dataset.channels.length],
    plan.spatial_dims,
  );
  const tPre = since(t0);

  const t1 = performance.now();
  const inf = plan.inference;
  // A two-class model's result is carried as its foreground probability alone (background is
  // 1 − p): half the memory and half the resampling. Kept whole when probabilities are saved.
  const binary = planClasses(plan) === 2 && !options.probabilities;
  const probs = isVolumePredictor(model)
    ? await model.predictVolume(volume)
    : await slidingWindowInference(model, volume, {
        ...windowSettings(plan),
        omitBackground: binary,
        ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      });
  const tInf = since(t1);
  const omitted = binary && !isVolumePredictor(model);
  const classes = probs.shape[0]! + (omitted ? 1 : 0);
  if (classes !== planClasses(plan))
    throw new InferError(
      model.source,
      `the model outputs ${classes} classes, its plan.json declares ${planClasses(plan)} (labels ${Object.keys(plan.dataset.labels).join(", ")})`,
    );

  // Probabilities go back (linear), and the label is decided on the native grid: resampling a
  // label map instead would decide on the coarser grid and lose the sub-voxel boundary.
  const t2 = performance.now();
  const n = voxelCount(probs.shape.slice(1));
  const native = binary
    ? toNativeSpace({ foreground: omitted ? probs.data : probs.data.subarray(n, 2 * n) }, properties)
    : toNativeSpace({ probabilities: probs.data }, properties);
  const tNative = since(t2);

  const t3 = performance.now();
  const label = native.label;
  const threshold = inf.threshold ?? null;
  if (threshold !== null && native.foreground) {
    const fg = native.foreground.data;
    for (let v = 0; v < fg.length; v++) label.data[v] = fg[v]! > threshold ? 1 : 0;
  } else if (threshold !== null) applyThreshold(label.data, native.probabilities!.data, classes, threshold);
  const spatial = label.shape.slice(0, plan.spatial_dims);
  const removed: Record<string, number> = {};
  if (inf.keep_largest_component)
    for (let k = 1; k < classes; k++) {
      const n = keepLargest(label.data, spatial, k);
      if (n > 0) removed[String(k)] = n;
    }
  const voxels = countClasses(label.data, classes);
  const tPost = since(t3);

  const out: CasePrediction = {
    label,
    properties,
    normalization: prepared.normalization,
    orientation: prepared.orientation,
    voxels,
    removed,
    seconds: { preprocess: tPre, inference: tInf, native: tNative, postprocess: tPost, total: since(t0) },
  };
  if (options.probabilities && native.probabilities) out.probabilities = native.probabilities;
  return out;
}

/**
 * plan.inference.threshold: a voxel takes its most probable foreground class when that class's
 * probability exceeds the threshold, else background. With two classes and 0.5 this is the
 * argmax (p1 > 0.5; an exact tie stays background, as argmax's lowest-class rule).
 */
function applyThreshold(label: Uint8Array, probs: Float32Array, classes: number, threshold: number): void {
  const n = label.length;
  for (let v = 0; v < n; v++) {
    let best = 0;
    let p = -1;
    for (let k = 1; k < classes; k++) {
      const q = probs[k * n + v]!;
      if (q > p) {
        p = q;
        best = k;
      }
    }
    label[v] = p > threshold ? best : 0;
  }
}

/**
 * Keeps only the largest connected component (full connectivity: 26 neighbours in 3D, as MONAI's
 * KeepLargestConnectedComponent by default) of class k; its other voxels become background.
 * Returns how many voxels were removed.
 */
function keepLargest(label: Uint8Array, shape: number[], k: number): number {
  const mask = new Uint8Array(label.length);
  let any = false;
  for (let v = 0; v < label.length; v++)
    if (label[v] === k) {
      mask[v] = 1;
      any = true;
    }
  if (!any) return 0;
  const keep = keepLargestComponent(mask, shape);
  let removed = 0;
  for (let v = 0; v < label.length; v++)
    if (mask[v] === 1 && keep[v] === 0) {
      label[v] = 0;
      removed++;
    }
  return removed;
}

function countClasses(label: Uint8Array, classes: number): Record<string, number> {
  const counts = new Float64Array(Math.max(classes, 256));
  for (let v = 0; v < label.length; v++) counts[label[v]!]!++;
  const out: Record<string, number> = {};
  for (let k = 0; k < counts.length; k++) if (k < classes || counts[k]! > 0) out[String(k)] = counts[k]!;
  return out;
}
