// claims.*: the numbers a run reports are the numbers its evidence gives. Per case: the saved
// native-space prediction scored again against the ground-truth label file named by plan.json,
// with the spacing of that file's header (a spacing in output.json is a claim, not an input).
// Aggregates: every summary re-derived from the per-case values it summarises.
import { isAbsolute, join } from "node:path";
import {
  type CaseRow,
  evaluateCase,
  flattenMetrics,
  type MetricSummary,
  summarizeCases,
} from "../metrics/index.js";
import {
  type CvTrainOutput,
  close,
  fromJson,
  type LabelSummaryJson,
  type MetricSummaryJson,
  type RunContext,
  type Staged,
  verdictOf,
} from "./context.js";
import type { Pack } from "./pack.js";
import { parseLabelMap } from "./readers.js";
import type { Skip } from "./taint.js";
import type { CheckResult } from "./types.js";

type Problem = { what: string; where: string };

export function checkPerCase(pack: Pack, ctx: RunContext): CheckResult {
  const folds = ctx.train.filter((t) => t.out.val_cases.length > 0 || t.out.per_case.length > 0);
  if (folds.length === 0)
    return {
      id: "claims.per-case",
      verdict: "skipped",
      message: "no per-case metrics in this run",
      evidence: [],
    };
  const plan = ctx.plan?.json;
  if (!plan?.dataset?.cases)
    return {
      id: "claims.per-case",
      verdict: "fail",
      message: "no plan.json with the dataset's cases",
      evidence: [],
    };
  const root = plan.dataset.root ?? "";
  const gtOf = new Map(
    plan.dataset.cases.map((c) => [c.id, c.label && (isAbsolute(c.label) ? c.label : join(root, c.label))]),
  );
  const labels = Object.keys(plan.dataset.labels ?? {})
    .map(Number)
    .filter((k) => k !== 0)
    .sort((a, b) => a - b);
  const problems: Problem[] = [];
  const skips: Skip[] = [];
  const unreadable: string[] = [];
  let scored = 0;
  for (const t of folds) {
    const out = `${t.dir}/output.json`;
    const stageBlocked = ctx.taint.blocking([`${out}#/val_cases`, `${ctx.plan?.rel}#/dataset`]);
    if (stageBlocked) {
      skips.push({ what: `${t.stage}'s cases`, blocked: stageBlocked });
      continue;
    }
    const ids = t.out.per_case.map((c) => c.id);
    const missing = t.out.val_cases.filter((id) => !ids.includes(id));
    const extra = ids.filter((id, i) => !t.out.val_cases.includes(id) || ids.indexOf(id) !== i);
    if (missing.length || extra.length)
      problems.push({
        what: `${t.stage} scores [${extra.join(", ")}] beyond / misses [${missing.join(", ")}] of its held-out cases`,
        where: `${out}#/per_case`,
      });
    for (const [i, c] of t.out.per_case.entries()) {
      const where = `${out}#/per_case/${i}`;
      const blocked = ctx.taint.blocking([where, `${t.dir}/${c.prediction}`]);
      if (blocked) {
        skips.push({ what: `${t.stage} ${c.id}`, blocked });
        continue;
      }
      const gtPath = gtOf.get(c.id);
      if (!gtPath) {
        problems.push({ what: `${c.id} has no ground-truth label in plan.json`, where });
        continue;
      }
      let gt: ReturnType<typeof parseLabelMap>;
      try {
        gt = parseLabelMap(pack.external(gtPath), gtPath);
      } catch (err) {
        unreadable.push(`${gtPath} (${(err as Error).message})`);
        continue;
      }
      const predRel = `${t.dir}/${c.prediction}`;
      let pred: ReturnType<typeof parseLabelMap>;
      try {
        pred = parseLabelMap(pack.bytes(predRel), predRel);
      } catch (err) {
        problems.push({ what: `${predRel}: ${(err as Error).message}`, where: predRel });
        continue;
      }
      const d = pred.shape.length;
      const shape = gt.shape.slice(0, d);
      const spacing = gt.spacing.slice(0, d);
      if (gt.shape.slice(d).some((s) => s !== 1) || shape.some((s, k) => s !== pred.shape[k])) {
        problems.push({
          what: `${predRel} grid [${pred.shape}] is not the label's [${gt.shape}]`,
          where: predRel,
        });
        continue;
      }
      if (c.spacing.length !== d || c.spacing.some((s, k) => !close(s, spacing[k] as number)))
        problems.push({
          what: `${t.stage} ${c.id}: recorded spacing [${c.spacing}] is not the label header's [${spacing}]`,
          where: `${where}/spacing`,
        });
      if (c.shape.length !== d || c.shape.some((s, k) => s !== shape[k]))
        problems.push({
          what: `${t.stage} ${c.id}: recorded shape [${c.shape}] is not [${shape}]`,
          where: `${where}/shape`,
        });
      const results = evaluateCase(
        { data: pred.data, shape, spacing },
        { data: gt.data, shape, spacing },
        { labels: labels.length ? labels : c.labels.map((l) => l.label) },
      );
      scored++;
      const recorded = new Map(c.labels.map((l) => [l.label, l]));
      for (const r of results) {
        const k = r.label as number;
        const rec = recorded.get(k);
        if (!rec) {
          problems.push({ what: `${t.stage} ${c.id}: label ${k} is not scored`, where: `${where}/labels` });
          continue;
        }
        const flat = flattenMetrics(r);
        for (const [name, v] of Object.entries(rec.metrics)) {
          const fresh = flat[name];
          if (fresh === undefined || !close(fromJson(v), fresh))
            problems.push({
              what: `${t.stage} ${c.id} label ${k}: ${name} recorded ${v}, recomputed ${fresh}`,
              where: `${where}/labels`,
            });
        }
      }
    }
  }
  if (unreadable.length && scored === 0 && problems.length === 0 && skips.length === 0)
    return {
      id: "claims.per-case",
      verdict: "skipped",
      message: `the ground-truth labels cannot be read here: ${unreadable[0]}`,
      evidence: [ctx.plan?.rel ?? "plan.json"],
    };
  const result = verdictOf(
    "claims.per-case",
    problems,
    `${scored} case(s) rescored from their predictions and labels: every metric agrees within 1e-6`,
    folds.map((t) => `${t.dir}/predictions`),
    skips,
  );
  if (result.verdict === "pass" && unreadable.length)
    return { ...result, verdict: "warn", message: `${result.message}; unreadable: ${unreadable.join(", ")}` };
  return result;
}

