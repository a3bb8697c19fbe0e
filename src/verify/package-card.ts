// package.card: a package the run made says what the run did. The package is what a user
// deploys and reads: infer preprocesses with its plan.json, and its model_card.json is where a
// reader finds the model's held-out metrics. So:
// - plan.json is the plan the model was trained with: for a cv-train package, the run's plan with
//   the stage's plan_overrides applied (as cv-train applies them, restated here: the verifier
//   imports no skill code); for a fine-tuned package, the pretrained package's plan.json byte for
//   byte (both formal evaluations ran with it);
// - model_card.json: the sha256 of each file it lists is the file's; plan_sha256 is plan.json's;
//   weights_digest and the checkpoint digest are the weights' (recomputed per tensor); the
//   architecture and init digest are the weights' metadata; the plan fields it repeats (labels,
//   patch size, spacing, orientation, normalization, inference) are plan.json's; for a cv-train
//   package, its metrics, fold and held-out cases are the stage's output.json's (which
//   claims.per-case and claims.aggregates vouch for); for a fine-tuned package, the weights it
//   says it was fine-tuned from are the pretrained checkpoint the stage names.

import type { Evidence } from "../evidence/evidence.js";
import { canonicalJson, sha256 } from "../evidence/hash.js";
import { digestOfDigests, parseSafetensors, tensorDigests } from "../evidence/safetensors.js";
import { type PlanJson, type RunContext, verdictOf } from "./context.js";
import type { Pack } from "./pack.js";
import { type RunPackage, runPackages } from "./packages.js";
import type { Skip } from "./taint.js";
import type { CheckResult } from "./types.js";

const ID = "package.card";

interface Card {
  architecture?: unknown;
  labels?: unknown;
  patch_size?: unknown;
  target_spacing?: unknown;
  orientation?: unknown;
  normalization?: unknown;
  inference?: unknown;
  metrics?: unknown;
  fold?: unknown;
  held_out?: unknown;
  provenance?: {
    plan_sha256?: string;
    weights_digest?: string;
    init_digest?: string;
    checkpoint?: { digest?: string };
  };
  files?: Record<string, string>;
  finetuned_from?: { weights_digest?: string };
}

const same = (a: unknown, b: unknown) => canonicalJson(a ?? null) === canonicalJson(b ?? null);

/** The plan as cv-train trains with it: src/cvtrain/config.ts effectivePlan's rule. */
function withOverrides(plan: Record<string, unknown>, ov: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...plan };
  for (const k of ["epochs", "batch_size", "patch_size", "samples_per_volume", "val_every"])
    if (ov[k] !== undefined) out[k] = ov[k];
  if (ov.lr !== undefined) out.optimizer = { ...(plan.optimizer as Record<string, unknown>), lr: ov.lr };
  return out;
}

/**
 * What the package's plan.json should have been, named for the message, when it is not; null when
 * it is, or when the run does not say (then it is not judged).
 */
function expectedPlan(pack: Pack, ctx: RunContext, p: RunPackage, planRaw: Buffer): string | null {
  if (p.skill === "cv-train") {
    // Only the run's plan, and only when it is the one the stage says it trained with.
    if (!ctx.plan || pack.sha256(ctx.plan.rel) !== p.out.plan_sha256) return null;
    const want = withOverrides(ctx.plan.json as Record<string, unknown>, p.out.plan_overrides ?? {});
    return same(JSON.parse(planRaw.toString("utf8")), want) ? null : "the run's plan";
  }
  const from = p.out.pretrained_ckpt_in_run
    ? pack.bytes(`${p.out.pretrained_ckpt_in_run.replace(/[^/]*$/, "")}plan.json`)
    : p.out.pretrained_package
      ? pack.external(`${p.out.pretrained_package.replace(/\/?$/, "/")}plan.json`)
      : null;
  return from === null || from.equals(planRaw) ? null : "the pretrained package's plan.json";
}

type Problem = { what: string; where: string };

