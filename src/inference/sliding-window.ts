// Sliding-window inference over a whole volume: rule 4 (aggregation) of the shared
// specification in src/py/medpipe/sliding_window.py, on any WindowModel (onnxruntime in
// practice). Memory stays bounded: besides the input volume, only the accumulator
// (K·N float32, which becomes the result in place) and one batch of windows (input, output
// and TTA sum) are alive; windows are never stored, the weight sum is recomputed per voxel
// at the end rather than kept in a volume-sized buffer, and the patch-sized importance map is
// computed from its per-axis factors where it is needed rather than stored.

import { InferenceError } from "./errors.js";
import { type ChannelVolume, voxelCount } from "./layout.js";
import type { WindowModel } from "./model.js";
import {
  accumulateWindow,
  addFlippedBack,
  divideByWeightSum,
  flipFlags,
  foregroundOfTwoInPlace,
  type Geometry,
  gatherWindow,
  lift3,
  patchVoxels,
  softmaxInPlace,
} from "./window-io.js";
import {
  flipSubsets,
  isWeightMode,
  padWidths,
  type WeightMode,
  weightFactors,
  windowStarts,
} from "./windows.js";

export interface SlidingWindowOptions {
  /** Patch size per spatial axis, in the volume's axis order. */
  patch: readonly number[];
  /** Fraction of the patch shared by neighbouring windows, in [0, 1). */
  overlap: number;
  mode: WeightMode;
  /** Windows per model call (default 1). Results do not depend on it. */
  swBatchSize?: number;
  /** Average the probabilities over all 2^d flips of each window (default false). */
  tta?: boolean;
  /**
   * Leave class 0 (background) out of the result: shape [K−1, ...spatial], classes 1..K−1,
   * each value the same bits as in the full result (default false). Background is then
   * 1 − the sum of the others; a two-class model's result is its foreground probability alone,
   * half the memory and less than half the work.
   */
  omitBackground?: boolean;
  /** Called after each batch with the windows done so far and the total. */
  onProgress?: (done: number, total: number) => void;
}

function positiveInteger(value: number): boolean {
  return Number.isInteger(value) && value >= 1;
}

/** Checks that fail before any work, with messages that say what to change. */
function validate(model: WindowModel, volume: ChannelVolume, options: SlidingWindowOptions): void {
  const { shape } = volume;
  if (shape.length < 2 || shape.length > 4 || !shape.every(positiveInteger))
    throw new RangeError(
      `volume shape must be [C, ...spatial] with 1-3 spatial axes, got [${shape.join(", ")}]`,
    );
  const [channels = 0, ...spatial] = shape;
  if (volume.data.length !== channels * voxelCount(spatial))
    throw new RangeError(
      `volume data has ${volume.data.length} values, shape [${shape.join(", ")}] needs ${channels * voxelCount(spatial)}`,
    );
  const { patch, overlap, mode } = options;
  if (patch.length !== spatial.length || !patch.every(positiveInteger))
    throw new RangeError(
      `patch [${patch.join(", ")}] must have ${spatial.length} positive integer sizes, one per spatial axis`,
    );
  if (!(overlap >= 0 && overlap < 1)) throw new RangeError(`overlap must be in [0, 1), got ${overlap}`);
  if (!isWeightMode(mode))
    throw new RangeError(`unknown weighting ${JSON.stringify(mode)}: expected constant, gaussian or hann`);
  const batch = options.swBatchSize ?? 1;
  if (!positiveInteger(batch)) throw new RangeError(`swBatchSize must be an integer >= 1, got ${batch}`);
  if (model.spatialDims !== null && model.spatialDims !== spatial.length)
    throw new InferenceError(
      model.source,
      `the model takes ${model.spatialDims}D images, the volume is ${spatial.length}D`,
    );
  if (model.inputChannels !== null && model.inputChannels !== channels)
    throw new InferenceError(
      model.source,
      `the model takes ${model.inputChannels} input channel(s), the volume has ${channels}`,
    );
}

/** The output must be (B, K, *patch): a model that changes the spatial size cannot be blended. */
function checkOutput(
  model: WindowModel,
  dims: readonly number[],
  inputDims: readonly number[],
  classes: number | null,
): number {
  const k = dims[1] ?? 0;
  const ok =
    dims.length === inputDims.length &&
    dims[0] === inputDims[0] &&
    k >= 1 &&
    (classes === null || k === classes) &&
    dims.slice(2).every((n, a) => n === inputDims[a + 2]);
  if (!ok)
    throw new InferenceError(
      model.source,
      `the model answered shape [${dims.join(", ")}] to input [${inputDims.join(", ")}]; expected [batch, classes, ${inputDims.slice(2).join(", ")}]${classes === null ? "" : ` with ${classes} classes`}`,
    );
  return k;
}

/**
 * Per-class probabilities (softmax of the logits, blended over overlapping windows with
 * the importance weights, divided by the summed weights) for a (C, *spatial) volume in
 * the layout of layout.ts; the result has shape [K, ...spatial] in the same layout.
 */