function rowsOf(t: Staged<CvTrainOutput>, withFold: boolean): CaseRow[] {
  return t.out.per_case.flatMap((c) =>
    c.labels.map((l) => ({
      case: c.id,
      label: l.label,
      ...(withFold ? { fold: String(t.out.fold) } : {}),
      metrics: Object.fromEntries(Object.entries(l.metrics).map(([k, v]) => [k, fromJson(v)])),
    })),
  );
}

/** A recorded summary entry (mean, std, n, nan, infinite) equals a recomputed one. */
export function sameSummary(rec: MetricSummaryJson | undefined, fresh: MetricSummary): boolean {
  return (
    rec !== undefined &&
    close(fromJson(rec.mean), fresh.mean) &&
    close(fromJson(rec.std), fresh.std) &&
    rec.n === fresh.n &&
    rec.nan === fresh.nan &&
    rec.infinite === fresh.infinite
  );
}

function compareTable(
  rec: Record<string, MetricSummaryJson> | undefined,
  fresh: Record<string, MetricSummary>,
  what: string,
  where: string,
  problems: Problem[],
): void {
  const names = new Set([...Object.keys(rec ?? {}), ...Object.keys(fresh)]);
  for (const m of names) {
    const f = fresh[m];
    if (!f || !sameSummary(rec?.[m], f)) {
      problems.push({ what: `${what} ${m}: recorded mean ${rec?.[m]?.mean}, recomputed ${f?.mean}`, where });
      return; // one line per table is enough to point at it
    }
  }
}

