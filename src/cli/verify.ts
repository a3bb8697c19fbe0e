import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Evidence } from "../evidence/evidence.js";
import { UsageError } from "../manifest/diagnostics.js";
import { loadSkills, skillDirs } from "../skills/registry.js";
import { againstProblem, runFolderProblem } from "../verify/against.js";
import { verifyRunWithModel, writeReport } from "../verify/index.js";
import { onnxGridRunner } from "../verify/onnx-runner.js";
import { EXIT } from "./output.js";

const MARK = { pass: "✔", fail: "✖", warn: "!", skipped: "-" } as const;

export interface VerifyOpts {
  skillsDir: string[];
  json?: boolean;
  reference?: string;
  baseline?: string;
  modelChecks: string;
}

/** --model-checks: a count of at least 1, or "all". */
export function parseModelChecks(value: string): number | "all" {
  if (value === "all") return "all";
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1)
    throw new UsageError(`--model-checks ${value}: expected a count >= 1 or all`);
  return n;
}

/**
 * A sanity run is judged against the reference its verify stage was given (the manifest's
 * `${profile.reference}`), unless --reference names another.
 */
function sanityReference(dir: string): string | undefined {
  try {
    const run = JSON.parse(readFileSync(join(dir, "run.json"), "utf8")) as {
      mode?: string;
      workspace?: string;
    };
    if (run.mode !== "sanity") return undefined;
    const ev = JSON.parse(readFileSync(join(dir, "evidence.json"), "utf8")) as Evidence;
    for (const s of Object.values(ev.stages)) {
      const ref = s.skill === "verify" ? s.key_parts?.inputs.reference : undefined;
      if (typeof ref === "string") return resolve(run.workspace ?? dir, ref);
    }
  } catch {
    // an unreadable run.json or evidence.json is the verifier's finding, not a usage error
  }
  return undefined;
}

export async function verifyCommand(run: string, o: VerifyOpts): Promise<number> {
  const dir = resolve(run);
  if (!existsSync(dir)) throw new UsageError(`${run}: no such run folder`);
  // Before anything else reads it: a folder that is not a run gets no report written into it.
  const notRun = runFolderProblem(dir);
  if (notRun) throw new UsageError(notRun);
  const reference = o.reference ? resolve(o.reference) : sanityReference(dir);
  const modelChecks = parseModelChecks(o.modelChecks);
  // Bad arguments are usage errors (exit 2), found before anything is judged.
  const problem = againstProblem(dir, reference, o.baseline ? resolve(o.baseline) : undefined);
  if (problem) throw new UsageError(problem);
  // The model check runs the run's ONNX model with the project's own inference code (onnxruntime).
  const report = await verifyRunWithModel(dir, loadSkills(skillDirs(o.skillsDir)), onnxGridRunner, {
    ...(reference ? { reference } : {}),
    ...(o.baseline ? { baseline: resolve(o.baseline) } : {}),
    modelChecks,
  });
  const where = writeReport(report);
  if (o.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else {
    for (const c of report.checks) process.stdout.write(`${MARK[c.verdict]} ${c.id}: ${c.message}\n`);
    process.stdout.write(`${report.verdict}: report in ${where}\n`);
  }
  return report.verdict === "pass" ? EXIT.ok : EXIT.failed;
}
