// The cv-train skill: one fold (or the final model) trained, predicted, scored and packaged by
// src/cvtrain; progress is the Python side's NDJSON events, each tagged with its phase.
import { fileURLToPath } from "node:url";
import { runCvTrain } from "../../../dist/cvtrain/index.js";
import { runSkill } from "../../../dist/skill-kit/index.js";

await runSkill(fileURLToPath(new URL("../skill_manifest.yaml", import.meta.url)), async (ctx) => {
  const i = ctx.inputs;
  const overrides = {};
  for (const key of ["epochs", "batch_size", "patch_size", "lr", "samples_per_volume", "val_every"])
    if (i[key] !== undefined && i[key] !== null) overrides[key] = i[key];
  return runCvTrain({
    plan: i.plan,
    data: i.data,
    fold: i.fold,
    outputDir: ctx.outputDir,
    device: i.device,
    ...(i.seed !== undefined ? { seed: i.seed } : {}),
    ...(i.time_limit_s !== undefined && i.time_limit_s !== null ? { timeLimitS: i.time_limit_s } : {}),
    overrides,
    progress: ctx.progress,
  });
});
