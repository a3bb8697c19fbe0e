// What the training checks share: the run's plan, its cv-train and cv-summary stages and their
// output.json files, read once through the Pack. Only finished stages count; a stage whose
// output.json is unreadable is left to outputs.schema.
import type { Evidence } from "../evidence/evidence.js";
import type { PlanNormalization } from "../preprocess/types.js";
import type { Pack } from "./pack.js";
import { type Skip, skipLine, type Taint } from "./taint.js";
import type { CheckResult } from "./types.js";

/** JSON has no NaN or Infinity: outputs carry them as these strings. */
export type JsonNumber = number | "NaN" | "Infinity" | "-Infinity";

export function fromJson(v: unknown): number {
  if (typeof v === "number") return v;
  if (v === "NaN") return Number.NaN;
  if (v === "Infinity") return Infinity;
  if (v === "-Infinity") return -Infinity;
  return Number.NaN;
}

/** Equal within 1e-6 relative; NaN equals NaN and an infinity only itself. */
export function close(a: number, b: number): boolean {
  if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) && Number.isNaN(b);
  if (!Number.isFinite(a) || !Number.isFinite(b)) return a === b;
  return Math.abs(a - b) <= 1e-6 * Math.max(Math.abs(a), Math.abs(b)) || Math.abs(a - b) <= 1e-12;
}

export interface PlanCase {
  id: string;
  image?: string[];
  label?: string;
  group?: string;
}

export interface PlanJson {
  dataset?: { root?: string; labels?: Record<string, string>; channels?: string[]; cases?: PlanCase[] };
  spatial_dims?: number;
  target_spacing?: number[];
  normalization?: PlanNormalization;
  patch_size?: number[];
  inference?: {
    overlap?: number;
    mode?: string;
    sw_batch_size?: number;
    tta?: boolean;
    keep_largest_component?: boolean;
    threshold?: number | null;
  };
  split?: { folds?: { fold: number; train: string[]; val: string[] }[] };
}

export interface LabelScoreJson {
  label: number;
  name: string;
  metrics: Record<string, JsonNumber>;
}

export interface CaseScoreJson {
  id: string;
  spacing: number[];
  shape: number[];
  labels: LabelScoreJson[];
  prediction: string;
  grid_prediction?: string;
}

export interface MetricSummaryJson {
  mean: JsonNumber;
  std: JsonNumber;
  n: number;
  nan: number;
  infinite: number;
}

export interface LabelSummaryJson {
  label: number;
  cases: number;
  metrics: Record<string, MetricSummaryJson>;
  folds?: Record<string, Record<string, MetricSummaryJson>>;
}

export interface PerformanceJson {
  cases?: number;
  folds?: number;
  mean?: Record<string, Record<string, JsonNumber>>;
  quality_claim?: unknown;
}

export interface CvTrainOutput {
  mode?: string;
  fold: number | "all";
  train_cases: string[];
  val_cases: string[];
  best: { epoch: number; dice: number | null; ema: number | null };
  training_best: number | null;
  init_digest: string;
  best_digest: string;
  final_digest: string;
  checkpoints: Record<string, { path: string; digest: string }>;
  trace: string;
  per_case: CaseScoreJson[];
  summary: LabelSummaryJson[] | null;
  performance: PerformanceJson | null;
  model: { path: string; weights_digest: string };
  /** sha256 of the plan.json the stage read. */
  plan_sha256?: string;
  /** Trainer overrides of the plan (epochs, batch_size, patch_size, lr, ...). */
  plan_overrides?: Record<string, unknown>;
  quality_claim?: unknown;
}

export interface CvSummaryOutput {
  mode?: string;
  folds: { fold: number | "all"; source: string; mean: Record<string, Record<string, JsonNumber>> }[];
  cases: { id: string; fold: number; dice: Record<string, JsonNumber> }[];
  summary: LabelSummaryJson[];
  performance: PerformanceJson | null;
  final: { performance_null: boolean } | null;
  quality_claim?: unknown;
}

export interface Staged<T> {
  stage: string;
  /** The stage folder, relative to the run folder. */
  dir: string;
  out: T;
}

export interface RunContext {
  plan: { rel: string; json: PlanJson } | null;
  /** The preprocess stage's data folder, relative to the run folder. */
  data: string | null;
  train: Staged<CvTrainOutput>[];
  summaries: Staged<CvSummaryOutput>[];
  /** Finished cv-train stages whose output.json is missing or not JSON: left out of `train`. */
  unreadable: { stage: string; dir: string }[];
  mode: string | null;
  /** What earlier checks found false: not judged again. */
  taint: Taint;
}

const FINISHED = new Set(["succeeded", "cached"]);

export function runContext(pack: Pack, evidence: Evidence, mode: string | null, taint: Taint): RunContext {
  const finished = Object.values(evidence.stages).filter((s) => FINISHED.has(s.status));
  const read = <T>(stage: string): T | null => {
    const rel = `stages/${stage}/output.json`;
    if (!pack.exists(rel)) return null;
    try {
      return pack.json<T>(rel);
    } catch {
      return null;
    }
  };
  const planRec = finished.find((s) => s.skill === "plan");
  const planRel = planRec ? `stages/${planRec.stage}/plan.json` : null;
  let plan: RunContext["plan"] = null;
  if (planRel && pack.exists(planRel)) {
    try {
      plan = { rel: planRel, json: pack.json<PlanJson>(planRel) };
    } catch {
      plan = null;
    }
  }
  const pre = finished.find((s) => s.skill === "preprocess");
  const train: Staged<CvTrainOutput>[] = [];
  const summaries: Staged<CvSummaryOutput>[] = [];
  const unreadable: RunContext["unreadable"] = [];
  for (const s of finished) {
    if (s.skill === "cv-train") {
      const out = read<CvTrainOutput>(s.stage);
      if (out) train.push({ stage: s.stage, dir: `stages/${s.stage}`, out });
      else unreadable.push({ stage: s.stage, dir: `stages/${s.stage}` });
    } else if (s.skill === "cv-summary") {
      const out = read<CvSummaryOutput>(s.stage);
      if (out) summaries.push({ stage: s.stage, dir: `stages/${s.stage}`, out });
    }
  }
  return { plan, data: pre ? `stages/${pre.stage}/data` : null, train, summaries, unreadable, mode, taint };
}

/**
 * One result per check: fail when any problem; else skipped when a part could not be judged
 * because an earlier check failed on what it reads; else pass.
 */
export function verdictOf(
  id: string,
  problems: { what: string; where: string }[],
  passMessage: string,
  passEvidence: string[],
  skips: Skip[] = [],
): CheckResult {
  if (problems.length)
    return {
      id,
      verdict: "fail",
      message: `${problems.length} problem(s): ${problems
        .slice(0, 4)
        .map((p) => p.what)
        .join("; ")}${problems.length > 4 ? "; …" : ""}`,
      evidence: [...new Set(problems.map((p) => p.where))],
    };
  if (skips.length)
    return {
      id,
      verdict: "skipped",
      message: `${skips.slice(0, 3).map(skipLine).join("; ")}${skips.length > 3 ? `; … (${skips.length} parts)` : ""}; the rest agrees`,
      evidence: [...new Set(skips.map((s) => s.blocked.pointer))],
    };
  return { id, verdict: "pass", message: passMessage, evidence: passEvidence };
}
