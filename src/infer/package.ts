// A model package (DESIGN.md): a folder with model.onnx, weights.safetensors, plan.json and
// model_card.json. Inference needs model.onnx and plan.json; the plan is validated with the
// same reader preprocess uses, then checked for what inference itself reads.
import { createHash } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { isWeightMode, type WeightMode } from "../inference/index.js";
import { classCount } from "../plan/classes.js";
import { PlanError, readPlan } from "../preprocess/plan.js";
import type { PreprocessPlan } from "../preprocess/types.js";
import { InferError } from "./errors.js";

/** The inference section of plan.json (schemas/plan.schema.json). */
export interface PlanInference {
  overlap: number;
  mode: WeightMode;
  tta: boolean;
  keep_largest_component: boolean;
  sw_batch_size?: number;
  threshold?: number | null;
}

/** The fields of plan.json inference reads: preprocessing's, the patch and the inference section. */
export interface InferencePlan extends PreprocessPlan {
  patch_size: number[];
  inference: PlanInference;
}

export interface ModelPackage {
  /** Absolute folder. */
  dir: string;
  modelPath: string;
  /** The network's weights (the torch backend's model); not checked here, only by that backend. */
  weightsPath: string;
  planPath: string;
  plan: InferencePlan;
  /** Number of classes the plan declares: the largest label index + 1. */
  classes: number;
  /**
   * sha256 of the `sha256sum model.onnx plan.json` listing (run inside the package), so anyone
   * can recompute it with `sha256sum model.onnx plan.json | sha256sum`; and the two file digests.
   */
  digest: { package: string; model_onnx: string; plan_json: string };
}

const sha256 = (bytes: Buffer | string) => createHash("sha256").update(bytes).digest("hex");

/** Reads and checks a model package folder; every failure is an InferError of one line. */
export async function readModelPackage(path: string): Promise<ModelPackage> {
  const dir = resolve(path);
  const info = await stat(dir).catch(() => null);
  if (!info?.isDirectory()) throw new InferError(dir, "not a model package folder (no such folder)");
  const modelPath = join(dir, "model.onnx");
  const planPath = join(dir, "plan.json");
  const modelBytes = await readFile(modelPath).catch(() => null);
  if (!modelBytes) throw new InferError(modelPath, "missing: the model package has no model.onnx");
  if (!(await stat(planPath).catch(() => null))?.isFile())
    throw new InferError(planPath, "missing: the model package has no plan.json");
  let loaded: ReturnType<typeof readPlan>;
  try {
    loaded = readPlan(planPath);
  } catch (err) {
    // readPlan's messages already name the file.
    if (err instanceof PlanError) throw new InferError(planPath, err.message.replace(`${planPath}: `, ""));
    throw err;
  }
  const plan = loaded.plan as InferencePlan;
  checkInferencePlan(plan, planPath);
  const model = sha256(modelBytes);
  const listing = `${model}  model.onnx\n${loaded.sha256}  plan.json\n`;
  const classes = planClasses(plan);
  return {
    dir,
    modelPath,
    weightsPath: join(dir, "weights.safetensors"),
    planPath,
    plan,
    classes,
    digest: { package: sha256(listing), model_onnx: model, plan_json: loaded.sha256 },
  };
}

/** The sliding-window settings of a plan, as both backends run them (sw_batch_size default 1). */
export interface WindowSettings {
  patch: number[];
  overlap: number;
  mode: WeightMode;
  swBatchSize: number;
  tta: boolean;
}

export function windowSettings(plan: InferencePlan): WindowSettings {
  const inf = plan.inference;
  return {
    patch: plan.patch_size,
    overlap: inf.overlap,
    mode: inf.mode,
    swBatchSize: inf.sw_batch_size ?? 1,
    tta: inf.tta,
  };
}

/** Classes a model trained with this plan outputs: the largest label index + 1 (0 is background). */
export function planClasses(plan: PreprocessPlan): number {
  return classCount(plan.dataset.labels);
}

// The schema says each field's type; these are the cross-field rules it cannot say.
function checkInferencePlan(plan: InferencePlan, file: string): void {
  const dims = plan.spatial_dims;
  if (plan.patch_size.length !== dims)
    throw new InferError(file, `patch_size has ${plan.patch_size.length} values, spatial_dims is ${dims}`);
  const inf = plan.inference;
  if (!isWeightMode(inf.mode))
    throw new InferError(file, `inference.mode ${JSON.stringify(inf.mode)} is unknown`);
  if (inf.threshold !== undefined && inf.threshold !== null && !(inf.threshold >= 0 && inf.threshold < 1))
    throw new InferError(file, `inference.threshold must be in [0, 1) or null, got ${inf.threshold}`);
}