function compareMeans(
  rec: Record<string, Record<string, unknown>> | undefined,
  fresh: Map<string, Record<string, MetricSummary>>,
  what: string,
  where: string,
  problems: Problem[],
): void {
  const labels = new Set([...Object.keys(rec ?? {}), ...fresh.keys()]);
  for (const l of labels) {
    const f = fresh.get(l);
    const r = rec?.[l];
    const names = new Set([...Object.keys(r ?? {}), ...Object.keys(f ?? {})]);
    for (const m of names) {
      const fm = f?.[m];
      if (!fm || !close(fromJson(r?.[m]), fm.mean)) {
        // Pointed at the one value, so that checks reading its neighbours still judge them.
        problems.push({
          what: `${what} label ${l} ${m}: ${r?.[m]} but the cases give ${fm?.mean}`,
          where: `${where}/mean/${l}/${m}`,
        });
        return;
      }
    }
  }
}

function compareSummaries(
  rec: LabelSummaryJson[] | null,
  fresh: ReturnType<typeof summarizeCases>,
  withFolds: boolean,
  what: string,
  where: string,
  problems: Problem[],
): void {
  const byLabel = new Map((rec ?? []).map((s) => [String(s.label), s]));
  if (byLabel.size !== fresh.length)
    problems.push({ what: `${what}: ${byLabel.size} label summaries, cases give ${fresh.length}`, where });
  for (const f of fresh) {
    const r = byLabel.get(f.label);
    if (!r) continue;
    if (r.cases !== f.cases)
      problems.push({ what: `${what} label ${f.label}: ${r.cases} cases, not ${f.cases}`, where });
    compareTable(r.metrics, f.pooled, `${what} label ${f.label}`, where, problems);
    if (withFolds)
      for (const [fold, table] of Object.entries(f.folds))
        compareTable(r.folds?.[fold], table, `${what} label ${f.label} fold ${fold}`, where, problems);
  }
}

