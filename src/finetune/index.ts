// The finetune skill's library: a pretrained model package trained further on new labelled data,
// with formal before/after evaluation and the checkpoint-trap check. See README.md.
export { auditDataset, type CaseAudit, type DatasetAudit } from "./audit.js";
export { type Decision, type DecisionInput, decide, IMPROVEMENT_MARGIN } from "./decide.js";
export { FinetuneInputError, FinetuneOomError } from "./errors.js";
export { writeFailedOutput } from "./failed.js";
export { type FinetuneOptions, processesPerNode, runFinetune } from "./finetune.js";
export { classDice, type FormalCase, type FormalResult, formalEvaluation } from "./formal.js";
export { DEFAULT_FOLDS, loadSplit, type Mapping, resolveMapping, type SplitCases } from "./inputs.js";
export { type PreparedCase, prepareCases, remapTable } from "./prepare.js";
export { compareWeights, type WeightsComparison } from "./weights.js";
