// The plan skill: buildPlan (src/plan) run as a stage. Reads the analysis, applies the overrides
// given as inputs, validates the plan against schemas/plan.schema.json and writes plan.json.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { sha256 } from "../../../dist/evidence/hash.js";
import { buildPlan, planProblems } from "../../../dist/plan/index.js";
import { runSkill } from "../../../dist/skill-kit/index.js";

await runSkill(fileURLToPath(new URL("../skill_manifest.yaml", import.meta.url)), async (ctx) => {
  const { analysis: analysisPath, ...overrides } = ctx.inputs;
  let analysis;
  try {
    analysis = JSON.parse(readFileSync(String(analysisPath), "utf8"));
  } catch (err) {
    throw new Error(`${analysisPath}: cannot read the analysis (${err.message.split("\n")[0]})`);
  }
  if (analysis?.schema_version !== 1 || !Array.isArray(analysis.cases))
    throw new Error(`${analysisPath}: not an analyze fingerprint.json (schema_version 1 with cases)`);
  const plan = buildPlan(analysis, overrides);
  const problems = planProblems(plan);
  if (problems.length) throw new Error(`the plan is not valid: ${problems.join("; ")}`);
  const text = `${JSON.stringify(plan, null, 1)}\n`;
  writeFileSync(join(ctx.outputDir, "plan.json"), text);
  for (const f of plan.split.folds)
    ctx.progress({ event: "fold", fold: f.fold, train: f.train.length, val: f.val.length });
  return {
    payload: {
      plan_sha256: sha256(text),
      fingerprint: plan.dataset.fingerprint,
      num_cases: plan.dataset.cases.length,
      spatial_dims: plan.spatial_dims,
      target_spacing: plan.target_spacing,
      patch_size: plan.patch_size,
      normalization: plan.normalization.scheme,
      split: {
        method: plan.split.method,
        k: plan.split.k ?? null,
        seed: plan.split.seed,
        folds: plan.split.folds.map((f) => ({ fold: f.fold, train: f.train.length, val: f.val })),
      },
      test_cases: plan.split.test_cases ?? [],
      num_folds: plan.split.folds.length,
      folds: plan.split.folds.map((f) => f.fold),
    },
    roles: { "plan.json": "plan" },
  };
});
