// checkpoint.*: the weights a training stage hands on are finite, are the best of its own
// validation trace, and are not its initial weights. Digests are recomputed per tensor from the
// safetensors files (never the file bytes, never a recorded digest), so a re-serialized copy of
// the same weights — other tensor order, other metadata — is still recognised.
import {
  digestOfDigests,
  nonFiniteTensors,
  parseSafetensors,
  type SafetensorsFile,
  tensorDigests,
} from "../evidence/safetensors.js";
import { type CvTrainOutput, close, type RunContext, type Staged, verdictOf } from "./context.js";
import type { Pack } from "./pack.js";
import type { Skip } from "./taint.js";
import type { CheckResult } from "./types.js";

interface Weights {
  rel: string;
  file: SafetensorsFile;
  digests: Record<string, string>;
  digest: string;
}

interface TraceJson {
  validations?: { epoch: number; dice: number; ema: number }[];
  best?: { epoch: number; dice: number | null; ema: number | null };
}

type Problem = { what: string; where: string };

/** Parsed weights, memoised per run: a checkpoint is 20 MB and three checks read it. */
export class WeightsCache {
  private readonly seen = new Map<string, Weights | Error>();
  constructor(private readonly pack: Pack) {}

  get(rel: string): Weights | Error {
    let w = this.seen.get(rel);
    if (!w) {
      try {
        if (!this.pack.exists(rel)) throw new Error(`${rel} is missing`);
        const file = parseSafetensors(this.pack.bytes(rel), rel);
        const digests = tensorDigests(file);
        w = { rel, file, digests, digest: digestOfDigests(digests) };
      } catch (err) {
        w = err as Error;
      }
      this.seen.set(rel, w);
    }
    return w;
  }
}

const ckptRel = (t: Staged<CvTrainOutput>, kind: string): string =>
  `${t.dir}/${t.out.checkpoints?.[kind]?.path ?? `checkpoints/${kind}.safetensors`}`;
const packageRel = (t: Staged<CvTrainOutput>): string =>
  `${t.dir}/${(t.out.model?.path ?? "model/").replace(/\/?$/, "/")}weights.safetensors`;

/** Every safetensors file of every training stage: checkpoints and the package's weights. */
export function checkFinite(pack: Pack, ctx: RunContext, cache: WeightsCache): CheckResult {
  const files = ctx.train.flatMap((t) => pack.files(t.dir).filter((f) => f.endsWith(".safetensors")));
  if (files.length === 0)
    return { id: "checkpoint.finite", verdict: "skipped", message: "no weights in this run", evidence: [] };
  const problems: Problem[] = [];
  const skips: Skip[] = [];
  for (const rel of files) {
    const blocked = ctx.taint.blocking([rel]);
    if (blocked) {
      skips.push({ what: rel, blocked });
      continue;
    }
    const w = cache.get(rel);
    if (w instanceof Error) problems.push({ what: w.message, where: rel });
    else {
      const bad = nonFiniteTensors(w.file);
      if (bad.length) problems.push({ what: `${rel}: NaN/Inf in ${bad.slice(0, 3).join(", ")}`, where: rel });
    }
  }
  return verdictOf(
    "checkpoint.finite",
    problems,
    `${files.length} weight files, every float finite`,
    files,
    skips,
  );
}

/**
 * The claimed best equals the highest EMA of the stage's own trace (the first such epoch on
 * ties), training_best is that EMA, and best.safetensors says it is that epoch's weights.
 */
