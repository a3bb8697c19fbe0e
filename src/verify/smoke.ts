// smoke.no-quality-claims: a smoke run proves the plumbing, not the model. Its metrics are
// reported as information; an output that claims quality in smoke mode fails. The rule is in
// README.md (a `quality_claim: true` at the top of a stage output or inside its `performance`).
import type { Evidence } from "../evidence/evidence.js";
import { type RunContext, verdictOf } from "./context.js";
import type { Pack } from "./pack.js";
import { type Skip, skipLine } from "./taint.js";
import type { CheckResult } from "./types.js";

export function checkSmoke(pack: Pack, evidence: Evidence, ctx: RunContext): CheckResult {
  const modeBlocked = ctx.taint.blocking(["run.json#/mode"]);
  if (modeBlocked)
    return {
      id: "smoke.no-quality-claims",
      verdict: "skipped",
      message: skipLine({ what: "whether this is a smoke run", blocked: modeBlocked }),
      evidence: [modeBlocked.pointer],
    };
  if (ctx.mode !== "smoke")
    return {
      id: "smoke.no-quality-claims",
      verdict: "skipped",
      message: `a ${ctx.mode ?? "unknown"}-mode run: its metrics may be judged`,
      evidence: ["run.json#/mode"],
    };
  const problems: { what: string; where: string }[] = [];
  const skips: Skip[] = [];
  for (const rec of Object.values(evidence.stages)) {
    const rel = `stages/${rec.stage}/output.json`;
    if (!pack.exists(rel)) continue;
    const blocked = ctx.taint.blocking([`${rel}#/quality_claim`, `${rel}#/performance/quality_claim`]);
    if (blocked) {
      skips.push({ what: rel, blocked });
      continue;
    }
    let out: Record<string, unknown>;
    try {
      out = pack.json<Record<string, unknown>>(rel);
    } catch {
      continue; // outputs.schema reports it
    }
    const perf = out.performance;
    if (out.quality_claim === true)
      problems.push({ what: `${rec.stage} claims quality`, where: `${rel}#/quality_claim` });
    if (perf && typeof perf === "object" && (perf as Record<string, unknown>).quality_claim === true)
      problems.push({
        what: `${rec.stage} claims its performance as quality`,
        where: `${rel}#/performance/quality_claim`,
      });
  }
  const reported = [...ctx.train, ...ctx.summaries].filter((s) => s.out.performance).length;
  return verdictOf(
    "smoke.no-quality-claims",
    problems,
    `smoke run: ${reported} performance record(s) reported as information, none judged or claimed as quality`,
    [...ctx.train, ...ctx.summaries].map((s) => `${s.dir}/output.json#/performance`),
    skips,
  );
}
