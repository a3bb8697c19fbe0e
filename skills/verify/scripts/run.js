// The verify skill: the verifier (src/verify) run as a stage. It audits the run it belongs to
// (every other stage; it runs last) or the run given by --run_dir, writes report.json and
// report.md, and fails the stage when any check fails.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runSkill } from "../../../dist/skill-kit/index.js";
import { loadSkills, skillDirs } from "../../../dist/skills/registry.js";
import { verifyRunWithModel } from "../../../dist/verify/index.js";
import { onnxGridRunner } from "../../../dist/verify/onnx-runner.js";
import { renderMarkdown } from "../../../dist/verify/report-md.js";

await runSkill(fileURLToPath(new URL("../skill_manifest.yaml", import.meta.url)), async (ctx) => {
  const own = process.env.MEDPIPE_RUN_DIR;
  const runDir = ctx.inputs.run_dir ?? own;
  if (!runDir) throw new Error("no run to audit: give --run_dir, or run this skill as a pipeline stage");
  const inside = !ctx.inputs.run_dir || ctx.inputs.run_dir === own;
  const report = await verifyRunWithModel(runDir, loadSkills(skillDirs()), onnxGridRunner, {
    ...(inside ? { selfStage: ctx.stage } : {}),
    ...(ctx.inputs.reference ? { reference: ctx.inputs.reference } : {}),
    ...(ctx.inputs.baseline ? { baseline: ctx.inputs.baseline } : {}),
    modelChecks: ctx.inputs.model_checks ?? 1,
  });
  writeFileSync(join(ctx.outputDir, "report.json"), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(ctx.outputDir, "report.md"), renderMarkdown(report));
  for (const c of report.checks) ctx.progress({ event: "check", id: c.id, verdict: c.verdict });
  const failed = report.checks.filter((c) => c.verdict === "fail");
  if (failed.length)
    throw new Error(`verification failed: ${failed.map((c) => `${c.id} (${c.message})`).join("; ")}`);
  return {
    payload: { verdict: report.verdict, audited_run: report.run_dir, checks: report.checks },
    roles: { "report.json": "report", "report.md": "report" },
  };
});
