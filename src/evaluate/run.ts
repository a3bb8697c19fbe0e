// Scoring every pair: grids checked up front (all problems at once, before any slow work),
// then one case at a time so memory holds two volumes, not the whole cohort.

import {
  type CaseRow,
  DEFAULT_TOLERANCES_MM,
  evaluateCase,
  flattenMetrics,
  type LabelMetrics,
  type LabelSummary,
  summarizeCases,
} from "../metrics/index.js";
import type { LesionOptions } from "../metrics/lesions.js";
import { labelValues } from "./labels.js";
import { gridProblem, loadMask, readGrid } from "./load.js";
import { type CasePair, problemsError } from "./pairs.js";

export interface EvaluateConfig {
  /** Labels to score; undefined: every nonzero label found in any reference. */
  labels?: readonly number[];
  tolerancesMm?: readonly number[];
  /** false skips HD/HD95/ASSD/NSD (the slow part). */
  surface?: boolean;
  lesions?: LesionOptions;
  /** Called after each case is scored (progress). */
  onCase?: (done: number, total: number, pair: CasePair) => void;
}

export type Label = number | "foreground";

export interface CaseResult {
  case: string;
  pred: string;
  gt: string;
  label: Label;
  metrics: LabelMetrics;
}

export interface Evaluation {
  cases: CaseResult[];
  summary: LabelSummary[];
  /** The labels scored, in order. */
  labels: Label[];
  tolerancesMm: number[];
  surface: boolean;
  /** Things worth telling the user that are not errors (e.g. labels only predictions have). */
  notes: string[];
}

/** Every pair's grids, from headers: one UsageError listing every unreadable or mismatched pair. */
export async function checkGrids(pairs: readonly CasePair[]): Promise<void> {
  const problems: string[] = [];
  // Naming the case only helps when there are several (two files need no case name).
  const where = (pair: CasePair): string => (pairs.length > 1 ? `case '${pair.case}': ` : "");
  for (const pair of pairs) {
    try {
      const problem = gridProblem(await readGrid(pair.pred), await readGrid(pair.gt));
      if (problem) problems.push(`${where(pair)}${problem}`);
    } catch (err) {
      problems.push(`${where(pair)}${err instanceof Error ? err.message : String(err)}`);
    }
  }
  if (problems.length) throw problemsError(problems);
}

interface Scored {
  pair: CasePair;
  byLabel: Map<Label, LabelMetrics>;
}

const byNumber = (a: number, b: number): number => a - b;

export async function evaluatePairs(
  pairs: readonly CasePair[],
  config: EvaluateConfig = {},
): Promise<Evaluation> {
  await checkGrids(pairs);
  const tolerancesMm = [...(config.tolerancesMm ?? DEFAULT_TOLERANCES_MM)];
  const surface = config.surface !== false;
  const refLabels = new Set<number>();
  const predLabels = new Set<number>();
  const scored: Scored[] = [];

  // `discover`: collect both files' label values (first visit only, not on backfills).
  const score = async (
    pair: CasePair,
    labels: readonly number[] | undefined,
    into: Scored,
    discover: boolean,
  ): Promise<void> => {
    const [pred, ref] = await Promise.all([loadMask(pair.pred), loadMask(pair.gt)]);
    // Re-checked on the loaded data: the header pass could have raced a file being rewritten.
    const problem = gridProblem(pred, ref);
    if (problem) throw problemsError([`case '${pair.case}': ${problem}`]);
    if (discover) {
      for (const l of labelValues(ref.data, pair.gt)) refLabels.add(l);
      for (const l of labelValues(pred.data, pair.pred)) predLabels.add(l);
    }
    const wanted = labels ?? [...refLabels].sort(byNumber);
    // Spacing from the reference for both sides: the prediction is on the reference's grid.
    const predVolume = { data: pred.data, shape: ref.shape, spacing: ref.spacing };
    const results = evaluateCase(predVolume, ref, {
      ...(wanted.length ? { labels: wanted.filter((l) => !into.byLabel.has(l)) } : {}),
      tolerancesMm,
      surface,
      ...(config.lesions ? { lesions: config.lesions } : {}),
    });
    for (const m of results) into.byLabel.set(m.label, m);
  };

  for (const [i, pair] of pairs.entries()) {
    const entry: Scored = { pair, byLabel: new Map() };
    await score(pair, config.labels, entry, true);
    scored.push(entry);
    config.onCase?.(i + 1, pairs.length, pair);
  }

  const notes: string[] = [];
  let labels: Label[];
  if (config.labels) {
    labels = [...config.labels];
    const absent = config.labels.filter((l) => !refLabels.has(l));
    if (absent.length) notes.push(`label ${absent.join(", ")}: in no reference (Dice is NaN or 0 there)`);
  } else if (refLabels.size === 0) {
    // No reference has any foreground: score "nonzero" as one label rather than nothing.
    labels = ["foreground"];
    notes.push("no reference has a nonzero label: scored nonzero voxels as one foreground label");
  } else {
    const all = [...refLabels].sort(byNumber);
    labels = all;
    // A label first seen in a later reference: score it for the earlier cases too.
    for (const entry of scored) {
      entry.byLabel.delete("foreground");
      const missing = all.filter((l) => !entry.byLabel.has(l));
      if (missing.length) await score(entry.pair, missing, entry, false);
    }
  }
  const unscored = [...predLabels].filter((l) => !labels.includes(l)).sort(byNumber);
  // Hundreds of values (an intensity image given as a prediction) would make an unreadable note.
  const shown =
    unscored.length > 20
      ? `${unscored.slice(0, 20).join(", ")} and ${unscored.length - 20} more`
      : unscored.join(", ");
  if (unscored.length)
    notes.push(`label ${shown}: in predictions but not scored (in no reference; use --labels to score)`);

  const cases: CaseResult[] = [];
  for (const { pair, byLabel } of scored) {
    for (const label of labels) {
      const metrics = byLabel.get(label);
      if (metrics) cases.push({ case: pair.case, pred: pair.pred, gt: pair.gt, label, metrics });
    }
  }
  const rows: CaseRow[] = cases.map((c) => ({
    case: c.case,
    label: String(c.label),
    metrics: flattenMetrics(c.metrics),
  }));
  return { cases, summary: summarizeCases(rows), labels, tolerancesMm, surface, notes };
}
