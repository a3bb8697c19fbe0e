// Inference of a model package on images: preprocessing exactly as training (src/preprocess),
// the sliding window on onnxruntime (src/inference), back to native space, post-processing.
// See README.md.
export { type CaseInferenceSeconds, type CasePrediction, type InferCaseOptions, inferCase } from "./case.js";
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
} from "./package.js";
export { writePrediction } from "./write.js";
