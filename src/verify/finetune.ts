// finetune.claims: what a finetune stage says about its checkpoints, recomputed from the files.
// The fine-tuned checkpoint is compared with the pretrained weights tensor by tensor (digests of
// dtype, shape and bytes, never file bytes); a stage fails when that comparison disagrees with its
// claim, when it claims an improvement (improved, or recommends the fine-tuned checkpoint) with
// weights equal to the pretrained ones — the checkpoint trap —, when its recommendation
// contradicts its own formal Dice (fine-tuned only when it beats the pretrained by more than the
// margin), or when its training-best is not the maximum of its own validation trace.
import { isAbsolute, relative } from "node:path";
import type { Evidence } from "../evidence/evidence.js";
import { parseSafetensors, tensorDigests } from "../evidence/safetensors.js";
import { close, verdictOf } from "./context.js";
import type { Pack } from "./pack.js";
import type { CheckResult } from "./types.js";

/** The finetune skill's margin (src/finetune/decide.ts); restated here: the verifier imports no skill code. */
const MARGIN = 1e-3;
const FINISHED = new Set(["succeeded", "cached"]);

interface FinetuneOutput {
  pretrained_ckpt: string;
  finetuned_ckpt: string;
  recommended_ckpt: string;
  finetuned_ckpt_matches_pretrained_weights: boolean;
  improved: boolean;
  formal_pretrained_val_dice: number | null;
  formal_finetuned_val_dice: number | null;
  val_dice_per_epoch: { epoch: number; dice: number }[];
  training_best_val_dice: number | null;
  best_epoch_index: number;
}

function digestsOf(pack: Pack, path: string, stageDir: string): Record<string, string> {
  // A path inside the run is read through the pack; one outside it (a package the user brought)
  // is read and hashed as an external file the evidence names.
  const rel = isAbsolute(path) ? relative(pack.dir, path) : `${stageDir}/${path}`;
  const inside = !rel.startsWith("..") && !isAbsolute(rel);
  const bytes = inside ? pack.bytes(rel) : pack.external(path);
  return tensorDigests(parseSafetensors(bytes, inside ? rel : path));
}

export function checkFinetune(pack: Pack, evidence: Evidence): CheckResult {
  const id = "finetune.claims";
  const stages = Object.values(evidence.stages).filter(
    (s) => s.skill === "finetune" && FINISHED.has(s.status),
  );
  if (stages.length === 0)
    return { id, verdict: "skipped", message: "no finetune stage in this run", evidence: [] };
  const problems: { what: string; where: string }[] = [];
  for (const s of stages) {
    const dir = `stages/${s.stage}`;
    const rel = `${dir}/output.json`;
    const o = pack.json<FinetuneOutput>(rel);
    const pre = digestsOf(pack, o.pretrained_ckpt, dir);
    const ft = digestsOf(pack, o.finetuned_ckpt, dir);
    const names = new Set([...Object.keys(pre), ...Object.keys(ft)]);
    const identical = [...names].every((n) => pre[n] !== undefined && pre[n] === ft[n]);
    if (identical !== o.finetuned_ckpt_matches_pretrained_weights)
      problems.push({
        what: `${s.stage}: finetuned_ckpt_matches_pretrained_weights is ${o.finetuned_ckpt_matches_pretrained_weights}, the tensors say ${identical}`,
        where: `${rel}#/finetuned_ckpt_matches_pretrained_weights`,
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
    `${stages.length} finetune stage(s): tensor comparison, recommendation and training-best agree with the files`,
    stages.map((s) => `stages/${s.stage}/output.json`),
  );
}
