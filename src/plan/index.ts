// The plan library: analysis + overrides → a validated plan.json object (pure, no I/O here).
export { buildPlan, caseProperty, groupOf, PlanError } from "./build.js";
export { classCount, defaultProbabilities, maskedClasses } from "./classes.js";
export * from "./defaults.js";
export { Mt19937, permutation, shuffleInPlace } from "./random.js";
export { type Fold, groupKfold, holdout, kfold, stratifiedKfold } from "./split.js";
export type * from "./types.js";
export { planProblems } from "./validate.js";
