// Summaries of per-case metrics over a cohort: mean and sample standard deviation
// (ddof = 1, as pandas' .std()), per fold and pooled over all cases.

export interface MetricSummary {
  mean: number;
  /** Sample standard deviation (n − 1 in the denominator); NaN with fewer than two values. */
  std: number;
  /** Values that entered the mean. */
  n: number;
  /** NaN values skipped (undefined metrics, e.g. Dice with both masks empty). */
  nan: number;
  /** ±Infinity values left out of the mean (e.g. HD95 with exactly one mask empty). */
  infinite: number;
}

export interface SummaryOptions {
  /**
   * Metrics whose infinities are kept, so they make the mean infinite instead of being
   * counted and excluded. Default: none — every infinity is excluded and counted, which
   * is what the reference CV summary does for its distance metrics.
   */
  keepInfinite?: readonly string[];
}

export function summarize(values: readonly number[], keepInfinite = false): MetricSummary {
  let nan = 0;
  let infinite = 0;
  const kept: number[] = [];
  for (const v of values) {
    if (Number.isNaN(v)) nan++;
    else if (!Number.isFinite(v) && !keepInfinite) infinite++;
    else kept.push(v);
  }
  const n = kept.length;
  if (n === 0) return { mean: Number.NaN, std: Number.NaN, n, nan, infinite };
  let sum = 0;
  for (const v of kept) sum += v;
  const mean = sum / n;
  // Two passes: squared deviations from the mean, not E[x²] − E[x]², which cancels badly.
  let ss = 0;
  for (const v of kept) ss += (v - mean) * (v - mean);
  return { mean, std: n < 2 ? Number.NaN : Math.sqrt(ss / (n - 1)), n, nan, infinite };
}

/** One case's metrics for one label, as flat named numbers. */
export interface CaseRow {
  case: string;
  fold?: string | number;
  label?: string | number;
  metrics: Readonly<Record<string, number>>;
}

export type MetricTable = Record<string, MetricSummary>;

export interface LabelSummary {
  label: string;
  cases: number;
  pooled: MetricTable;
  /** Keyed by fold; absent when no row names a fold. */
  folds: Record<string, MetricTable>;
}

function table(rows: readonly CaseRow[], names: readonly string[], keep: ReadonlySet<string>): MetricTable {
  const out: MetricTable = {};
  for (const name of names) {
    // A metric a row does not report counts as NaN for that row: undefined, not zero.
    out[name] = summarize(
      rows.map((r) => r.metrics[name] ?? Number.NaN),
      keep.has(name),
    );
  }
  return out;
}

/**
 * Per label: the pooled summary over all cases and one summary per fold. Metric names
 * are the union over rows, in first-seen order; labels and folds in first-seen order too.
 */
export function summarizeCases(rows: readonly CaseRow[], options: SummaryOptions = {}): LabelSummary[] {
  const keep = new Set(options.keepInfinite ?? []);
  const byLabel = new Map<string, CaseRow[]>();
  for (const r of rows) {
    const key = String(r.label ?? "");
    const list = byLabel.get(key);
    if (list) list.push(r);
    else byLabel.set(key, [r]);
  }
  const result: LabelSummary[] = [];
  for (const [label, list] of byLabel) {
    const names: string[] = [];
    const seen = new Set<string>();
    for (const r of list) {
      for (const k of Object.keys(r.metrics)) {
        if (!seen.has(k)) {
          seen.add(k);
          names.push(k);
        }
      }
    }
    const byFold = new Map<string, CaseRow[]>();
    for (const r of list) {
      if (r.fold === undefined) continue;
      const key = String(r.fold);
      const f = byFold.get(key);
      if (f) f.push(r);
      else byFold.set(key, [r]);
    }
    const folds: Record<string, MetricTable> = {};
    for (const [fold, fr] of byFold) folds[fold] = table(fr, names, keep);
    result.push({ label, cases: list.length, pooled: table(list, names, keep), folds });
  }
  return result;
}
