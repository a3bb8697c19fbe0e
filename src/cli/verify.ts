import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { UsageError } from "../manifest/diagnostics.js";
import { loadSkills, skillDirs } from "../skills/registry.js";
import { verifyRunWithModel, writeReport } from "../verify/index.js";
import { onnxGridRunner } from "../verify/onnx-runner.js";
import { EXIT } from "./output.js";

const MARK = { pass: "✔", fail: "✖", warn: "!", skipped: "-" } as const;

export async function verifyCommand(
  run: string,
  o: { skillsDir: string[]; json?: boolean },
): Promise<number> {
  const dir = resolve(run);
  if (!existsSync(dir)) throw new UsageError(`${run}: no such run folder`);
  // The model check runs the run's ONNX model with the project's own inference code (onnxruntime).
  const report = await verifyRunWithModel(dir, loadSkills(skillDirs(o.skillsDir)), onnxGridRunner);
  const where = writeReport(report);
  if (o.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else {
    for (const c of report.checks) process.stdout.write(`${MARK[c.verdict]} ${c.id}: ${c.message}\n`);
    process.stdout.write(`${report.verdict}: report in ${where}\n`);
  }
  return report.verdict === "pass" ? EXIT.ok : EXIT.failed;
}