export function checkAggregates(ctx: RunContext): CheckResult {
  const folds = ctx.train.filter((t) => t.out.per_case.length > 0);
  if (folds.length === 0 && ctx.summaries.length === 0)
    return { id: "claims.aggregates", verdict: "skipped", message: "no summaries in this run", evidence: [] };
  const problems: Problem[] = [];
  const skips: Skip[] = [];
  // A summary is judged against the per-case values it summarises; one of those already found
  // false (claims.per-case) leaves the summary unjudged rather than failed twice.
  const reads = (t: Staged<CvTrainOutput>): string[] => {
    const o = `${t.dir}/output.json`;
    return t.out.per_case.flatMap((_, i) => [`${o}#/per_case/${i}/id`, `${o}#/per_case/${i}/labels`]);
  };
  for (const t of folds) {
    const where = `${t.dir}/output.json`;
    const blocked = ctx.taint.blocking([...reads(t), `${where}#/summary`, `${where}#/performance`]);
    if (blocked) {
      skips.push({ what: `${t.stage}'s summaries`, blocked });
      continue;
    }
    const fresh = summarizeCases(rowsOf(t, false));
    compareSummaries(t.out.summary, fresh, false, `${t.stage} summary`, `${where}#/summary`, problems);
    const means = new Map(fresh.map((s) => [s.label, s.pooled]));
    compareMeans(t.out.performance?.mean, means, `${t.stage} performance`, `${where}#/performance`, problems);
    if (t.out.performance && t.out.performance.cases !== t.out.per_case.length)
      problems.push({
        what: `${t.stage} performance counts ${t.out.performance.cases} cases`,
        where: `${where}#/performance/cases`,
      });
  }
  for (const s of ctx.summaries) {
    const where = `${s.dir}/output.json`;
    const own = ["folds", "cases", "summary", "performance"].map((k) => `${where}#/${k}`);
    const blocked = ctx.taint.blocking([...own, ...folds.flatMap(reads)]);
    if (blocked) {
      skips.push({ what: `${s.stage}'s summaries`, blocked });
      continue;
    }
    const byFold = new Map(folds.map((t) => [String(t.out.fold), t]));
    // A fold whose stage output cannot be read has no per-case values to recompute from: the
    // summary is left unjudged (the file is integrity's or outputs.schema's finding), not
    // accused of numbers that merely lack one fold's cases.
    const lost = s.out.folds.filter((f) => !byFold.has(String(f.fold)));
    if (lost.length && ctx.unreadable.length) {
      const named = ctx.unreadable.find((u) =>
        lost.some((f) => typeof f.source === "string" && f.source.endsWith(`/${u.dir}/output.json`)),
      );
      const rel = `${(named ?? (ctx.unreadable[0] as { dir: string })).dir}/output.json`;
      const unread = ctx.taint.blocking([rel]);
      if (unread) skips.push({ what: `${s.stage}'s summaries`, blocked: unread });
      else
        problems.push({
          what: `${s.stage} summarises fold ${lost[0]?.fold}, whose ${rel} cannot be read`,
          where: `${where}#/folds`,
        });
      continue;
    }
    const used: Staged<CvTrainOutput>[] = [];
    for (const [i, f] of s.out.folds.entries()) {
      const t = byFold.get(String(f.fold));
      if (!t) {
        problems.push({
          what: `${s.stage} summarises fold ${f.fold}, which has no held-out scores here`,
          where: `${where}#/folds/${i}`,
        });
        continue;
      }
      used.push(t);
      const fresh = new Map(summarizeCases(rowsOf(t, false)).map((x) => [x.label, x.pooled]));
      compareMeans(f.mean, fresh, `${s.stage} fold ${f.fold}`, `${where}#/folds/${i}`, problems);
    }
    const rows = used.flatMap((t) => rowsOf(t, true));
    const pooled = summarizeCases(rows);
    compareSummaries(
      s.out.summary,
      pooled,
      used.length > 1,
      `${s.stage} summary`,
      `${where}#/summary`,
      problems,
    );
    compareMeans(
      s.out.performance?.mean,
      new Map(pooled.map((x) => [x.label, x.pooled])),
      `${s.stage} performance`,
      `${where}#/performance`,
      problems,
    );
    const nCases = used.reduce((a, t) => a + t.out.per_case.length, 0);
    if (s.out.performance && (s.out.performance.cases !== nCases || s.out.performance.folds !== used.length))
      problems.push({
        what: `${s.stage} performance claims ${s.out.performance.cases} cases of ${s.out.performance.folds} folds; the folds hold ${nCases} of ${used.length}`,
        where: `${where}#/performance/cases`,
      });
    const dice = new Map(used.flatMap((t) => t.out.per_case.map((c) => [c.id, c.labels] as const)));
    for (const [i, c] of s.out.cases.entries()) {
      const labels = dice.get(c.id);
      for (const [l, v] of Object.entries(c.dice)) {
        const src = labels?.find((x) => String(x.label) === l)?.metrics.dice;
        if (src === undefined || !close(fromJson(v), fromJson(src)))
          problems.push({
            what: `${s.stage} ${c.id} Dice ${v} is not its fold's ${src}`,
            where: `${where}#/cases/${i}`,
          });
      }
    }
  }
  return verdictOf(
    "claims.aggregates",
    problems,
    `${folds.length} fold summaries and ${ctx.summaries.length} pooled summary(ies) recompute from their per-case values`,
    [
      ...folds.map((t) => `${t.dir}/output.json#/summary`),
      ...ctx.summaries.map((s) => `${s.dir}/output.json#/summary`),
    ],
    skips,
  );
}
