// Cohort summaries of per-case scores (one fold's held-out cases, or every fold's pooled) and the
// CV integrity checks the gather step reports: folds partition the cases, and no held-out case
// trains its own fold's model.
import { type CaseRow, type MetricSummary, summarizeCases } from "../metrics/index.js";
import { type CaseScore, fromJsonNumber, type JsonNumber, jsonNumber } from "./native.js";

export interface JsonMetricSummary {
  mean: JsonNumber;
  std: JsonNumber;
  /** Values in the mean; `nan` and `infinite` values were left out and are counted here. */
  n: number;
  nan: number;
  infinite: number;
}

export interface LabelSummaryJson {
  label: number;
  name: string;
  cases: number;
  metrics: Record<string, JsonMetricSummary>;
  /** Per fold (keyed by fold), when the cases come from several folds. */
  folds?: Record<string, Record<string, JsonMetricSummary>>;
}

function encode(s: MetricSummary): JsonMetricSummary {
  return { mean: jsonNumber(s.mean), std: jsonNumber(s.std), n: s.n, nan: s.nan, infinite: s.infinite };
}

function encodeTable(t: Record<string, MetricSummary>): Record<string, JsonMetricSummary> {
  return Object.fromEntries(Object.entries(t).map(([k, v]) => [k, encode(v)]));
}

/**
 * Mean ± sample std per metric and label over the given cases (NaN and infinite values excluded
 * and counted, as the reference CV summary does); with `fold` on the cases, per-fold tables too.
 */
export function summarizeScores(cases: readonly (CaseScore & { fold?: number })[]): LabelSummaryJson[] {
  const rows: CaseRow[] = [];
  const names = new Map<number, string>();
  for (const c of cases)
    for (const l of c.labels) {
      names.set(l.label, l.name);
      rows.push({
        case: c.id,
        label: l.label,
        ...(c.fold !== undefined ? { fold: c.fold } : {}),
        metrics: Object.fromEntries(Object.entries(l.metrics).map(([k, v]) => [k, fromJsonNumber(v)])),
      });
    }
  const withFolds = new Set(cases.map((c) => c.fold)).size > 1;
  return summarizeCases(rows).map((s) => {
    const label = Number(s.label);
    const out: LabelSummaryJson = {
      label,
      name: names.get(label) ?? s.label,
      cases: s.cases,
      metrics: encodeTable(s.pooled),
    };
    if (withFolds)
      out.folds = Object.fromEntries(Object.entries(s.folds).map(([f, t]) => [f, encodeTable(t)]));
    return out;
  });
}

/** The headline numbers of a summary: the mean of every metric per label. */
export function meanMetrics(
  summary: readonly LabelSummaryJson[],
): Record<string, Record<string, JsonNumber>> {
  return Object.fromEntries(
    summary.map((s) => [
      String(s.label),
      Object.fromEntries(Object.entries(s.metrics).map(([k, v]) => [k, v.mean])),
    ]),
  );
}

export interface FoldSplitRecord {
  fold: number | "all";
  train_cases: string[];
  val_cases: string[];
}

export interface PartitionCheck {
  ok: boolean;
  /** Every case of any fold, sorted. */
  cases: string[];
  /** Held out by no fold (but trained on somewhere). */
  never_held_out: string[];
  /** Held out by more than one fold: case → folds. */
  held_out_twice: Record<string, number[]>;
  /** A fold whose held-out case is also in its own training list: fold → cases. */
  leaked: Record<string, string[]>;
  /** Folds that appear more than once. */
  duplicate_folds: number[];
  problems: string[];
}

/** Whether the folds partition the cases: every case held out exactly once, none leaked. */
export function checkPartition(folds: readonly FoldSplitRecord[]): PartitionCheck {
  const all = new Set<string>();
  const heldBy = new Map<string, number[]>();
  const leaked: Record<string, string[]> = {};
  const seen = new Set<number>();
  const duplicate: number[] = [];
  for (const f of folds) {
    if (f.fold === "all") continue;
    if (seen.has(f.fold)) duplicate.push(f.fold);
    seen.add(f.fold);
    const train = new Set(f.train_cases);
    for (const id of f.train_cases) all.add(id);
    for (const id of f.val_cases) {
      all.add(id);
      heldBy.set(id, [...(heldBy.get(id) ?? []), f.fold]);
      if (train.has(id)) leaked[String(f.fold)] = [...(leaked[String(f.fold)] ?? []), id];
    }
  }
  const cases = [...all].sort();
  const never = cases.filter((id) => !heldBy.has(id));
  const twice = Object.fromEntries([...heldBy].filter(([, fs]) => fs.length > 1).sort());
  const problems: string[] = [];
  if (duplicate.length) problems.push(`fold(s) ${duplicate.join(", ")} given more than once`);
  if (never.length) problems.push(`never held out: ${never.join(", ")}`);
  for (const [id, fs] of Object.entries(twice)) problems.push(`${id} held out by folds ${fs.join(", ")}`);
  for (const [f, ids] of Object.entries(leaked))
    problems.push(`fold ${f} trains on its held-out ${ids.join(", ")}`);
  return {
    ok: problems.length === 0,
    cases,
    never_held_out: never,
    held_out_twice: twice,
    leaked,
    duplicate_folds: duplicate,
    problems,
  };
}
