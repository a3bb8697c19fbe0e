// Sliding-window inference on onnxruntime-node. See README.md for the layout and the
// shared specification (src/py/medpipe/sliding_window.py).
export { firstLine, InferenceError } from "./errors.js";
export { argmax, type ChannelVolume, channelsFirst, channelsLast, voxelCount } from "./layout.js";
export type { WindowBatchOutput, WindowModel } from "./model.js";
export { type LoadModelOptions, loadModel, type OnnxModel } from "./session.js";
export { type SlidingWindowOptions, slidingWindowInference } from "./sliding-window.js";
export {
  flipSubsets,
  GAUSSIAN_FLOOR,
  GAUSSIAN_SIGMA_SCALE,
  importanceMap,
  isWeightMode,
  padWidths,
  WEIGHT_MODES,
  type WeightMode,
  weightProfile,
  windowGrid,
  windowStarts,
} from "./windows.js";
