// Inference of a model package on images: preprocessing exactly as training (src/preprocess),
// the sliding window on onnxruntime (src/inference), back to native space, post-processing.
// See README.md.
export {
  BACKENDS,
  type BackendName,
  type BackendOptions,
  type InferBackend,
  openBackend,
} from "./backend.js";
export {
  type CaseInferenceSeconds,
  type CasePrediction,
  type InferCaseOptions,
  inferCase,
  type VolumePredictor,
} from "./case.js";
export { InferError } from "./errors.js";
export {
  type CaseFailure,
  caseFailure,
  checkImageCase,
  findImageCases,
  type ImageCase,
  scanImageCases,
  stem,
} from "./images.js";
export {
  type InferencePlan,
  type ModelPackage,
  type PlanInference,
  planClasses,
  readModelPackage,
  type WindowSettings,
  windowSettings,
} from "./package.js";
export { type CaseSelection, selectCases } from "./select.js";
export {
  type TorchBackendOptions,
  type TorchDevice,
  TorchVolumeModel,
  type TorchWorkerInfo,
} from "./torch-backend.js";
export { writePrediction } from "./write.js";
