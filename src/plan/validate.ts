// A plan is checked before it is written: against schemas/plan.schema.json, then for what a
// schema cannot say (lengths that must agree with the dimensionality, folds that partition).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { ValidateFunction } from "ajv";
import { ajv, errorText } from "../manifest/schema.js";
import { SCHEMAS_DIR } from "../paths.js";
import { patchProblem } from "./network.js";
import type { Plan } from "./types.js";

const PLAN_SCHEMA_ID = "https://medpipe.dev/schemas/plan.schema.json";

function planValidator(): ValidateFunction {
  const a = ajv();
  const known = a.getSchema(PLAN_SCHEMA_ID);
  if (known) return known;
  a.addSchema(JSON.parse(readFileSync(join(SCHEMAS_DIR, "plan.schema.json"), "utf8")) as object);
  return a.getSchema(PLAN_SCHEMA_ID)!;
}

/** Every reason the value is not a valid plan, one line each; empty when it is one. */
export function planProblems(plan: unknown): string[] {
  const validate = planValidator();
  if (!validate(plan))
    return (validate.errors ?? []).map((e) => `plan${e.instancePath.replace(/\//g, ".")}: ${errorText(e)}`);
  const p = plan as Plan;
  const out: string[] = [];
  const dims = p.spatial_dims;
  if (p.target_spacing.length !== dims)
    out.push(`plan.target_spacing: ${p.target_spacing.length} values for ${dims}D`);
  if (p.patch_size.length !== dims) out.push(`plan.patch_size: ${p.patch_size.length} values for ${dims}D`);
  if (p.network.spatial_dims !== undefined && p.network.spatial_dims !== dims)
    out.push(`plan.network.spatial_dims: ${p.network.spatial_dims}, the data is ${dims}D`);
  const misfit = patchProblem(p.patch_size, p.network);
  if (misfit) out.push(`plan.${misfit}`);
  const ids = p.dataset.cases.map((c) => c.id);
  const known = new Set(ids);
  const heldOut = new Map<string, number>();
  for (const f of p.split.folds) {
    const val = new Set(f.val);
    for (const id of [...f.train, ...f.val])
      if (!known.has(id)) out.push(`plan.split.folds[${f.fold}]: unknown case ${id}`);
    for (const id of f.train)
      if (val.has(id)) out.push(`plan.split.folds[${f.fold}]: ${id} both trains and validates`);
    for (const id of f.val) heldOut.set(id, (heldOut.get(id) ?? 0) + 1);
    if (f.train.length + f.val.length !== ids.length)
      out.push(
        `plan.split.folds[${f.fold}]: train and val hold ${f.train.length + f.val.length} of ${ids.length} cases`,
      );
  }
  if (p.split.method !== "holdout" && p.split.method !== "predefined")
    for (const id of ids)
      if (heldOut.get(id) !== 1)
        out.push(
          `plan.split: case ${id} is in ${heldOut.get(id) ?? 0} validation folds (expected exactly 1)`,
        );
  // Unknown to every fold by construction: a test case among the dataset's cases could be trained on.
  for (const id of p.split.test_cases ?? [])
    if (known.has(id)) out.push(`plan.split.test_cases: ${id} is also a training/validation case`);
  return out;
}