function packageProblems(pack: Pack, ctx: RunContext, p: RunPackage): Problem[] {
  const rel = (f: string) => `${p.dir}${f}`;
  const problems: Problem[] = [];
  const cardRel = rel("model_card.json");
  const cardSays = (what: string) => problems.push({ what: `${cardRel}${what}`, where: cardRel });
  const card = pack.json<Card>(rel("model_card.json"));
  const planRaw = pack.bytes(rel("plan.json"));
  const plan = JSON.parse(planRaw.toString("utf8")) as PlanJson & Record<string, unknown>;
  const weights = parseSafetensors(pack.bytes(rel("weights.safetensors")), rel("weights.safetensors"));
  const digest = digestOfDigests(tensorDigests(weights));

  const planFrom = expectedPlan(pack, ctx, p, planRaw);
  if (planFrom)
    problems.push({
      what: `${rel("plan.json")} is not ${planFrom} the model was trained with`,
      where: rel("plan.json"),
    });
  for (const f of ["model.onnx", "weights.safetensors", "plan.json"])
    if (card.files?.[f] !== pack.sha256(rel(f))) cardSays(` gives ${f} a sha256 it does not have`);
  if (card.provenance?.plan_sha256 !== sha256(planRaw)) cardSays(`: plan_sha256 is not plan.json's`);
  if (card.provenance?.weights_digest !== digest || card.provenance?.checkpoint?.digest !== digest)
    cardSays(`: the weights and checkpoint digests are not the weights'`);
  if (card.provenance?.init_digest !== weights.metadata.init_digest)
    cardSays(`: init_digest is not the weights' metadata's`);
  let architecture: unknown = null;
  try {
    architecture = JSON.parse(weights.metadata.architecture ?? "null");
  } catch {
    // compared as null
  }
  if (!same(card.architecture, architecture)) cardSays(`: the architecture is not the weights'`);
  const fromPlan: [keyof Card, unknown][] = [
    ["labels", plan.dataset?.labels ?? {}],
    ["patch_size", plan.patch_size],
    ["target_spacing", plan.target_spacing],
    ["orientation", plan.orientation],
    ["normalization", plan.normalization],
    ["inference", plan.inference],
  ];
  const differ = fromPlan.filter(([k, v]) => !same(card[k], v)).map(([k]) => k);
  if (differ.length) cardSays(`: ${differ.join(", ")} not as in plan.json`);
  if (p.skill === "cv-train") {
    const o = p.out;
    if (!same(card.metrics, o.performance))
      cardSays(`: metrics are not ${p.stage}'s performance in its output.json`);
    if (!same(card.fold, o.fold) || !same(card.held_out, o.val_cases))
      cardSays(`: fold or held-out cases are not ${p.stage}'s`);
  } else {
    const o = p.out;
    const pretrained = o.pretrained_ckpt_in_run
      ? pack.bytes(o.pretrained_ckpt_in_run)
      : o.pretrained_ckpt
        ? pack.external(o.pretrained_ckpt)
        : null;
    const named = o.pretrained_ckpt_in_run ?? o.pretrained_ckpt ?? "";
    const from = pretrained && digestOfDigests(tensorDigests(parseSafetensors(pretrained, named)));
    if (from && card.finetuned_from?.weights_digest !== from)
      cardSays(`: finetuned_from.weights_digest is not the pretrained checkpoint's`);
  }
  return problems;
}

export function checkPackageCards(pack: Pack, ctx: RunContext, evidence: Evidence): CheckResult {
  const packages = runPackages(ctx, evidence, pack);
  if (packages.length === 0)
    return { id: ID, verdict: "skipped", message: "no model package in this run", evidence: [] };
  const problems: { what: string; where: string }[] = [];
  const skips: Skip[] = [];
  for (const p of packages) {
    const files = ["model_card.json", "plan.json", "weights.safetensors", "model.onnx"].map(
      (f) => `${p.dir}${f}`,
    );
    const reads = [p.claim, ...files];
    if (p.skill === "cv-train")
      for (const k of ["performance", "plan_overrides", "fold", "val_cases"])
        reads.push(`${p.stageDir}/output.json#/${k}`);
    else {
      reads.push(
        `${p.stageDir}/output.json#/pretrained_ckpt`,
        `${p.stageDir}/output.json#/pretrained_ckpt_in_run`,
      );
      if (p.out.pretrained_ckpt_in_run) reads.push(p.out.pretrained_ckpt_in_run);
    }
    if (ctx.plan) reads.push(ctx.plan.rel);
    const blocked = ctx.taint.blocking(reads);
    if (blocked) {
      skips.push({ what: `${p.dir}model_card.json`, blocked });
      continue;
    }
    const missing = files.filter((f) => !pack.exists(f));
    if (missing.length) {
      for (const f of missing) problems.push({ what: `${f} is missing`, where: f });
      continue;
    }
    try {
      problems.push(...packageProblems(pack, ctx, p));
    } catch (err) {
      problems.push({ what: (err as Error).message, where: `${p.dir}model_card.json` });
    }
  }
  return verdictOf(
    ID,
    problems,
    `${packages.length} package(s): plan.json is the plan trained with; the model card's files, digests, plan fields and metrics are the run's`,
    packages.map((p) => `${p.dir}model_card.json`),
    skips,
  );
}
