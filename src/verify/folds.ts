// cv.folds: each training stage trained and validated on exactly its fold of plan.json, from its
// own fresh init to its own weights; the final model (fold all) claims no performance, and no
// summary passes its nominal numbers off as one.
import type { WeightsCache } from "./checkpoints.js";
import { type RunContext, verdictOf } from "./context.js";
import type { Skip } from "./taint.js";
import type { CheckResult } from "./types.js";

type Problem = { what: string; where: string };

const sameSet = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && new Set(a).size === a.length && a.every((x) => b.includes(x));

export function checkFolds(ctx: RunContext, cache: WeightsCache): CheckResult {
  if (ctx.train.length === 0)
    return { id: "cv.folds", verdict: "skipped", message: "no training stage", evidence: [] };
  const plan = ctx.plan?.json;
  const problems: Problem[] = [];
  const skips: Skip[] = [];
  const planRel = ctx.plan?.rel ?? "plan.json";
  const all = (plan?.dataset?.cases ?? []).map((c) => c.id);
  for (const t of ctx.train) {
    const out = `${t.dir}/output.json`;
    const reads = [
      `${out}#/fold`,
      `${out}#/train_cases`,
      `${out}#/val_cases`,
      ...(t.out.fold === "all"
        ? [`${out}#/performance`, `${out}#/per_case`, `${out}#/summary`, `${planRel}#/dataset/cases`]
        : [`${planRel}#/split`]),
    ];
    const blocked = ctx.taint.blocking(reads);
    if (blocked) {
      skips.push({ what: `${t.stage}'s fold`, blocked });
      continue;
    }
    const leak = t.out.val_cases.filter((id) => t.out.train_cases.includes(id));
    if (leak.length)
      problems.push({
        what: `${t.stage} trains on its held-out ${leak.join(", ")}`,
        where: `${out}#/train_cases`,
      });
    if (t.out.fold === "all") {
      if (!sameSet(t.out.train_cases, all) || t.out.val_cases.length)
        problems.push({
          what: `${t.stage} (fold all) does not train on exactly every case`,
          where: `${out}#/train_cases`,
        });
      if (t.out.performance !== null || t.out.per_case.length || t.out.summary !== null)
        problems.push({
          what: `${t.stage} (fold all) reports a performance for the final model`,
          where: `${out}#/performance`,
        });
      continue;
    }
    const fold = plan?.split?.folds?.find((f) => f.fold === t.out.fold);
    if (!fold) {
      problems.push({
        what: `${t.stage}: fold ${t.out.fold} is not in plan.json`,
        where: ctx.plan?.rel ?? out,
      });
      continue;
    }
    if (!sameSet(t.out.train_cases, fold.train))
      problems.push({
        what: `${t.stage} train cases differ from plan.json's fold ${fold.fold}`,
        where: `${out}#/train_cases`,
      });
    if (!sameSet(t.out.val_cases, fold.val))
      problems.push({
        what: `${t.stage} held-out cases differ from plan.json's fold ${fold.fold}`,
        where: `${out}#/val_cases`,
      });
  }
  // Fresh inits and distinct endpoints, pairwise over every training stage (the final model too).
  const inits = new Map<string, string>();
  const ends = new Map<string, string>();
  for (const t of ctx.train) {
    const bestRel = `${t.dir}/${t.out.checkpoints?.best?.path ?? "checkpoints/best.safetensors"}`;
    const blocked = ctx.taint.blocking([`${t.dir}/output.json#/init_digest`, bestRel]);
    if (blocked) {
      skips.push({ what: `${t.stage}'s init and weights`, blocked });
      continue;
    }
    const seen = inits.get(t.out.init_digest);
    if (seen)
      problems.push({
        what: `${t.stage} starts from ${seen}'s init`,
        where: `${t.dir}/output.json#/init_digest`,
      });
    else inits.set(t.out.init_digest, t.stage);
    const w = cache.get(bestRel);
    if (w instanceof Error) continue; // checkpoint.not-initial reports it
    const same = ends.get(w.digest);
    if (same) problems.push({ what: `${t.stage} ends with ${same}'s weights`, where: w.rel });
    else ends.set(w.digest, t.stage);
  }
  for (const s of ctx.summaries) {
    const out = `${s.dir}/output.json`;
    const blocked = ctx.taint.blocking([`${out}#/folds`, `${out}#/final`]);
    if (blocked) {
      skips.push({ what: `${s.stage}'s folds`, blocked });
      continue;
    }
    const finals = ctx.train.filter((t) => t.out.fold === "all");
    if (s.out.folds.some((f) => f.fold === "all"))
      problems.push({ what: `${s.stage} counts the final model among its folds`, where: `${out}#/folds` });
    if (finals.length && s.out.final?.performance_null !== true)
      problems.push({
        what: `${s.stage} does not record the final model's performance as null`,
        where: `${out}#/final`,
      });
  }
  return verdictOf(
    "cv.folds",
    problems,
    `${ctx.train.length} training stage(s) match their folds, fresh distinct inits, distinct weights; the final model claims no performance`,
    [ctx.plan ? `${ctx.plan.rel}#/split` : "plan.json", ...ctx.train.map((t) => `${t.dir}/output.json`)],
    skips,
  );
}
