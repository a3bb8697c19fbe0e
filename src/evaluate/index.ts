// `pipeline evaluate` as a library: pair cases, load them into one space, score, format.

export { type CaseDice, type ClassDice, type DiceSummary, diceSummary, meanOf } from "./dice-summary.js";
export { definition, toCsv, toJson, toText, wireNumber } from "./format.js";
export { labelValues, parseNumberList } from "./labels.js";
export {
  AFFINE_TOLERANCE_MM,
  gridProblem,
  loadMask,
  maxAffineDifference,
  type PlacedMask,
  placeMask,
  readGrid,
} from "./load.js";
export {
  axialView,
  busiestAxialSlice,
  CLASS_COLOURS,
  classColour,
  overlayRaster,
  PANEL_GAP,
  type Slice,
} from "./overlay.js";
export { type CasePair, caseName, pairCases } from "./pairs.js";
export { pairReferences, type ReferencePair } from "./references.js";
export {
  type CaseResult,
  checkGrids,
  type EvaluateConfig,
  type Evaluation,
  evaluatePairs,
  type Label,
} from "./run.js";
