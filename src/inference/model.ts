// What the sliding window needs from a network: run a batch of patches. Kept apart from
// onnxruntime so the window logic can be tested with a plain function, and so another
// backend (torch over a pipe, a CUDA session) can plug in without touching it.

/** A model's answer to one batch: logits, C order, dims (B, K, *patch). */
export interface WindowBatchOutput {
  data: Float32Array;
  dims: readonly number[];
}

export interface WindowModel {
  /** Where the model came from (its file), for one-line error messages. */
  readonly source: string;
  /** Input channels the model declares, or null when its graph leaves that axis symbolic. */
  readonly inputChannels: number | null;
  /** Spatial axes of the model's input (rank − 2), or null when unknown. */
  readonly spatialDims: number | null;
  /**
   * Logits for a batch `input` of dims (B, C, *patch), flat in C order (last axis
   * fastest), as ONNX and torch lay tensors out. The caller may overwrite the returned
   * data, and does not touch `input` until the promise settles.
   */
  run(input: Float32Array, dims: readonly number[]): Promise<WindowBatchOutput>;
  /**
   * A two-class model's class-1 probability (softmax of its logits), dims (B, 1, *patch),
   * when the model computes it itself (export_onnx.py's "foreground" output); used by the
   * sliding window when the background is left out. Same contract as `run` otherwise.
   */
  runForeground?(input: Float32Array, dims: readonly number[]): Promise<WindowBatchOutput>;
}
