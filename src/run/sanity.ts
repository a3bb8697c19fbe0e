// A sanity run reproduces a reference result, so before anything runs its configuration must be
// the reference's: every plan input the manifest fixes (a literal, a param, a skill default) is
// compared with the reference's `configuration` at the same plan.json field. Inputs computed
// from another stage are not known yet; the verifier judges the outcome against the ranges.
import { isAbsolute, resolve } from "node:path";
import { ManifestError, UsageError } from "../manifest/diagnostics.js";
import type { Scope, Value } from "../manifest/expr.js";
import { type PipelineSpec, resolveAt } from "../manifest/pipeline.js";
import { atPointer, readReference } from "../verify/reference.js";

/** Plan inputs whose value is one plan.json field; object inputs are compared key by key. */
const FIELD: Record<string, string> = {
  patch_size: "/patch_size",
  target_spacing: "/target_spacing",
  epochs: "/epochs",
  batch_size: "/batch_size",
  samples_per_volume: "/samples_per_volume",
  ema: "/ema",
  val_every: "/val_every",
  validate_on: "/validate_on",
  early_stopping: "/early_stopping",
  augment: "/augment",
  split: "/split/method",
  folds: "/split/k",
  split_seed: "/split/seed",
  holdout_fraction: "/split/holdout_fraction",
  test_fraction: "/split/test_fraction",
  subset: "/split/subset/name",
  subset_seed: "/split/subset/seed",
  lr: "/optimizer/lr",
};
const OBJECTS = new Set([
  "network",
  "loss",
  "optimizer",
  "schedule",
  "sampler",
  "inference",
  "normalization",
]);

/** Equal as JSON; a reference may name a component (`norm: instance`) the plan spells as an object. */
function same(manifest: unknown, reference: unknown): boolean {
  if (typeof reference === "string" && manifest && typeof manifest === "object" && "name" in manifest)
    return (manifest as { name: unknown }).name === reference;
  return JSON.stringify(manifest) === JSON.stringify(reference);
}

export function checkSanityConfiguration(
  spec: PipelineSpec,
  env: Record<string, string | undefined>,
  workspace: string,
): void {
  if (spec.mode !== "sanity") return;
  const refPath = spec.profileValues.reference;
  if (typeof refPath !== "string")
    throw new UsageError(
      `--sanity: ${spec.file} names no reference (expected profiles.sanity.reference: eval/references/<id>.yaml)`,
    );
  const abs = isAbsolute(refPath) ? refPath : resolve(workspace, refPath);
  const ref = readReference(abs);
  if (ref instanceof Error) throw new UsageError(`--sanity: ${ref.message}`);
  const scope: Scope = (root) => {
    if (root === "params") return spec.params;
    if (root === "profile") return spec.profileValues;
    if (root === "env") {
      const out: Record<string, Value> = {};
      for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
      return out;
    }
    return undefined; // another stage's output: not known before the run
  };
  const mismatches: string[] = [];
  for (const stage of spec.stages.filter((s) => s.skill.manifest.id === "plan")) {
    for (const [input, src] of Object.entries(stage.inputs)) {
      if (!(input in FIELD) && !OBJECTS.has(input)) continue;
      let value: Value;
      try {
        value = resolveAt(src, spec.source, scope);
      } catch (err) {
        if (err instanceof ManifestError) continue;
        throw err;
      }
      if (value === null) continue;
      const fields: [string, unknown][] =
        OBJECTS.has(input) && typeof value === "object" && !Array.isArray(value)
          ? Object.entries(value).map(([k, v]) => [`/${input}/${k}`, v])
          : [[FIELD[input] ?? `/${input}`, value]];
      for (const [pointer, v] of fields) {
        const want = atPointer(ref.configuration, pointer);
        if (want === undefined) continue; // the reference does not fix it
        if (!same(v, want))
          mismatches.push(
            `stage '${stage.id}' ${input} is ${JSON.stringify(v)}, the reference's configuration${pointer.replace(/\//g, ".")} is ${JSON.stringify(want)}`,
          );
      }
    }
  }
  if (mismatches.length)
    throw new UsageError(
      `--sanity: ${spec.file} does not match ${refPath}: ${mismatches.join("; ")} (a sanity run must reproduce the reference's configuration)`,
    );
}
