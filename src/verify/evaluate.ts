// claims.evaluate: an evaluate stage's numbers are the numbers its files give. The stage's pairs
// are found again from its recorded inputs (with `pipeline evaluate`'s pairing rules), each
// prediction is read where it lies in this run (which may have moved since), placed with its
// reference in the comparison space and scored again; metrics.json's rows and summaries and
// output.json's per-case Dice, per-class means and mean foreground Dice must all follow from
// those scores. So a test stage cannot report numbers its predictions do not give, nor leave out
// the cases it did badly on.
import { existsSync } from "node:fs";
import { isAbsolute, join, relative } from "node:path";
import { gridProblem, labelValues, meanOf, pairReferences, placeMask } from "../evaluate/index.js";
import type { Evidence } from "../evidence/evidence.js";
import {
  type CaseRow,
  DEFAULT_TOLERANCES_MM,
  evaluateCase,
  flattenMetrics,
  summarizeCases,
} from "../metrics/index.js";
import { sameSummary } from "./claims.js";
import { close, fromJson, type JsonNumber, type MetricSummaryJson, verdictOf } from "./context.js";
import type { Pack } from "./pack.js";
import { parseLabelMap } from "./readers.js";
import type { Skip, Taint } from "./taint.js";
import type { CheckResult } from "./types.js";

const ID = "claims.evaluate";
const FINISHED = new Set(["succeeded", "cached"]);

interface EvaluateOutput {
  inputs: {
    values: {
      predictions: string;
      references: string;
      cases?: string[];
      labels?: number[];
      surface?: boolean;
      tolerances?: number[];
    };
  };
  num_cases: number;
  labels: string[];
  mean_foreground_dice: JsonNumber;
  per_class: { label: string; dice: JsonNumber; std: JsonNumber; n: number; nan: number }[];
  per_case: {
    case: string;
    prediction: string;
    reference: string;
    dice: Record<string, JsonNumber>;
    mean_dice: JsonNumber;
  }[];
  metrics: string;
}

interface MetricsJson {
  cases: { case: string; label: number | string; metrics: Record<string, JsonNumber> }[];
  summary: Record<string, { cases: number; metrics: Record<string, MetricSummaryJson> }>;
}

type Problem = { what: string; where: string };

/** A recorded path, as found now: inside this run (relative to it) or outside it (absolute). */
type Place = { rel: string } | { abs: string };

/**
 * Where a path a stage recorded lies now. A path into the run as it was when the stage ran is
 * taken from `stages/<a stage of this run>/` on, so a run copied elsewhere is judged on its own
 * files, not on whatever is left at the old place.
 */
function locate(pack: Pack, path: string, stages: ReadonlySet<string>): Place {
  const rel = relative(pack.dir, path);
  if (!rel.startsWith("..") && !isAbsolute(rel)) return { rel };
  const parts = path.split("/");
  for (let i = parts.length - 2; i >= 0; i--) {
    if (parts[i] !== "stages" || !stages.has(parts[i + 1] as string)) continue;
    const tail = parts.slice(i).join("/");
    if (pack.exists(tail)) return { rel: tail };
  }
  return { abs: path };
}

const pathOf = (pack: Pack, p: Place): string => ("rel" in p ? join(pack.dir, p.rel) : p.abs);
const keyOf = (p: Place): string => ("rel" in p ? p.rel : p.abs);
const bytesAt = (pack: Pack, p: Place): Buffer => ("rel" in p ? pack.bytes(p.rel) : pack.external(p.abs));

/** None when the run has no evaluate stage (runs without one list the same checks as before). */
export function evaluateChecks(pack: Pack, evidence: Evidence, taint: Taint): CheckResult[] {
  const stages = Object.values(evidence.stages)
    .filter((s) => s.skill === "evaluate" && FINISHED.has(s.status))
    .map((s) => s.stage);
  if (stages.length === 0) return [];
  try {
    return [checkEvaluate(pack, stages, new Set(Object.keys(evidence.stages)), taint)];
  } catch (err) {
    return [{ id: ID, verdict: "fail", message: (err as Error).message, evidence: [] }];
  }
}

