// Preprocessing: plan.json + cases → data/ (schemas/preprocessed.md), and the way back to native
// space for predictions (toNativeSpace).
export { type CaseInput, type PreparedCase, prepareCase, preprocessCase } from "./case.js";
export { type CanonicalCase, CaseInputError, loadCanonicalCase } from "./load.js";
export { type GridPrediction, type NativePrediction, readProperties, toNativeSpace } from "./native.js";
export { type AppliedNormalization, normalizationFor, normalizeChannel } from "./normalize-case.js";
export { type LoadedPlan, PlanError, readPlan, resolvePlanCases } from "./plan.js";
export { defaultWorkers, runCases } from "./pool.js";
export {
  type PreprocessedDataset,
  type PreprocessOptions,
  type PreprocessResult,
  preprocessDataset,
} from "./preprocess.js";
export type * from "./types.js";
