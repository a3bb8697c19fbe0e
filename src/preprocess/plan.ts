// Reading plan.json for preprocessing: the whole file is validated against its schema (the
// contract every stage shares), then the case list is resolved to absolute paths.
import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { ValidateFunction } from "ajv";
import { ajv, errorText } from "../manifest/schema.js";
import { SCHEMAS_DIR } from "../paths.js";
import type { PlanCase, PreprocessPlan } from "./types.js";

const PLAN_SCHEMA_ID = "https://medpipe.dev/schemas/plan.schema.json";

export class PlanError extends Error {}

let validator: ValidateFunction | undefined;

function planValidator(): ValidateFunction {
  if (validator) return validator;
  const a = ajv();
  validator =
    a.getSchema(PLAN_SCHEMA_ID) ??
    a.compile(JSON.parse(readFileSync(join(SCHEMAS_DIR, "plan.schema.json"), "utf8")) as object);
  return validator;
}

/** A validated plan, the sha256 of its bytes (what dataset.json records) and its path. */
export interface LoadedPlan {
  path: string;
  sha256: string;
  plan: PreprocessPlan;
}

/** Reads and validates plan.json; every failure is one line naming the file. */
export function readPlan(path: string): LoadedPlan {
  const abs = resolve(path);
  let bytes: Buffer;
  try {
    bytes = readFileSync(abs);
  } catch (err) {
    throw new PlanError(`${abs}: cannot read plan (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString("utf8"));
  } catch (err) {
    throw new PlanError(`${abs}: not valid JSON (${(err as Error).message})`);
  }
  const validate = planValidator();
  if (!validate(json)) {
    const e = validate.errors?.[0];
    const where = e?.instancePath ? e.instancePath.slice(1).replace(/\//g, ".") : "plan";
    throw new PlanError(`${abs}: ${where} ${e ? errorText(e) : "is invalid"} (schemas/plan.schema.json)`);
  }
  const plan = json as PreprocessPlan;
  checkConsistency(plan, abs);
  return { path: abs, sha256: createHash("sha256").update(bytes).digest("hex"), plan };
}

// Rules the schema cannot say: lengths that must agree, and what CT normalization needs.
function checkConsistency(plan: PreprocessPlan, file: string): void {
  if (plan.target_spacing.length !== plan.spatial_dims)
    throw new PlanError(
      `${file}: target_spacing has ${plan.target_spacing.length} values, spatial_dims is ${plan.spatial_dims}`,
    );
  const n = plan.normalization;
  if (n.scheme === "ct") {
    if (!n.clip || n.mean === undefined || n.std === undefined)
      throw new PlanError(`${file}: normalization 'ct' needs clip, mean and std (the dataset's statistics)`);
    if (!(n.clip[0]! <= n.clip[1]!))
      throw new PlanError(`${file}: normalization.clip [${n.clip.join(", ")}] is not an ascending range`);
  }
  for (const key of Object.keys(plan.dataset.labels))
    if (Number(key) > 255) throw new PlanError(`${file}: label ${key} does not fit uint8 (0..255)`);
}

/**
 * The plan's cases with absolute paths. A relative dataset.root is taken against the working
 * folder (the workspace, as the engine resolves every manifest path); relative case paths against
 * the root (its folder when the root is a list file), else against the working folder.
 */
export function resolvePlanCases(loaded: LoadedPlan): PlanCase[] {
  const { plan } = loaded;
  let base = process.cwd();
  if (plan.dataset.root) {
    const root = resolve(plan.dataset.root);
    base = isFile(root) ? dirname(root) : root;
  }
  return plan.dataset.cases.map((c) => ({
    ...c,
    image: c.image.map((p) => resolve(base, p)),
    label: c.label ? resolve(base, c.label) : null,
  }));
}

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
