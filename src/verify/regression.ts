// regression.*: the run's aggregate metrics against a reference's ranges (--reference) and
// against a baseline run (--baseline). Smoke runs make no quality claim, so in a smoke run (or
// against a smoke baseline) the values are reported and the check is skipped, never failed.
import { isAbsolute, join, resolve } from "node:path";
import type { Evidence } from "../evidence/evidence.js";
import { fromJson, type MetricSummaryJson, type RunContext } from "./context.js";
import type { Pack } from "./pack.js";
import { atPointer, type Reference } from "./reference.js";
import { type Skip, skipLine } from "./taint.js";
import type { CheckResult } from "./types.js";

const FINISHED = new Set(["succeeded", "cached"]);
const fmt = (v: number) => (Math.abs(v) >= 100 ? v.toFixed(1) : Number(v.toPrecision(4)).toString());

interface Measured {
  name: string;
  where: string;
  value: number;
  centre: number;
  tolerance: number;
  inside: boolean;
}

/** Every metric of the reference that the run measures, against centre ± tolerance. */
export function checkReference(
  pack: Pack,
  evidence: Evidence,
  ctx: RunContext,
  ref: Reference,
  refLabel: string,
): CheckResult {
  const id = "regression.reference";
  const rows: Measured[] = [];
  const unmeasured: string[] = [];
  const skips: Skip[] = [];
  for (const [name, m] of Object.entries(ref.metrics)) {
    const sep = m.measured?.indexOf(":") ?? -1;
    if (!m.measured || sep < 0) {
      unmeasured.push(name);
      continue;
    }
    const skill = m.measured.slice(0, sep);
    const pointer = m.measured.slice(sep + 1);
    let found = false;
    for (const rec of Object.values(evidence.stages)) {
      if (rec.skill !== skill || !FINISHED.has(rec.status)) continue;
      const rel = `stages/${rec.stage}/output.json`;
      if (!pack.exists(rel)) continue;
      const where = `${rel}#${pointer}`;
      const blocked = ctx.taint.blocking([where]);
      if (blocked) {
        skips.push({ what: `${name} of ${rec.stage}`, blocked });
        found = true;
        continue;
      }
      const raw = atPointer(pack.json(rel), pointer);
      if (raw === undefined || raw === null) continue; // this stage does not measure it (fold all)
      const value = fromJson(raw);
      found = true;
      // NaN is never inside a range: a metric that could not be computed is not a reproduction.
      const inside = Math.abs(value - m.centre) <= m.tolerance + 1e-12;
      rows.push({ name, where, value, centre: m.centre, tolerance: m.tolerance, inside });
    }
    if (!found) unmeasured.push(name);
  }
  const line = (r: Measured) =>
    `${r.name} ${fmt(r.value)} ${r.inside ? "in" : "outside"} ${fmt(r.centre)} ± ${fmt(r.tolerance)}`;
  const notes = unmeasured.length ? `; not measured by this run: ${unmeasured.join(", ")}` : "";
  if (ctx.mode === "smoke")
    return {
      id,
      verdict: "skipped",
      message: `smoke run, reported and not judged as quality against ${refLabel}: ${rows.map(line).join(", ") || "nothing measured"}${notes}`,
      evidence: [...new Set(rows.map((r) => r.where))],
    };
  const outside = rows.filter((r) => !r.inside);
  if (outside.length)
    return {
      id,
      verdict: "fail",
      message: `${outside.length} of ${rows.length} value(s) outside ${refLabel}'s ranges: ${outside.map(line).join(", ")}`,
      evidence: [...new Set(outside.map((r) => r.where))],
    };
  if (skips.length)
    return {
      id,
      verdict: "skipped",
      message: skips.map(skipLine).join("; "),
      evidence: [...new Set(skips.map((s) => s.blocked.pointer))],
    };
  if (rows.length === 0)
    return {
      id,
      verdict: "skipped",
      message: `no stage of this run measures what ${refLabel} ranges${notes}`,
      evidence: [],
    };
  return {
    id,
    verdict: "pass",
    message: `${rows.length} value(s) inside ${refLabel}'s ranges: ${rows.map(line).join(", ")}${notes}`,
    evidence: [...new Set(rows.map((r) => r.where))],
  };
}

/** Which way is better, for the metrics a baseline comparison judges (others are not compared). */
function direction(metric: string): "higher" | "lower" | "absolute" | null {
  if (/^(dice|iou|sensitivity|precision|specificity|ldr|nsd@.*)$/.test(metric)) return "higher";
  if (/^(hd|hd95|assd)$/.test(metric)) return "lower";
  if (metric === "rve") return "absolute";
  return null;
}