export function checkBestOfTrace(pack: Pack, ctx: RunContext, cache: WeightsCache): CheckResult {
  const problems: Problem[] = [];
  const skips: Skip[] = [];
  let n = 0;
  for (const t of ctx.train) {
    if (t.out.val_cases.length === 0) continue; // fold all: nothing validated, "last" is the rule
    const traceRel = `${t.dir}/${t.out.trace ?? "trace.json"}`;
    const o = `${t.dir}/output.json`;
    const blocked = ctx.taint.blocking([
      `${o}#/best`,
      `${o}#/training_best`,
      `${o}#/trace`,
      traceRel,
      ckptRel(t, "best"),
    ]);
    if (blocked) {
      skips.push({ what: `${t.stage}'s best checkpoint`, blocked });
      continue;
    }
    let trace: TraceJson;
    try {
      trace = pack.json<TraceJson>(traceRel);
    } catch (err) {
      problems.push({ what: `${traceRel}: ${(err as Error).message}`, where: traceRel });
      continue;
    }
    const vals = trace.validations ?? [];
    if (vals.length === 0) {
      problems.push({ what: `${traceRel} records no validation`, where: traceRel });
      continue;
    }
    n++;
    let max = vals[0] as (typeof vals)[number];
    for (const v of vals) if (v.ema > max.ema) max = v; // strictly greater: first on ties
    const out = `${t.dir}/output.json`;
    const b = t.out.best;
    if (
      b.epoch !== max.epoch ||
      b.ema === null ||
      !close(b.ema, max.ema) ||
      b.dice === null ||
      !close(b.dice, max.dice)
    )
      problems.push({
        what: `${t.stage} claims best epoch ${b.epoch} (ema ${b.ema}) but its trace peaks at epoch ${max.epoch} (ema ${max.ema})`,
        where: `${out}#/best`,
      });
    if (t.out.training_best === null || !close(t.out.training_best, max.ema))
      problems.push({
        what: `${t.stage} training_best ${t.out.training_best} is not the trace maximum ${max.ema}`,
        where: `${out}#/training_best`,
      });
    if (trace.best && trace.best.epoch !== max.epoch)
      problems.push({
        what: `${traceRel} names epoch ${trace.best.epoch} best, its own validations say ${max.epoch}`,
        where: `${traceRel}#/best`,
      });
    const rel = ckptRel(t, "best");
    const w = cache.get(rel);
    if (w instanceof Error) problems.push({ what: w.message, where: rel });
    else if (Number(w.file.metadata.epoch) !== max.epoch)
      problems.push({
        what: `${rel} holds epoch ${w.file.metadata.epoch}'s weights, the trace's best is epoch ${max.epoch}`,
        where: rel,
      });
  }
  if (n === 0 && problems.length === 0 && skips.length === 0)
    return {
      id: "checkpoint.best-of-trace",
      verdict: "skipped",
      message: "no training stage with validation",
      evidence: [],
    };
  return verdictOf(
    "checkpoint.best-of-trace",
    problems,
    `${n} stage(s): the recommended checkpoint is the trace's best EMA epoch`,
    ctx.train.map((t) => `${t.dir}/trace.json`),
    skips,
  );
}

/**
 * best and last differ from the recorded initial weights (the init digest of output.json and of
 * the checkpoints' metadata, which must agree); every digest the stage claims is the recomputed
 * one; the package's weights are tensor for tensor the best checkpoint's.
 */
export function checkNotInitial(ctx: RunContext, cache: WeightsCache): CheckResult {
  if (ctx.train.length === 0)
    return { id: "checkpoint.not-initial", verdict: "skipped", message: "no training stage", evidence: [] };
  const problems: Problem[] = [];
  const skips: Skip[] = [];
  for (const t of ctx.train) {
    const out = `${t.dir}/output.json`;
    const blocked = ctx.taint.blocking([
      `${out}#/init_digest`,
      `${out}#/checkpoints`,
      `${out}#/best_digest`,
      `${out}#/final_digest`,
      `${out}#/model`,
      ckptRel(t, "best"),
      ckptRel(t, "last"),
      packageRel(t),
    ]);
    if (blocked) {
      skips.push({ what: `${t.stage}'s weights`, blocked });
      continue;
    }
    const init = t.out.init_digest;
    const loaded: Record<string, Weights> = {};
    for (const kind of ["best", "last"]) {
      const rel = ckptRel(t, kind);
      const w = cache.get(rel);
      if (w instanceof Error) {
        problems.push({ what: w.message, where: rel });
        continue;
      }
      loaded[kind] = w;
      if (w.file.metadata.init_digest !== init)
        problems.push({
          what: `${rel} records init ${w.file.metadata.init_digest}, output.json ${init}`,
          where: rel,
        });
      if (w.digest === init)
        problems.push({ what: `${rel} is tensor-identical to the initial weights`, where: rel });
      if (t.out.checkpoints?.[kind]?.digest !== w.digest)
        problems.push({
          what: `${t.stage} claims a ${kind} digest its file does not have`,
          where: `${out}#/checkpoints/${kind}`,
        });
    }
    const best = loaded.best;
    const last = loaded.last;
    if (best && t.out.best_digest !== best.digest)
      problems.push({
        what: `${t.stage} best_digest is not best.safetensors'`,
        where: `${out}#/best_digest`,
      });
    if (last && t.out.final_digest !== last.digest)
      problems.push({
        what: `${t.stage} final_digest is not last.safetensors'`,
        where: `${out}#/final_digest`,
      });
    const pkgRel = packageRel(t);
    const pkg = cache.get(pkgRel);
    if (pkg instanceof Error) problems.push({ what: pkg.message, where: pkgRel });
    else if (best) {
      const names = new Set([...Object.keys(pkg.digests), ...Object.keys(best.digests)]);
      const differ = [...names].filter((k) => pkg.digests[k] !== best.digests[k]);
      if (differ.length)
        problems.push({
          what: `${pkgRel} differs from the best checkpoint in ${differ.length} tensor(s), e.g. ${differ[0]}`,
          where: pkgRel,
        });
      if (t.out.model?.weights_digest !== pkg.digest)
        problems.push({
          what: `${t.stage} model.weights_digest is not the package's`,
          where: `${out}#/model`,
        });
    }
  }
  return verdictOf(
    "checkpoint.not-initial",
    problems,
    `${ctx.train.length} stage(s): best and last moved from their init; claimed digests recompute; packages hold the best weights`,
    ctx.train.map((t) => ckptRel(t, "best")),
    skips,
  );
}
