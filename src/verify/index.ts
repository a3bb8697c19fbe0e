// The trusted verifier: reads a finished run as data, recomputes what it can, and says which
// checks pass. CPU only; never imports or runs anything from the run folder.
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { writeFileAtomic, writeJsonAtomic } from "../evidence/atomic.js";
import type { Evidence } from "../evidence/evidence.js";
import type { RunRecord } from "../run/run-dir.js";
import type { Skill } from "../skills/types.js";
import { checkBestOfTrace, checkFinite, checkNotInitial, WeightsCache } from "./checkpoints.js";
import { checkAggregates, checkPerCase } from "./claims.js";
import { runContext } from "./context.js";
import { checkSplit } from "./cv.js";
import { evaluateChecks } from "./evaluate.js";
import { finetuneChecks, formalCandidates } from "./finetune.js";
import { checkFolds } from "./folds.js";
import { inferCandidates } from "./infer.js";
import { checkIntegrity } from "./integrity.js";
import {
  type GridModelRunner,
  type ModelJobs,
  type ModelPick,
  prepareModelCheck,
  runModelCheck,
} from "./model.js";
import { checkOnnxWeights } from "./onnx-weights.js";
import { checkOutputs } from "./outputs.js";
import { Pack } from "./pack.js";
import { checkPackageCards } from "./package-card.js";
import { readReference } from "./reference.js";
import { checkBaseline, checkReference } from "./regression.js";
import { renderMarkdown } from "./report-md.js";
import { checkSmoke } from "./smoke.js";
import { Taint } from "./taint.js";
import type { CheckResult, VerifyReport } from "./types.js";

export const VERIFIER_VERSION = "0.1.0";

export interface VerifyOptions {
  /** The verify stage auditing its own run from inside: itself excluded, the run still running. */
  selfStage?: string;
  /** A reference (eval/references/*.yaml): regression.reference judges the run against its ranges. */
  reference?: string;
  /** A baseline run folder: regression.baseline judges the run not worse than it. */
  baseline?: string;
  /** The held-out cases model.predictions re-predicts: a number drawn at random (default 1), or "all". */
  modelChecks?: ModelPick["count"];
  /** For tests: the draw model.predictions uses instead of crypto's. */
  draw?: ModelPick["draw"];
}

/**
 * Every check that needs no native code. model.predictions needs the ONNX runtime, so here it is
 * skipped; verifyRunWithModel runs it with the runner its caller may load.
 */
export function verifyRun(
  runDir: string,
  skills: Map<string, Skill>,
  opts: VerifyOptions = {},
): VerifyReport {
  return collect(runDir, skills, opts).report;
}

/** verifyRun plus model.predictions, run with `runner` (e.g. onnx-runner.ts's onnxGridRunner). */
export async function verifyRunWithModel(
  runDir: string,
  skills: Map<string, Skill>,
  runner: GridModelRunner,
  opts: VerifyOptions = {},
): Promise<VerifyReport> {
  const started = performance.now();
  const { report, job } = collect(runDir, skills, opts);
  if (!job) return report;
  const result = await runModelCheck(job, runner);
  const checks = report.checks.map((c) => (c.id === result.id ? result : c));
  return {
    ...report,
    checks,
    verdict: checks.some((c) => c.verdict === "fail") ? "fail" : "pass",
    verifier: { ...report.verifier, wall_s: report.verifier.wall_s + (performance.now() - started) / 1000 },
  };
}