interface StageMetrics {
  mean?: Record<string, Record<string, unknown>>;
  summary?: { label: number; metrics: Record<string, MetricSummaryJson> }[] | null;
}

/**
 * Every stage of this run that reports a performance, against the baseline run's stage of the
 * same id: per label and metric, this run's mean may be worse than the baseline's by at most
 * the tolerance, two standard errors of the baseline's mean (its per-case sample std / √n, from
 * the baseline's own summary; 0 when it has fewer than two finite cases).
 */
export function checkBaseline(pack: Pack, ctx: RunContext, baselineDir: string): CheckResult {
  const id = "regression.baseline";
  const base = isAbsolute(baselineDir) ? baselineDir : resolve(baselineDir);
  const read = (rel: string): Record<string, unknown> | null => {
    try {
      return JSON.parse(pack.external(join(base, rel)).toString("utf8")) as Record<string, unknown>;
    } catch {
      return null;
    }
  };
  const baseRun = read("run.json");
  if (!baseRun)
    return { id, verdict: "fail", message: `${base}: no run.json, not a run folder`, evidence: [] };
  const mine = [...ctx.train, ...ctx.summaries].filter((s) => s.out.performance?.mean);
  const lines: string[] = [];
  const worse: { line: string; where: string }[] = [];
  const skips: Skip[] = [];
  let compared = 0;
  for (const s of mine) {
    const theirs = read(`${s.dir}/output.json`) as {
      performance?: StageMetrics | null;
      summary?: unknown;
    } | null;
    const theirMean = theirs?.performance?.mean;
    if (!theirMean) continue;
    const summary = (theirs?.summary ?? []) as NonNullable<StageMetrics["summary"]>;
    for (const [label, metrics] of Object.entries(s.out.performance?.mean ?? {}))
      for (const [metric, raw] of Object.entries(metrics)) {
        const dir = direction(metric);
        const b = theirMean[label]?.[metric];
        if (!dir || b === undefined) continue;
        const where = `${s.dir}/output.json#/performance/mean/${label}/${metric}`;
        const blocked = ctx.taint.blocking([where]);
        if (blocked) {
          skips.push({ what: `${s.stage} ${metric}`, blocked });
          continue;
        }
        const v = fromJson(raw);
        const bv = fromJson(b);
        const stats = summary.find((x) => String(x.label) === label)?.metrics[metric];
        const n = stats?.n ?? 0;
        const sd = stats ? fromJson(stats.std) : Number.NaN;
        const tol = n >= 2 && Number.isFinite(sd) ? (2 * sd) / Math.sqrt(n) : 0;
        const loss = dir === "higher" ? bv - v : dir === "lower" ? v - bv : Math.abs(v) - Math.abs(bv);
        compared++;
        const line = `${s.stage} label ${label} ${metric} ${fmt(v)} vs baseline ${fmt(bv)} (tolerance ${fmt(tol)})`;
        // A value that became NaN where the baseline had one is a regression too.
        if (loss > tol + 1e-12 || (Number.isNaN(v) && !Number.isNaN(bv))) worse.push({ line, where });
        else lines.push(line);
      }
  }
  const smoke = ctx.mode === "smoke" || baseRun.mode === "smoke";
  if (smoke)
    return {
      id,
      verdict: "skipped",
      message: `${ctx.mode === "smoke" ? "this run" : "the baseline"} is a smoke run: reported, not judged as quality: ${compared} value(s) compared, ${worse.length} worse beyond tolerance${worse.length ? ` (${worse.map((w) => w.line).join("; ")})` : ""}`,
      evidence: [base],
    };
  if (worse.length)
    return {
      id,
      verdict: "fail",
      message: `${worse.length} of ${compared} value(s) worse than the baseline beyond its tolerance: ${worse
        .slice(0, 4)
        .map((w) => w.line)
        .join("; ")}`,
      evidence: [...new Set(worse.map((w) => w.where))],
    };
  if (skips.length)
    return {
      id,
      verdict: "skipped",
      message: skips.map(skipLine).join("; "),
      evidence: [...new Set(skips.map((x) => x.blocked.pointer))],
    };
  if (compared === 0)
    return {
      id,
      verdict: "skipped",
      message: `the baseline ${base} has no stage measuring what this run measures`,
      evidence: [base],
    };
  return {
    id,
    verdict: "pass",
    message: `${compared} value(s) not worse than the baseline ${base} beyond two standard errors of its means`,
    evidence: [base],
  };
}
