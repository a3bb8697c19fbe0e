// finetune.claims: what a finetune stage says about its checkpoints, recomputed from the files.
// The fine-tuned checkpoint is compared with the pretrained weights tensor by tensor (digests of
// dtype, shape and bytes, never file bytes); a stage fails when that comparison disagrees with its
// claim, when it claims an improvement (improved, or recommends the fine-tuned checkpoint) with
// weights equal to the pretrained ones — the checkpoint trap —, when its recommendation
// contradicts its own formal Dice (fine-tuned only when it beats the pretrained by more than the
// margin), when its training-best is not the maximum of its own validation trace, or when a
// formal Dice differs from the one recomputed from the saved prediction and the original label
// (remapped with the stage's label_mapping).
import { dirname, isAbsolute, join, relative } from "node:path";
import type { Evidence } from "../evidence/evidence.js";
import { parseSafetensors, tensorDigests } from "../evidence/safetensors.js";
import { close, verdictOf } from "./context.js";
import type { PackageCandidate } from "./model.js";
import type { Pack } from "./pack.js";
import { parseLabelMap } from "./readers.js";
import type { CheckResult } from "./types.js";

/** The finetune skill's margin (src/finetune/decide.ts); restated here: the verifier imports no skill code. */
const MARGIN = 1e-3;
const FINISHED = new Set(["succeeded", "cached"]);

interface FinetuneOutput {
  pretrained_ckpt: string;
  finetuned_package?: string;
  pretrained_ckpt_in_run?: string | null;
  finetuned_ckpt: string;
  recommended_ckpt: string;
  finetuned_ckpt_matches_pretrained_weights: boolean;
  improved: boolean;
  formal_pretrained_val_dice: number | null;
  formal_finetuned_val_dice: number | null;
  val_dice_per_epoch: { epoch: number; dice: number }[];
  training_best_val_dice: number | null;
  best_epoch_index: number;
  label_mapping: [number, number][];
  formal: { pretrained: FormalJson | null; finetuned: FormalJson | null };
}

interface FormalJson {
  mean_dice: number | null;
  cases: {
    id: string;
    dice: Record<string, number | null>;
    mean_dice: number | null;
    prediction: string;
    label: string;
    /** The image file(s) predicted (absent in runs made before it was recorded). */
    image?: string[];
  }[];
  package: string;
}

/** Dice of class k on two label maps of the same grid; null when k is in neither. */
function dice(
  pred: ArrayLike<number>,
  ref: ArrayLike<number>,
  lut: Map<number, number>,
  k: number,
): number | null {
  let tp = 0;
  let np = 0;
  let nr = 0;
  for (let i = 0; i < pred.length; i++) {
    const p = pred[i] === k;
    const r = (lut.get(ref[i] as number) ?? 0) === k;
    if (p) np++;
    if (r) nr++;
    if (p && r) tp++;
  }
  return np + nr === 0 ? null : (2 * tp) / (np + nr);
}

const same = (a: number | null, b: number | null) => (a === null || b === null ? a === b : close(a, b));
const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

/** Every formal case's Dice recomputed from its prediction file and its original label. */
function formalProblems(
  pack: Pack,
  o: FinetuneOutput,
  dir: string,
  rel: string,
): { what: string; where: string }[] {
  const problems: { what: string; where: string }[] = [];
  const lut = new Map(o.label_mapping.map(([local, cls]) => [local, cls]));
  for (const which of ["pretrained", "finetuned"] as const) {
    const f = o.formal[which];
    const claimed = which === "pretrained" ? o.formal_pretrained_val_dice : o.formal_finetuned_val_dice;
    if (!f) {
      if (claimed !== null)
        problems.push({
          what: `${dir}: formal_${which}_val_dice ${claimed} without formal cases`,
          where: rel,
        });
      continue;
    }
    const means: number[] = [];
    for (const c of f.cases) {
      const pred = parseLabelMap(pack.bytes(`${dir}/${c.prediction}`), `${dir}/${c.prediction}`);
      const ref = parseLabelMap(pack.external(c.label), c.label);
      if (ref.data.length !== pred.data.length) {
        problems.push({
          what: `${dir}: ${c.prediction} and ${c.label} differ in size`,
          where: `${dir}/${c.prediction}`,
        });
        continue;
      }
      const values: number[] = [];
      for (const [k, d] of Object.entries(c.dice)) {
        const got = dice(pred.data, ref.data, lut, Number(k));
        if (got !== null) values.push(got);
        if (!same(got, d))
          problems.push({
            what: `${dir}: ${which} case ${c.id} class ${k}: Dice ${d} claimed, ${got} recomputed`,
            where: `${rel}#/formal/${which}`,
          });
      }
      const m = mean(values);
      if (m !== null) means.push(m);
    }
    const m = mean(means);
    if (!same(m, f.mean_dice) || !same(m, claimed))
      problems.push({
        what: `${dir}: formal_${which}_val_dice ${claimed} claimed, ${m} recomputed`,
        where: `${rel}#/formal_${which}_val_dice`,
      });
  }
  return problems;
}

