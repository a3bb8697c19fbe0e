// `pipeline evaluate` as a library: pair cases, load them into one space, score, format.
export { definition, toCsv, toJson, toText, wireNumber } from "./format.js";
export { labelValues, parseNumberList } from "./labels.js";
export {
  AFFINE_TOLERANCE_MM,
  gridProblem,
  loadMask,
  maxAffineDifference,
  type PlacedMask,
  readGrid,
} from "./load.js";
export { type CasePair, caseName, pairCases } from "./pairs.js";
export {
  type CaseResult,
  checkGrids,
  type EvaluateConfig,
  type Evaluation,
  evaluatePairs,
  type Label,
} from "./run.js";
