// cv-train (one fold, or the final model) and the cv-summary gather step.
export {
  CvTrainInputError,
  checkDataMatchesPlan,
  type DataIndex,
  defaultSeed,
  effectivePlan,
  type Fold,
  foldSplit,
  NOMINAL_VALIDATION_FRACTION,
  NOMINAL_VALIDATION_MIN,
  nominalValidationCases,
  predictSettings,
  type Split,
  type TrainerConfig,
  type TrainOverrides,
  type TrainPlan,
  trainerConfig,
} from "./config.js";
export {
  type CvTrainOptions,
  FINAL_MODEL_NOTE,
  NOMINAL_VALIDATION_NOTE,
  type PerCase,
  runCvTrain,
  traceBest,
} from "./cvtrain.js";
export {
  type CvSummary,
  type FoldOutput,
  type FoldRow,
  GatherError,
  gatherFolds,
  renderMarkdown,
} from "./gather.js";
export {
  type CaseScore,
  fromJsonNumber,
  type JsonNumber,
  jsonNumber,
  keepLargestPerClass,
  type LabelScore,
  nativeLabel,
  type PostProcessing,
  scoreCase,
  writePrediction,
} from "./native.js";
export { type Float16Npy, readNpyFloat16 } from "./npy-f16.js";
export { PY_ROOT, type PyEvent, PythonError, pythonCommand, runPythonModule } from "./python.js";
export {
  checkPartition,
  type FoldSplitRecord,
  type JsonMetricSummary,
  type LabelSummaryJson,
  meanMetrics,
  type PartitionCheck,
  summarizeScores,
} from "./summary.js";