function digestsOf(pack: Pack, path: string, stageDir: string): Record<string, string> {
  // A path inside the run is read through the pack; one outside it (a package the user brought)
  // is read and hashed as an external file the evidence names.
  const rel = isAbsolute(path) ? relative(pack.dir, path) : `${stageDir}/${path}`;
  const inside = !rel.startsWith("..") && !isAbsolute(rel);
  const bytes = inside ? pack.bytes(rel) : pack.external(path);
  return tensorDigests(parseSafetensors(bytes, inside ? rel : path));
}

/**
 * The finetune checks of a run: none when it has no finetune stage (so runs without one list
 * the same checks as before), else finetune.claims; malformed evidence fails it with the reason.
 */
export function finetuneChecks(pack: Pack, evidence: Evidence): CheckResult[] {
  const stages = Object.values(evidence.stages)
    .filter((s) => s.skill === "finetune" && FINISHED.has(s.status))
    .map((s) => s.stage);
  if (stages.length === 0) return [];
  try {
    return [checkFinetune(pack, stages)];
  } catch (err) {
    return [{ id: "finetune.claims", verdict: "fail", message: (err as Error).message, evidence: [] }];
  }
}

function checkFinetune(pack: Pack, stageIds: string[]): CheckResult {
  const id = "finetune.claims";
  const stages = stageIds.map((stage) => ({ stage }));
  const problems: { what: string; where: string }[] = [];
  for (const s of stages) {
    const dir = `stages/${s.stage}`;
    const rel = `${dir}/output.json`;
    const o = pack.json<FinetuneOutput>(rel);
    // Made in this run: read where it lies in the run (which may have moved since).
    const pre = o.pretrained_ckpt_in_run
      ? tensorDigests(parseSafetensors(pack.bytes(o.pretrained_ckpt_in_run), o.pretrained_ckpt_in_run))
      : digestsOf(pack, o.pretrained_ckpt, dir);
    const ft = digestsOf(pack, o.finetuned_ckpt, dir);
    const names = new Set([...Object.keys(pre), ...Object.keys(ft)]);
    const identical = [...names].every((n) => pre[n] !== undefined && pre[n] === ft[n]);
    if (identical !== o.finetuned_ckpt_matches_pretrained_weights)
      problems.push({
        what: `${s.stage}: finetuned_ckpt_matches_pretrained_weights is ${o.finetuned_ckpt_matches_pretrained_weights}, the tensors say ${identical}`,
        where: `${rel}#/finetuned_ckpt_matches_pretrained_weights`,
      });
    // The package's weights are the fine-tuned checkpoint's: what its formal evaluation and any
    // later use run (checkpoint.onnx-weights links its model.onnx to these weights).
    const inPackage = `${(o.finetuned_package ?? "model/").replace(/\/?$/, "/")}weights.safetensors`;
    const packageRel = `${dir}/${inPackage}`;
    const packaged = digestsOf(pack, inPackage, dir);
    const packNames = new Set([...Object.keys(packaged), ...Object.keys(ft)]);
    const differ = [...packNames].filter((n) => packaged[n] !== ft[n]);
    if (differ.length)
      problems.push({
        what: `${s.stage}: ${packageRel} differs from the fine-tuned checkpoint in ${differ.length} tensor(s), e.g. ${differ[0]}`,
        where: packageRel,
      });
    const recommendsFinetuned = o.recommended_ckpt === o.finetuned_ckpt;
    if (identical && (o.improved || recommendsFinetuned))
      problems.push({
        what: `${s.stage}: claims an improvement with a fine-tuned checkpoint whose every tensor equals the pretrained weights (checkpoint trap)`,
        where: `${rel}#/improved`,
      });
    if (!recommendsFinetuned && o.recommended_ckpt !== o.pretrained_ckpt)
      problems.push({
        what: `${s.stage}: recommended_ckpt ${o.recommended_ckpt} is neither the fine-tuned nor the pretrained checkpoint`,
        where: `${rel}#/recommended_ckpt`,
      });
    const a = o.formal_pretrained_val_dice;
    const b = o.formal_finetuned_val_dice;
    if (a !== null && b !== null) {
      const shouldRecommend = b - a > MARGIN && !identical;
      if (shouldRecommend !== recommendsFinetuned || o.improved !== shouldRecommend)
        problems.push({
          what: `${s.stage}: formal Dice ${b} (fine-tuned) vs ${a} (pretrained) means recommending the ${shouldRecommend ? "fine-tuned" : "pretrained"} checkpoint, improved ${shouldRecommend}; the output recommends ${recommendsFinetuned ? "the fine-tuned" : "the pretrained"}, improved ${o.improved}`,
          where: `${rel}#/recommended_ckpt`,
        });
    }
    problems.push(...formalProblems(pack, o, dir, rel));
    const trace = o.val_dice_per_epoch;
    if (trace.length) {
      let best = trace[0] as { epoch: number; dice: number };
      for (const v of trace) if (v.dice > best.dice) best = v;
      if (
        o.training_best_val_dice === null ||
        !close(best.dice, o.training_best_val_dice) ||
        best.epoch !== o.best_epoch_index
      )
        problems.push({
          what: `${s.stage}: training best ${o.training_best_val_dice} at epoch ${o.best_epoch_index}, but the trace's maximum is ${best.dice} at epoch ${best.epoch}`,
          where: `${rel}#/training_best_val_dice`,
        });
    }
  }
  return verdictOf(
    id,
    problems,
    `${stages.length} finetune stage(s): tensor comparison, recommendation, training-best and formal Dice agree with the files`,
    stages.map((s) => `stages/${s.stage}/output.json`),
  );
}