function checkEvaluate(pack: Pack, stages: string[], known: ReadonlySet<string>, taint: Taint): CheckResult {
  const problems: Problem[] = [];
  const skips: Skip[] = [];
  const unreadable: string[] = [];
  let scored = 0;
  for (const stage of stages) {
    const dir = `stages/${stage}`;
    const outRel = `${dir}/output.json`;
    const blocked = taint.blocking([outRel]);
    if (blocked) {
      skips.push({ what: `${stage}'s numbers`, blocked });
      continue;
    }
    const out = pack.json<EvaluateOutput>(outRel);
    const metricsRel = `${dir}/${out.metrics}`;
    const metricsBlocked = taint.blocking([metricsRel]);
    if (metricsBlocked) {
      skips.push({ what: `${stage}'s numbers`, blocked: metricsBlocked });
      continue;
    }
    const metrics = pack.json<MetricsJson>(metricsRel);
    const v = out.inputs.values;
    if (!existsSync(v.references)) {
      unreadable.push(v.references);
      continue;
    }
    const predPlace = locate(pack, v.predictions, known);
    let pairs: ReturnType<typeof pairReferences>;
    try {
      pairs = pairReferences(pathOf(pack, predPlace), v.references, v.cases);
    } catch (err) {
      problems.push({
        what: `${stage}: its recorded inputs no longer pair: ${(err as Error).message.split("\n")[0]}`,
        where: `${outRel}#/inputs`,
      });
      continue;
    }
    const paired = new Set(pairs.map((p) => p.case));
    const reported = out.per_case.map((c) => c.case);
    const missing = pairs.filter((p) => !reported.includes(p.case)).map((p) => p.case);
    const extra = reported.filter((c, i) => !paired.has(c) || reported.indexOf(c) !== i);
    if (missing.length || extra.length || out.num_cases !== pairs.length)
      problems.push({
        what: `${stage} reports ${out.num_cases} case(s) (beyond the pairs: [${extra.join(", ")}]; left out: [${missing.join(", ")}]) where its inputs pair ${pairs.length}`,
        where: `${outRel}#/per_case`,
      });

    // Scored with the labels asked for, else the recorded ones; the recorded ones are then
    // checked against the references' nonzero values, as evaluate chooses them.
    const asked = v.labels?.map(String);
    const labels = asked ?? out.labels;
    const numeric = labels.includes("foreground") ? undefined : labels.map(Number);
    const seen = new Set<number>();
    const rows: CaseRow[] = [];
    let scoredHere = 0;
    for (const pair of pairs) {
      const i = out.per_case.findIndex((c) => c.case === pair.case);
      const pred = locate(pack, pair.pred, known);
      const gt = locate(pack, pair.gt, known);
      const where = i < 0 ? `${outRel}#/per_case` : `${outRel}#/per_case/${i}`;
      const caseBlocked = taint.blocking(
        ["rel" in pred ? pred.rel : "", "rel" in gt ? gt.rel : ""].filter(Boolean),
      );
      if (caseBlocked) {
        skips.push({ what: `${stage} ${pair.case}`, blocked: caseBlocked });
        continue;
      }
      let ref: ReturnType<typeof placeMask>;
      try {
        ref = placeMask(keyOf(gt), parseLabelMap(bytesAt(pack, gt), keyOf(gt)));
        for (const l of labelValues(ref.data, keyOf(gt))) seen.add(l);
      } catch (err) {
        unreadable.push(`${keyOf(gt)} (${(err as Error).message})`);
        continue;
      }
      let mask: ReturnType<typeof placeMask>;
      try {
        mask = placeMask(keyOf(pred), parseLabelMap(bytesAt(pack, pred), keyOf(pred)));
      } catch (err) {
        problems.push({ what: `${keyOf(pred)}: ${(err as Error).message}`, where: keyOf(pred) });
        continue;
      }
      const grid = gridProblem(mask, ref);
      if (grid) {
        problems.push({ what: `${stage} ${pair.case}: ${grid}`, where });
        continue;
      }
      const fresh = evaluateCase({ data: mask.data, shape: ref.shape, spacing: ref.spacing }, ref, {
        ...(numeric ? { labels: numeric } : {}),
        tolerancesMm: v.tolerances ?? DEFAULT_TOLERANCES_MM,
        surface: v.surface !== false,
      });
      scored++;
      scoredHere++;
      const rec = out.per_case[i];
      for (const [side, recorded, place] of [
        ["prediction", rec?.prediction, pred],
        ["reference", rec?.reference, gt],
      ] as const)
        if (recorded !== undefined && keyOf(locate(pack, recorded, known)) !== keyOf(place))
          problems.push({ what: `${stage} ${pair.case}: ${side} ${recorded} is not the paired file`, where });
      const dice: number[] = [];
      for (const m of fresh) {
        const label = String(m.label);
        const flat = flattenMetrics(m);
        rows.push({ case: pair.case, label, metrics: flat });
        dice.push(flat.dice as number);
        if (rec && !close(fromJson(rec.dice[label]), flat.dice as number))
          problems.push({
            what: `${stage} ${pair.case} label ${label}: Dice recorded ${rec.dice[label]}, recomputed ${flat.dice}`,
            where,
          });
        const j = metrics.cases.findIndex((r) => r.case === pair.case && String(r.label) === label);
        const row = metrics.cases[j];
        const names = new Set([...Object.keys(flat), ...Object.keys(row?.metrics ?? {})]);
        for (const name of names) {
          if (row && close(fromJson(row.metrics[name]), flat[name] ?? Number.NaN)) continue;
          problems.push({
            what: `${stage} ${pair.case} label ${label}: ${name} recorded ${row?.metrics[name]} in ${out.metrics}, recomputed ${flat[name]}`,
            where: j < 0 ? `${metricsRel}#/cases` : `${metricsRel}#/cases/${j}`,
          });
          break; // one line per row is enough to point at it
        }
      }
      if (rec && !close(fromJson(rec.mean_dice), meanOf(dice)))
        problems.push({
          what: `${stage} ${pair.case}: mean Dice recorded ${rec.mean_dice}, its labels give ${meanOf(dice)}`,
          where: `${where}/mean_dice`,
        });
    }
    if (metrics.cases.length !== pairs.length * labels.length)
      problems.push({
        what: `${stage}: ${out.metrics} holds ${metrics.cases.length} rows for ${pairs.length} case(s) × ${labels.length} label(s)`,
        where: `${metricsRel}#/cases`,
      });
    if (!asked && scoredHere === pairs.length) {
      const found = [...seen].sort((a, b) => a - b).map(String);
      const expected = found.length ? found : ["foreground"];
      if (expected.join() !== out.labels.join())
        problems.push({
          what: `${stage} scores labels [${out.labels}] where its references hold [${expected}]`,
          where: `${outRel}#/labels`,
        });
    }
    // The summaries of a stage whose cases were not all judged are not judged either.
    if (scoredHere === pairs.length)
      problems.push(...summaryProblems(stage, rows, out, metrics, outRel, metricsRel));
  }
  if (unreadable.length && scored === 0 && problems.length === 0 && skips.length === 0)
    return {
      id: ID,
      verdict: "skipped",
      message: `the references cannot be read here: ${unreadable[0]}`,
      evidence: stages.map((s) => `stages/${s}/output.json#/inputs`),
    };
  const result = verdictOf(
    ID,
    problems,
    `${stages.length} evaluate stage(s), ${scored} case(s) rescored from their predictions and references: every metric, summary and mean agrees within 1e-6`,
    stages.map((s) => `stages/${s}/output.json`),
    skips,
  );
  if (result.verdict === "pass" && unreadable.length)
    return { ...result, verdict: "warn", message: `${result.message}; unreadable: ${unreadable.join(", ")}` };
  return result;
}

