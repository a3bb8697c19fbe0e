// The model packages a run made: each cv-train stage's `model/` and each finetune stage's
// fine-tuned package. The package checks (checkpoint.onnx-weights, package.card) read them.
import type { Evidence } from "../evidence/evidence.js";
import type { CvTrainOutput, RunContext } from "./context.js";
import type { Pack } from "./pack.js";

const FINISHED = new Set(["succeeded", "cached"]);

export interface FinetuneStageOutput {
  finetuned_package?: string;
  pretrained_ckpt?: string;
  pretrained_package?: string;
  pretrained_ckpt_in_run?: string | null;
}

export type RunPackage = {
  stage: string;
  /** The package folder, relative to the run folder, with a trailing slash. */
  dir: string;
  /** Where the stage's output.json names it. */
  claim: string;
} & (
  | { skill: "cv-train"; stageDir: string; out: CvTrainOutput }
  | { skill: "finetune"; stageDir: string; out: FinetuneStageOutput }
);

const folder = (dir: string, path: string | undefined) => `${dir}/${(path ?? "model/").replace(/\/?$/, "/")}`;

export function runPackages(ctx: RunContext, evidence: Evidence, pack: Pack): RunPackage[] {
  const out: RunPackage[] = ctx.train.map((t) => ({
    stage: t.stage,
    dir: folder(t.dir, t.out.model?.path),
    claim: `${t.dir}/output.json#/model`,
    skill: "cv-train",
    stageDir: t.dir,
    out: t.out,
  }));
  for (const s of Object.values(evidence.stages)) {
    if (s.skill !== "finetune" || !FINISHED.has(s.status)) continue;
    const dir = `stages/${s.stage}`;
    const rel = `${dir}/output.json`;
    let o: FinetuneStageOutput = {};
    try {
      o = pack.json<FinetuneStageOutput>(rel);
    } catch {
      // finetune.claims says why; the default folder is still judged
    }
    out.push({
      stage: s.stage,
      dir: folder(dir, o.finetuned_package),
      claim: `${rel}#/finetuned_package`,
      skill: "finetune",
      stageDir: dir,
      out: o,
    });
  }
  return out;
}