/** Every formal case of every finished finetune stage that records its image files. */
export function formalCandidates(pack: Pack, evidence: Evidence): PackageCandidate[] {
  const out: PackageCandidate[] = [];
  for (const s of Object.values(evidence.stages)) {
    if (s.skill !== "finetune" || !FINISHED.has(s.status)) continue;
    const dir = `stages/${s.stage}`;
    let o: FinetuneOutput;
    try {
      o = pack.json<FinetuneOutput>(`${dir}/output.json`);
    } catch {
      continue; // finetune.claims says why
    }
    for (const which of ["pretrained", "finetuned"] as const) {
      const f = o.formal?.[which];
      if (!f) continue;
      // Read where it lies in this run when it was made here (the run may have moved since).
      const packagePath =
        which === "finetuned"
          ? join(pack.dir, dir, o.finetuned_package ?? "model")
          : o.pretrained_ckpt_in_run
            ? join(pack.dir, dirname(o.pretrained_ckpt_in_run))
            : f.package;
      f.cases.forEach((c, i) => {
        if (c.image?.length)
          out.push({
            stage: s.stage,
            role: which,
            id: c.id,
            packagePath,
            images: c.image,
            predictionRel: `${dir}/${c.prediction}`,
            pointer: `${dir}/output.json#/formal/${which}/cases/${i}`,
            claim: "the formal Dice was computed on a prediction the package did not make",
          });
      });
    }
  }
  return out;
}