/** metrics.json's per-label summaries, output.json's per-class Dice and mean foreground Dice, from the rescored rows. */
function summaryProblems(
  stage: string,
  rows: CaseRow[],
  out: EvaluateOutput,
  metrics: MetricsJson,
  outRel: string,
  metricsRel: string,
): Problem[] {
  const problems: Problem[] = [];
  const summary = summarizeCases(rows);
  for (const s of summary) {
    const rec = metrics.summary[s.label];
    const where = `${metricsRel}#/summary/${s.label}`;
    if (!rec || rec.cases !== s.cases) {
      problems.push({
        what: `${stage} summary of label ${s.label}: ${rec?.cases} cases, not ${s.cases}`,
        where,
      });
      continue;
    }
    const names = new Set([...Object.keys(rec.metrics), ...Object.keys(s.pooled)]);
    const off = [...names].find((m) => {
      const fresh = s.pooled[m];
      return !fresh || !sameSummary(rec.metrics[m], fresh);
    });
    if (off)
      problems.push({
        what: `${stage} summary of label ${s.label}: ${off} mean ${rec.metrics[off]?.mean}, the cases give ${s.pooled[off]?.mean}`,
        where: `${where}/metrics/${off}`,
      });
  }
  if (Object.keys(metrics.summary).length !== summary.length)
    problems.push({
      what: `${stage}: ${out.metrics} summarises ${Object.keys(metrics.summary).length} label(s), the cases ${summary.length}`,
      where: `${metricsRel}#/summary`,
    });
  const means: number[] = [];
  for (const s of summary) {
    const d = s.pooled.dice;
    const k = out.per_class.findIndex((c) => c.label === s.label);
    const rec = out.per_class[k];
    means.push(d?.mean ?? Number.NaN);
    if (
      !rec ||
      !d ||
      !close(fromJson(rec.dice), d.mean) ||
      !close(fromJson(rec.std), d.std) ||
      rec.n !== d.n ||
      rec.nan !== d.nan
    )
      problems.push({
        what: `${stage} class ${s.label}: Dice ${rec?.dice} ± ${rec?.std} (n ${rec?.n}), the cases give ${d?.mean} ± ${d?.std} (n ${d?.n})`,
        where: k < 0 ? `${outRel}#/per_class` : `${outRel}#/per_class/${k}`,
      });
  }
  if (out.per_class.length !== summary.length)
    problems.push({
      what: `${stage} reports ${out.per_class.length} classes, the cases ${summary.length}`,
      where: `${outRel}#/per_class`,
    });
  const mfd = meanOf(means);
  if (!close(fromJson(out.mean_foreground_dice), mfd))
    problems.push({
      what: `${stage}: mean foreground Dice recorded ${out.mean_foreground_dice}, the classes give ${mfd}`,
      where: `${outRel}#/mean_foreground_dice`,
    });
  return problems;
}
