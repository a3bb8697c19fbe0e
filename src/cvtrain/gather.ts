// The cv-summary gather step: every fold's output.json in, the pooled CV summary out (mean ±
// sample std over all held-out cases, per label and metric), per-fold summaries, and the CV
// integrity facts (the folds partition the cases; no held-out case trained its own fold).
import { readFile } from "node:fs/promises";
import type { PerCase } from "./cvtrain.js";
import type { JsonNumber } from "./native.js";
import {
  checkPartition,
  type LabelSummaryJson,
  meanMetrics,
  type PartitionCheck,
  summarizeScores,
} from "./summary.js";

/** The fields of a cv-train output.json the gather reads. */
export interface FoldOutput {
  skill: string;
  fold: number | "all";
  train_cases: string[];
  val_cases: string[];
  init_digest: string;
  best_digest: string;
  seed: number;
  best: { epoch: number; dice: number | null; ema: number | null };
  per_case: PerCase[];
  performance: unknown;
}

export interface FoldRow {
  fold: number;
  source: string;
  train_cases: number;
  val_cases: string[];
  seed: number;
  init_digest: string;
  best_epoch: number;
  /** Mean of every metric per label over this fold's held-out cases. */
  mean: Record<string, Record<string, JsonNumber>>;
}

export interface CvSummary {
  folds: FoldRow[];
  partition: PartitionCheck;
  /** Every fold present and every case held out exactly once. */
  complete: boolean;
  cases: { id: string; fold: number; dice: Record<string, JsonNumber> }[];
  summary: LabelSummaryJson[];
  performance: {
    scope: string;
    cases: number;
    folds: number;
    mean: Record<string, Record<string, JsonNumber>>;
  };
  final: { source: string; train_cases: number; covers_all_cases: boolean; performance_null: boolean } | null;
}

export class GatherError extends Error {}

async function readFold(path: string): Promise<FoldOutput> {
  let o: FoldOutput;
  try {
    o = JSON.parse(await readFile(path, "utf8")) as FoldOutput;
  } catch (err) {
    throw new GatherError(`${path}: not a readable output.json (${(err as Error).message})`);
  }
  if (o.skill !== "cv-train") throw new GatherError(`${path}: from skill '${o.skill}', not cv-train`);
  return o;
}

/** Reads every fold's output.json (and optionally the final model's) and summarizes them. */
export async function gatherFolds(paths: readonly string[], finalPath?: string): Promise<CvSummary> {
  const outputs = await Promise.all(paths.map(async (p) => ({ path: p, o: await readFold(p) })));
  const folds = outputs.filter((x) => x.o.fold !== "all");
  if (folds.length === 0)
    throw new GatherError("no cross-validation fold among the inputs (only fold 'all')");
  const partition = checkPartition(folds.map((x) => x.o));
  // A held-out case that trained its own model, or a fold counted twice, makes every pooled
  // number meaningless: refuse. A fold that is simply absent (a partial run) is reported.
  const fatal = [
    ...Object.entries(partition.leaked).map(
      ([f, ids]) => `fold ${f} trains on its held-out ${ids.join(", ")}`,
    ),
    ...partition.duplicate_folds.map((f) => `fold ${f} given more than once`),
    ...Object.entries(partition.held_out_twice).map(([id, fs]) => `${id} held out by folds ${fs.join(", ")}`),
  ];
  if (fatal.length)
    throw new GatherError(`the folds do not form a valid cross-validation: ${fatal.join("; ")}`);

  const sorted = folds.slice().sort((a, b) => (a.o.fold as number) - (b.o.fold as number));
  const allCases = sorted.flatMap((x) => x.o.per_case.map((c) => ({ ...c, fold: x.o.fold as number })));
  for (const x of sorted) {
    const scored = new Set(x.o.per_case.map((c) => c.id));
    const missing = x.o.val_cases.filter((id) => !scored.has(id));
    if (missing.length)
      throw new GatherError(`${x.path}: held-out case(s) ${missing.join(", ")} have no scores`);
  }
  const rows: FoldRow[] = sorted.map((x) => ({
    fold: x.o.fold as number,
    source: x.path,
    train_cases: x.o.train_cases.length,
    val_cases: x.o.val_cases,
    seed: x.o.seed,
    init_digest: x.o.init_digest,
    best_epoch: x.o.best.epoch,
    mean: meanMetrics(summarizeScores(x.o.per_case)),
  }));
  const summary = summarizeScores(allCases);

  let final: CvSummary["final"] = null;
  if (finalPath) {
    const f = await readFold(finalPath);
    if (f.fold !== "all")
      throw new GatherError(`${finalPath}: fold ${f.fold}, not the final model (fold 'all')`);
    const trained = new Set(f.train_cases);
    final = {
      source: finalPath,
      train_cases: f.train_cases.length,
      covers_all_cases: partition.cases.every((id) => trained.has(id)),
      performance_null: f.performance === null,
    };
  }
  return {
    folds: rows,
    partition,
    complete: partition.ok,
    cases: allCases.map((c) => ({
      id: c.id,
      fold: c.fold,
      dice: Object.fromEntries(c.labels.map((l) => [String(l.label), l.metrics.dice ?? "NaN"])),
    })),
    summary,
    performance: {
      scope: `pooled over ${allCases.length} held-out cases of ${rows.length} fold(s)`,
      cases: allCases.length,
      folds: rows.length,
      mean: meanMetrics(summary),
    },
    final,
  };
}

const fmt = (v: JsonNumber | undefined, digits = 4): string =>
  typeof v === "number" ? v.toFixed(digits) : (v ?? "n/a");

/** The reference's table: per label, every metric's mean ± std (with exclusions), then per-fold Dice. */
export function renderMarkdown(s: CvSummary): string {
  const lines = ["# Cross-validation summary", ""];
  lines.push(`${s.performance.scope}; partition ${s.complete ? "complete" : "INCOMPLETE"}.`, "");
  if (s.partition.problems.length) lines.push(...s.partition.problems.map((p) => `- ${p}`), "");
  for (const l of s.summary) {
    lines.push(
      `## ${l.name} (label ${l.label})`,
      "",
      "| metric | mean | std | n | excluded |",
      "|---|---|---|---|---|",
    );
    for (const [m, v] of Object.entries(l.metrics))
      lines.push(`| ${m} | ${fmt(v.mean)} | ${fmt(v.std)} | ${v.n} | ${v.nan + v.infinite} |`);
    lines.push("", "| fold | cases | Dice |", "|---|---|---|");
    for (const f of s.folds)
      lines.push(`| ${f.fold} | ${f.val_cases.length} | ${fmt(f.mean[String(l.label)]?.dice)} |`);
    lines.push("");
  }
  if (s.final)
    lines.push(
      `Final model (fold all): ${s.final.train_cases} training cases${s.final.covers_all_cases ? ", every case" : ", NOT every case"}; no performance is claimed for it.`,
      "",
    );
  return `${lines.join("\n")}\n`;
}