function collect(
  runDir: string,
  skills: Map<string, Skill>,
  opts: VerifyOptions,
): { report: VerifyReport; job: ModelJobs | null } {
  const started = performance.now();
  let job: ModelJobs | null = null;
  const pack = new Pack(resolve(runDir));
  const checks: CheckResult[] = [];
  const runRead = readRecord<RunRecord>(pack, "run.json");
  const evidenceRead = readRecord<Evidence>(pack, "evidence.json");
  const run = typeof runRead === "string" ? null : runRead;
  const evidence = typeof evidenceRead === "string" ? null : evidenceRead;
  const unusable = !run ? "run.json" : !evidence ? "evidence.json" : null;
  if (!run || !evidence) {
    const read = !run ? runRead : evidenceRead;
    checks.push({
      id: "integrity.evidence-present",
      verdict: "fail",
      message:
        typeof read === "string"
          ? `${read}: the run's records cannot be judged`
          : `${unusable} is missing: this is not a complete run folder`,
      evidence: [unusable as string],
    });
  } else {
    checks.push({
      id: "integrity.evidence-present",
      verdict: "pass",
      message: `run ${run.run_id} of ${run.pipeline}, ${Object.keys(evidence.stages).length} stages`,
      evidence: ["run.json", "evidence.json"],
    });
    // In this order, each failure marks what it points at as false, and later checks leave
    // those parts unjudged (taint.ts): every fault is reported once, by the check that owns it.
    const taint = new Taint();
    const add = (...results: CheckResult[]) => {
      for (const r of results) {
        checks.push(r);
        taint.add(r);
      }
    };
    add(...checkIntegrity(pack, evidence, run));
    add(...checkOutputs(pack, evidence, skills, run.mode, taint));
    const split = guarded("cv.split", () => checkSplit(pack, evidence, taint));
    add(...(Array.isArray(split) ? split : [split]));
    const ctx = runContext(pack, evidence, run.mode, taint);
    const weights = new WeightsCache(pack);
    add(guarded("cv.folds", () => checkFolds(ctx, weights)));
    add(guarded("checkpoint.finite", () => checkFinite(pack, ctx, weights)));
    add(guarded("checkpoint.best-of-trace", () => checkBestOfTrace(pack, ctx, weights)));
    add(guarded("checkpoint.not-initial", () => checkNotInitial(ctx, weights)));
    add(guarded("claims.per-case", () => checkPerCase(pack, ctx)));
    add(guarded("claims.aggregates", () => checkAggregates(ctx)));
    add(...evaluateChecks(pack, evidence, taint));
    add(...finetuneChecks(pack, evidence));
    // After the checks that vouch for each package's weights: the graph is then judged against them.
    add(guarded("checkpoint.onnx-weights", () => checkOnnxWeights(pack, ctx, evidence)));
    add(guarded("package.card", () => checkPackageCards(pack, ctx, evidence)));
    const pick: ModelPick = { count: opts.modelChecks ?? 1, ...(opts.draw ? { draw: opts.draw } : {}) };
    const prepared = guarded("model.predictions", () =>
      prepareModelCheck(pack, ctx, pick, [
        ...formalCandidates(pack, evidence),
        ...inferCandidates(pack, evidence),
      ]),
    );
    if ("id" in prepared) add(prepared);
    else {
      job = prepared;
      checks.push({
        id: "model.predictions",
        verdict: "skipped",
        message:
          "no ONNX runner in this process (the sandboxed verifier loads no native addon); use verifyRunWithModel",
        evidence: [...prepared.jobs.map((j) => j.modelRel), ...prepared.packaged.map((j) => j.predictionRel)],
      });
    }
    add(guarded("smoke.no-quality-claims", () => checkSmoke(pack, evidence, ctx)));
    // A value outside a range is not a false value: regression results taint nothing.
    if (opts.reference) {
      const path = opts.reference;
      const ref = readReference(path);
      checks.push(
        ref instanceof Error
          ? { id: "regression.reference", verdict: "fail", message: ref.message, evidence: [path] }
          : guarded("regression.reference", () => checkReference(pack, evidence, ctx, ref, ref.id)),
      );
    }
    if (opts.baseline) {
      const baseline = opts.baseline;
      checks.push(guarded("regression.baseline", () => checkBaseline(pack, ctx, baseline)));
    }
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
  const smoke = run?.mode === "smoke";
  const report: VerifyReport = {
    run_dir: pack.dir,
    run_id: run?.run_id ?? null,
    pipeline: run?.pipeline ?? null,
    mode: run?.mode ?? null,
    verdict: checks.some((c) => c.verdict === "fail") ? "fail" : "pass",
    checks,
    judged: pack.judged,
    quality: smoke
      ? {
          judged: false,
          note: "smoke run: its metrics are reported as information and judged for consistency with the evidence only, never as quality",
        }
      : opts.reference || opts.baseline
        ? {
            judged: true,
            note: `metrics are recomputed from the evidence and judged against ${[opts.reference && "the reference's ranges", opts.baseline && "the baseline run"].filter(Boolean).join(" and ")}`,
          }
        : {
            judged: false,
            note: "metrics are recomputed from the evidence; no reference or baseline was given, so none is judged as quality",
          },
    verifier: { version: VERIFIER_VERSION, wall_s: (performance.now() - started) / 1000 },
  };
  return { report, job };
}

/**
 * run.json or evidence.json as an object: null when the file is missing, or why it cannot be
 * used. A damaged record of a run is a finding about that run (the CLI has already refused
 * folders whose run.json does not say which run they are), so it is reported, never thrown.
 */
function readRecord<T>(pack: Pack, rel: "run.json" | "evidence.json"): T | null | string {
  if (!pack.exists(rel)) return null;
  let v: unknown;
  try {
    v = pack.json<unknown>(rel);
  } catch (err) {
    const why = err instanceof SyntaxError ? "is not valid JSON" : "cannot be read";
    return `${rel} ${why} (${(err as Error).message})`;
  }
  if (!isObject(v)) return `${rel} is not a JSON object`;
  // What every check indexes without looking: the stage records and their file lists.
  if (
    rel === "evidence.json" &&
    (typeof v.root_hash !== "string" ||
      !isObject(v.stages) ||
      Object.values(v.stages).some((s) => !isObject(s) || !Array.isArray(s.artifacts)))
  )
    return `${rel} is not an evidence record (expected stages, each with its artifacts, and a root_hash)`;
  return v as T;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** A check that throws on malformed evidence fails with the reason instead of ending the audit. */
function guarded<T>(id: string, f: () => T | CheckResult): T | CheckResult {
  try {
    return f();
  } catch (err) {
    return { id, verdict: "fail", message: (err as Error).message, evidence: [] };
  }
}

/** verify/report.json and verify/report.md inside the run folder (outside what evidence.json covers). */
export function writeReport(report: VerifyReport): string {
  const dir = join(report.run_dir, "verify");
  mkdirSync(dir, { recursive: true });
  writeJsonAtomic(join(dir, "report.json"), report);
  writeFileAtomic(join(dir, "report.md"), renderMarkdown(report));
  return dir;
}
