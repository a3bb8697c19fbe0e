// The cv-summary skill: the folds' output.json files → the pooled CV summary (src/cvtrain/gather)
// and summary.md, the reference's table. Fails when the folds leak held-out cases into training.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gatherFolds, renderMarkdown } from "../../../dist/cvtrain/index.js";
import { runSkill } from "../../../dist/skill-kit/index.js";

await runSkill(fileURLToPath(new URL("../skill_manifest.yaml", import.meta.url)), async (ctx) => {
  const summary = await gatherFolds(ctx.inputs.folds, ctx.inputs.final ?? undefined);
  writeFileSync(join(ctx.outputDir, "summary.md"), renderMarkdown(summary));
  for (const f of summary.folds)
    ctx.progress({ event: "fold", fold: f.fold, cases: f.val_cases.length, mean: f.mean });
  return { payload: summary, roles: { "summary.md": "report" } };
});
