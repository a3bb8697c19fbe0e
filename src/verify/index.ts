// The trusted verifier: reads a finished run as data, recomputes what it can, and says which
// checks pass. CPU only; never imports or runs anything from the run folder.
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { writeFileAtomic, writeJsonAtomic } from "../evidence/atomic.js";
import type { Skill } from "../skills/types.js";
import { checkSplit } from "./cv.js";
import { checkIntegrity } from "./integrity.js";
import { checkOutputs } from "./outputs.js";
import { Pack } from "./pack.js";
import { renderMarkdown } from "./report-md.js";
import type { CheckResult, VerifyReport } from "./types.js";

export const VERIFIER_VERSION = "0.1.0";

export interface VerifyOptions {
  /** The verify stage auditing its own run from inside: itself excluded, the run still running. */
  selfStage?: string;
}

export function verifyRun(
  runDir: string,
  skills: Map<string, Skill>,
  opts: VerifyOptions = {},
): VerifyReport {
  const started = performance.now();
  const pack = new Pack(resolve(runDir));
  const checks: CheckResult[] = [];
  const run = pack.run();
  const evidence = pack.evidence();
  if (!run || !evidence) {
    checks.push({
      id: "integrity.evidence-present",
      verdict: "fail",
      message: `${!run ? "run.json" : "evidence.json"} is missing: this is not a complete run folder`,
      evidence: [!run ? "run.json" : "evidence.json"],
    });
  } else {
    checks.push({
      id: "integrity.evidence-present",
      verdict: "pass",
      message: `run ${run.run_id} of ${run.pipeline}, ${Object.keys(evidence.stages).length} stages`,
      evidence: ["run.json", "evidence.json"],
    });
    checks.push(...checkIntegrity(pack, evidence));
    checks.push(...checkOutputs(pack, evidence, skills, run.mode));
    checks.push(...checkSplit(pack, evidence));
    const unfinished = Object.values(evidence.stages).filter(
      (s) => s.stage !== opts.selfStage && s.status !== "succeeded" && s.status !== "cached",
    );
    // From inside, the run is still running; from outside it must have succeeded.
    const runDone = opts.selfStage ? run.status === "running" : run.status === "succeeded";
    checks.push(
      runDone && unfinished.length === 0
        ? {
            id: "run.completed",
            verdict: "pass",
            message: opts.selfStage
              ? "every other stage of the run succeeded"
              : "the run and every stage succeeded",
            evidence: ["run.json#/status"],
          }
        : {
            id: "run.completed",
            verdict: "fail",
            message: `run ${run.status}; ${unfinished.map((s) => `${s.stage} ${s.status}`).join(", ") || "no stage failed"}`,
            evidence: ["run.json#/status", ...unfinished.map((s) => `evidence.json#/stages/${s.stage}`)],
          },
    );
  }
  return {
    run_dir: pack.dir,
    run_id: run?.run_id ?? null,
    pipeline: run?.pipeline ?? null,
    mode: run?.mode ?? null,
    verdict: checks.some((c) => c.verdict === "fail") ? "fail" : "pass",
    checks,
    judged: pack.judged,
    verifier: { version: VERIFIER_VERSION, wall_s: (performance.now() - started) / 1000 },
  };
}

/** verify/report.json and verify/report.md inside the run folder (outside what evidence.json covers). */
export function writeReport(report: VerifyReport): string {
  const dir = join(report.run_dir, "verify");
  mkdirSync(dir, { recursive: true });
  writeJsonAtomic(join(dir, "report.json"), report);
  writeFileAtomic(join(dir, "report.md"), renderMarkdown(report));
  return dir;
}