export async function slidingWindowInference(
  model: WindowModel,
  volume: ChannelVolume,
  options: SlidingWindowOptions,
): Promise<ChannelVolume> {
  validate(model, volume, options);
  const [channels = 1, ...spatial] = volume.shape;
  const d = spatial.length;
  const { patch, overlap, mode } = options;
  const swBatch = options.swBatchSize ?? 1;

  const pads = padWidths(spatial, patch);
  const padded = spatial.map((n, a) => n + pads[a]![0] + pads[a]![1]);
  const geometry: Geometry = {
    size: lift3(spatial, 1),
    patch: lift3(patch, 1),
    before: lift3(
      pads.map(([b]) => b),
      0,
    ),
  };
  // Rule 2: the Cartesian product of the per-axis starts, in C order (the last axis fastest).
  const perAxis = padded.map((size, a) => windowStarts(size, patch[a]!, overlap));
  const axisStarts: [number[], number[], number[]] = [
    perAxis[0] ?? [0],
    perAxis[1] ?? [0],
    perAxis[2] ?? [0],
  ];
  const starts: [number, number, number][] = [];
  for (const s0 of axisStarts[0])
    for (const s1 of axisStarts[1]) for (const s2 of axisStarts[2]) starts.push([s0, s1, s2]);
  const weights = weightFactors(patch, mode);
  const subsets = (options.tta ? flipSubsets(d) : [[]]).map(flipFlags);
  const p = patchVoxels(geometry);
  const n = voxelCount(spatial);

  let classes: number | null = null;
  const skip = options.omitBackground ? 1 : 0;
  // A two-class model that computes its own class-1 probability is asked for that alone.
  const foreground = skip === 1 ? model.runForeground?.bind(model) : undefined;
  // Where the kept channels sit in a model call's buffer: `stride` values per window, the
  // first kept channel `lead` values in, `kept` channels of p voxels each.
  let layout: { stride: number; lead: number; kept: number } | null = null;
  const inputs = new Map<number, Float32Array>(); // one buffer per batch size seen (at most two)
  let ttaSum = new Float32Array(0);

  /** The kept channels' probabilities of one model call (B windows), in place in its buffer. */
  const callProbabilities = async (input: Float32Array, inputDims: number[]): Promise<Float32Array> => {
    const b = inputDims[0]!;
    if (foreground) {
      const out = await foreground(input, inputDims);
      checkOutput(model, out.dims, inputDims, 1);
      layout ??= { stride: p, lead: 0, kept: 1 };
      return out.data;
    }
    const out = await model.run(input, inputDims);
    const k = checkOutput(model, out.dims, inputDims, classes);
    if (k <= skip)
      throw new InferenceError(
        model.source,
        "omitBackground needs a model with two or more classes; it has one",
      );
    classes = k;
    for (let w = 0; w < b; w++)
      if (skip === 1 && k === 2) foregroundOfTwoInPlace(out.data, w * k * p, p);
      else softmaxInPlace(out.data, w * k * p, k, p);
    layout ??= { stride: k * p, lead: skip * p, kept: k - skip };
    return out.data;
  };

  /** Probabilities of a batch of windows (layout above); with TTA the mean over flips. */
  const batchProbabilities = async (group: readonly number[][]): Promise<Float32Array> => {
    const b = group.length;
    let input = inputs.get(b);
    if (!input) {
      input = new Float32Array(b * channels * p);
      inputs.set(b, input);
    }
    const inputDims = [b, channels, ...patch];
    for (const [s, flip] of subsets.entries()) {
      for (const [w, start] of group.entries())
        gatherWindow(volume.data, channels, geometry, start, flip, input, w * channels * p);
      const probs = await callProbabilities(input, inputDims);
      if (subsets.length === 1) return probs; // no TTA: the model's buffer is ours to use
      const { stride, lead, kept } = layout!;
      if (ttaSum.length < b * stride) ttaSum = new Float32Array(b * stride);
      if (s === 0) ttaSum.fill(0, 0, b * stride);
      for (let w = 0; w < b; w++) addFlippedBack(probs, ttaSum, w * stride + lead, kept, geometry, flip);
    }
    // Division, not a reciprocal product: the mean exactly as torch's `total / len(subsets)`.
    for (let t = 0; t < b * layout!.stride; t++) ttaSum[t] = ttaSum[t]! / subsets.length;
    return ttaSum;
  };

  let acc = new Float32Array(0);
  for (let first = 0; first < starts.length; first += swBatch) {
    const group = starts.slice(first, first + swBatch);
    const probs = await batchProbabilities(group);
    const { stride, lead, kept } = layout!;
    if (acc.length === 0) acc = new Float32Array(kept * n);
    for (const [w, start] of group.entries())
      accumulateWindow(probs, w * stride + lead, kept, weights, geometry, start, acc);
    options.onProgress?.(first + group.length, starts.length);
  }

  const { kept } = layout!;
  divideByWeightSum(acc, kept, weights, geometry, axisStarts);
  return { data: acc, shape: [kept, ...spatial] };
}
