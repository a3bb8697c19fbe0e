// One finetune stage: check everything (package, mapping, split, every volume) before training;
// preprocess with the package's plan; formal evaluation of the pretrained package; training from
// the pretrained weights (medpipe.train: init_checkpoint, val_at_start, selection by raw Dice);
// a package of the selected checkpoint (medpipe.package); its formal evaluation; the tensor
// comparison with the pretrained weights; the recommendation. Returns the output.json payload.
import { existsSync } from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import { isAbsolute, join, relative, resolve } from "node:path";
import { type PyEvent, PythonError, packageModel, runPythonModule } from "../cvtrain/python.js";
import { readSafetensors } from "../evidence/safetensors.js";
import {
  type BackendName,
  type BackendOptions,
  InferError,
  type ModelPackage,
  readModelPackage,
} from "../infer/index.js";
import { patchProblem } from "../plan/network.js";
import type { JsonObject } from "../plan/types.js";
import { detectGpus } from "../run/gpus.js";
import { auditDataset, type DatasetAudit } from "./audit.js";
import { decide } from "./decide.js";
import { FinetuneInputError, FinetuneOomError } from "./errors.js";
import { type FormalResult, formalEvaluation } from "./formal.js";
import { checkImageKind, loadSplit, type Mapping, resolveMapping } from "./inputs.js";
import { prepareCases } from "./prepare.js";
import { compareWeights } from "./weights.js";

export interface FinetuneOptions {
  pretrained: string;
  datasetDir?: string;
  datalist?: string;
  labelMapping?: Mapping;
  targetAnatomy?: string;
  epochs: number;
  /** Default: the package plan's learning rate / 10. */
  learningRate?: number;
  /** Training patch; default the package plan's (inference always uses the plan's). */
  patchSize?: number[];
  valAtStart: boolean;
  skipFormalEval: boolean;
  device: "auto" | "cpu" | "cuda";
  /** What runs the formal evaluations; auto: torch when training has a GPU, else onnxruntime. */
  formalBackend?: "auto" | BackendName;
  seed: number;
  samplesPerVolume?: number;
  /** NPROC_PER_NODE: 2 or more trains data-parallel under torchrun (default 1). */
  nprocPerNode?: string;
  outputDir: string;
  progress?: (event: Record<string, unknown>) => void;
}

/** plan.json fields training reads (schemas/plan.schema.json). */
interface TrainingPlan {
  spatial_dims: number;
  patch_size: number[];
  dataset: { labels: Record<string, string> };
  loss: Record<string, unknown>;
  optimizer: Record<string, unknown> & { lr?: number };
  schedule: Record<string, unknown>;
  batch_size: number;
  samples_per_volume: number;
  sampler: { name: string; probabilities?: number[] | null };
  augment: Record<string, unknown>[];
  inference: { overlap: number; mode: string; sw_batch_size?: number };
}

interface TrainResult {
  status: string;
  message?: string;
  hint?: string;
  best_epoch: number;
  best_dice: number | null;
  init_digest: string;
  best_digest: string;
  last_digest: string;
  world_size: number;
  device: string;
  torch: string;
  peak_gpu_mb: number | null;
  peak_rss_mb: number;
  timings: Record<string, number>;
}

interface Trace {
  epochs: { epoch: number; loss: number; lr: number; seconds: number }[];
  validations: { epoch: number; dice: number }[];
}

/**
 * torchrun's default --redirects 0 fails on torch 1.13 with Python 3.11 (Std("0") is not among
 * the IntFlag members); workers' stderr goes to a log file and is teed to ours instead.
 */
const TORCHRUN_IO = ["--redirects", "2", "--tee", "2"];

/** NPROC_PER_NODE as a count of training processes (unset or empty: 1). */
export function processesPerNode(value: string | undefined): number {
  if (value === undefined || value.trim() === "") return 1;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new FinetuneInputError(`NPROC_PER_NODE ${JSON.stringify(value)}: expected an integer >= 1`);
  return n;
}

/** One process, or torchrun with n data-parallel processes (medpipe.train's docstring); torchrun's worker logs go to logDir. */
function trainerLaunch(n: number, logDir: string): { module: string; args: string[] } {
  if (n < 2) return { module: "medpipe.train", args: [] };
  return {
    module: "torch.distributed.run",
    args: [
      "--standalone",
      "--nproc_per_node",
      String(n),
      ...TORCHRUN_IO,
      "--log_dir",
      logDir,
      "-m",
      "medpipe.train",
    ],
  };
}

/**
 * A path inside this stage's run folder, relative to it (MEDPIPE_RUN_DIR, set by the engine), so
 * that the verifier finds the pretrained weights of a run that was moved or copied; else null.
 */
function inRun(path: string): string | null {
  const run = process.env.MEDPIPE_RUN_DIR;
  if (!run) return null;
  const rel = relative(resolve(run), path);
  return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : null;
}

const readJson = async <T>(path: string): Promise<T> => JSON.parse(await readFile(path, "utf8")) as T;
const since = (t: number) => (performance.now() - t) / 1000;

async function openPackage(
  dir: string,
): Promise<{ pkg: ModelPackage; weights: string; architecture: unknown }> {
  let pkg: ModelPackage;
  try {
    pkg = await readModelPackage(dir);
  } catch (err) {
    if (err instanceof InferError) throw new FinetuneInputError(`pretrained: ${err.message}`);
    throw err;
  }
  const weights = join(pkg.dir, "weights.safetensors");
  if (!existsSync(weights))
    throw new FinetuneInputError(`${weights}: missing: the pretrained package has no weights.safetensors`);
  const meta = readSafetensors(weights).metadata;
  if (!meta.architecture)
    throw new FinetuneInputError(`${weights}: no "architecture" metadata; not a medpipe checkpoint`);
  return { pkg, weights, architecture: JSON.parse(meta.architecture) };
}

export async function runFinetune(
  o: FinetuneOptions,
): Promise<{ payload: Record<string, unknown>; roles: Record<string, string>; peakGpuMb: number | null }> {
  const t0 = performance.now();
  const progress = o.progress ?? (() => {});
  const nproc = processesPerNode(o.nprocPerNode);
  const out = resolve(o.outputDir);
  const phases: Record<string, number> = {};

  // ---- inputs: every check before anything is trained
  let t = performance.now();
  const { pkg, weights: pretrainedCkpt, architecture } = await openPackage(o.pretrained);
  const plan = await readJson<TrainingPlan>(pkg.planPath);
  const { mapping, source: mappingSource } = resolveMapping(
    plan.dataset.labels,
    o.labelMapping,
    o.targetAnatomy,
  );
  const split = await loadSplit(o.datasetDir, o.datalist);
  checkImageKind(split, plan.spatial_dims);
  const patch = o.patchSize ?? plan.patch_size;
  if (patch.length !== plan.spatial_dims)
    throw new FinetuneInputError(
      `patch_size [${patch}] has ${patch.length} axes; the model is ${plan.spatial_dims}D`,
    );
  const misfit =
    typeof architecture === "object" && architecture !== null
      ? patchProblem(patch, architecture as JsonObject)
      : null;
  if (misfit) throw new FinetuneInputError(misfit);
  const audit: DatasetAudit = await auditDataset(split, mapping);
  phases.audit_s = since(t);
  progress({ event: "audit", phase: "audit", cases: audit.cases.length, orientations: audit.orientations });

  t = performance.now();
  const dataDir = join(out, "data");
  const train = await prepareCases(split.train, pkg.plan, mapping, dataDir);
  const val = await prepareCases(split.val, pkg.plan, mapping, dataDir);
  phases.preprocess_s = since(t);

  // ---- formal evaluation of the pretrained package
  const formal = formalBackend(o.formalBackend ?? "auto", o.device);
  let formalPre: FormalResult | null = null;
  if (!o.skipFormalEval) {
    t = performance.now();
    formalPre = await formalEvaluation(
      pkg.dir,
      split.val,
      mapping,
      join(out, "predictions", "pretrained"),
      (id, dice) => progress({ event: "case", phase: "formal-pretrained", id, dice }),
      formal,
    );
    phases.formal_pretrained_s = since(t);
  }

  // ---- training from the pretrained weights
  t = performance.now();
  const lr = o.learningRate ?? (plan.optimizer.lr ?? 1e-3) / 10;
  const config = {
    network: architecture,
    loss: plan.loss,
    train_cases: train.map((c) => ({ id: c.id, image: c.image, label: c.label })),
    val_cases: val.map((c) => ({ id: c.id, image: c.image, label: c.label })),
    patch_size: patch,
    batch_size: plan.batch_size,
    samples_per_volume: o.samplesPerVolume ?? plan.samples_per_volume,
    sampler: { name: plan.sampler.name, probabilities: plan.sampler.probabilities ?? null },
    augment: plan.augment,
    optimizer: { ...plan.optimizer, lr },
    schedule: plan.schedule,
    epochs: o.epochs,
    val_every: 1,
    ema: 0, // the best checkpoint by the raw validation Dice (the reference's rule)
    // Whole validation volumes, as the reference's finetuning validates, whatever the package's
    // plan trained with: its training-time Dice sits beside the formal evaluation's per volume.
    validate_on: "volumes",
    inference: {
      overlap: plan.inference.overlap,
      mode: plan.inference.mode,
      sw_batch_size: plan.inference.sw_batch_size ?? 4,
      tta: false,
    },
    seed: o.seed,
    device: o.device,
    init_checkpoint: pretrainedCkpt,
    val_at_start: o.valAtStart,
    metadata: { role: "finetune", pretrained_package: pkg.digest.package, plan_sha256: pkg.digest.plan_json },
  };
  const configPath = join(out, "train_config.json");
  await writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`);
  const forward = (phase: string) => (e: PyEvent) => progress({ ...e, phase });
  // Worker logs beside the stage's own (logs/ is not an artifact).
  const launch = trainerLaunch(nproc, join(out, "logs", "torchrun"));
  try {
    await runPythonModule(
      launch.module,
      [...launch.args, "--config", configPath, "--output-dir", out],
      forward("train"),
    );
  } catch (err) {
    // torchrun exits 1 whatever its worker's code was: rank 0's result.json tells an OOM apart.
    const r =
      err instanceof PythonError
        ? await readJson<TrainResult>(join(out, "result.json")).catch(() => null)
        : null;
    if (r?.status === "oom") {
      // No checkpoint is claimed: an epoch-0 best written before the OOM must not look like a result.
      await rm(join(out, "checkpoints"), { recursive: true, force: true });
      throw new FinetuneOomError(
        r?.message ?? "out of memory",
        r?.hint ?? "reduce patch_size or batch_size",
        r?.peak_gpu_mb ?? null,
      );
    }
    throw err;
  }
  const result = await readJson<TrainResult>(join(out, "result.json"));
  await rm(join(out, "result.json"));
  await writeFile(join(out, "train_result.json"), `${JSON.stringify(result, null, 2)}\n`);
  const trace = await readJson<Trace>(join(out, "trace.json"));
  phases.train_s = since(t);

  // ---- the selected checkpoint as a package (the pretrained plan, byte for byte), evaluated
  t = performance.now();
  const finetunedCkpt = "checkpoints/best.safetensors";
  await packageModel(
    join(out, finetunedCkpt),
    pkg.planPath,
    join(out, "model"),
    {
      finetuned_from: {
        package: pkg.dir,
        package_digest: pkg.digest.package,
        weights_digest: result.init_digest,
      },
      training: {
        epochs: o.epochs,
        learning_rate: lr,
        best_epoch: result.best_epoch,
        best_dice: result.best_dice,
      },
    },
    forward("package"),
  );
  phases.package_s = since(t);
  let formalFt: FormalResult | null = null;
  if (!o.skipFormalEval) {
    t = performance.now();
    formalFt = await formalEvaluation(
      join(out, "model"),
      split.val,
      mapping,
      join(out, "predictions", "finetuned"),
      (id, dice) => progress({ event: "case", phase: "formal-finetuned", id, dice }),
      formal,
    );
    phases.formal_finetuned_s = since(t);
  }

  // ---- the trap check and the recommendation
  const cmp = compareWeights(pretrainedCkpt, join(out, finetunedCkpt));
  const start = trace.validations.find((v) => v.epoch === 0) ?? null;
  const decision = decide({
    weightsMatch: cmp.identical,
    formalPretrained: formalPre?.mean_dice ?? null,
    formalFinetuned: formalFt?.mean_dice ?? null,
    trainingStart: start?.dice ?? null,
    trainingBest: result.best_dice,
  });
  const losses = trace.epochs.map((e) => e.loss);
  phases.total_s = since(t0);

  const formalJson = (f: FormalResult | null, dir: string) =>
    f && {
      package: f.package,
      package_digest: f.package_digest,
      mean_dice: f.mean_dice,
      cases: f.cases.map((c) => ({ ...c, prediction: `predictions/${dir}/${c.prediction}` })),
      backend: f.backend,
      device: f.device,
      seconds: f.seconds,
    };
  const payload = {
    pretrained_package: pkg.dir,
    pretrained_ckpt: pretrainedCkpt,
    pretrained_ckpt_in_run: inRun(pretrainedCkpt),
    finetuned_ckpt: finetunedCkpt,
    finetuned_package: "model/",
    recommended_ckpt: decision.recommend === "finetuned" ? finetunedCkpt : pretrainedCkpt,
    recommended_package: decision.recommend === "finetuned" ? "model/" : pkg.dir,
    recommendation: {
      choice: decision.recommend,
      basis: decision.basis,
      reason: decision.reason,
      margin: 1e-3,
    },
    finetuned_ckpt_matches_pretrained_weights: cmp.identical,
    weights_comparison: cmp,
    improved: decision.improved,
    regressed: decision.regressed,
    formal_pretrained_val_dice: formalPre?.mean_dice ?? null,
    formal_finetuned_val_dice: formalFt?.mean_dice ?? null,
    formal: { pretrained: formalJson(formalPre, "pretrained"), finetuned: formalJson(formalFt, "finetuned") },
    training_start_val_dice: start?.dice ?? null,
    val_dice_per_epoch: trace.validations.map((v) => ({ epoch: v.epoch, dice: v.dice })),
    training_best_val_dice: result.best_dice,
    best_epoch_index: result.best_epoch,
    train_loss_first: losses[0] ?? null,
    train_loss_last: losses[losses.length - 1] ?? null,
    train_loss_finite: losses.every((l) => Number.isFinite(l)),
    label_mapping: mapping,
    label_mapping_source: mappingSource,
    split: { source: split.source, train: split.train.map((c) => c.id), val: split.val.map((c) => c.id) },
    training: {
      epochs: o.epochs,
      learning_rate: lr,
      patch_size: patch,
      val_at_start: o.valAtStart,
      selection: "raw validation Dice (ema 0), first on ties",
      world_size: result.world_size,
      device: result.device,
      torch: result.torch,
      init_digest: result.init_digest,
      best_digest: result.best_digest,
      last_digest: result.last_digest,
      trace: "trace.json",
    },
    audit,
    timings: phases,
    peak_memory: { train_rss_mb: result.peak_rss_mb, train_gpu_mb: result.peak_gpu_mb },
  };
  const roles: Record<string, string> = {
    "trace.json": "trace",
    "train_result.json": "train-result",
    "train_config.json": "train-config",
    "checkpoints/best.safetensors": "checkpoint",
    "checkpoints/last.safetensors": "checkpoint",
    "model/model.onnx": "model",
    "model/weights.safetensors": "model",
    "model/plan.json": "model",
    "model/model_card.json": "model",
  };
  for (const [f, dir] of [
    [formalPre, "pretrained"],
    [formalFt, "finetuned"],
  ] as const)
    for (const c of f?.cases ?? []) roles[`predictions/${dir}/${c.prediction}`] = "prediction";
  return { payload, roles, peakGpuMb: result.peak_gpu_mb };
}

/**
 * Where the formal evaluations run. On a GPU machine onnxruntime's CPU sliding window (with the
 * plan's TTA) would take most of a finetune; torch on the GPU training uses is the same
 * computation (the infer skill's two backends agree within 1e-3 in probability).
 */
function formalBackend(choice: "auto" | BackendName, device: FinetuneOptions["device"]): BackendOptions {
  if (choice === "onnxruntime") return { backend: "onnxruntime" };
  if (choice === "torch") return { backend: "torch", device };
  const gpu = device === "cuda" || (device === "auto" && detectGpus().length > 0);
  return gpu ? { backend: "torch", device: "cuda" } : { backend: "onnxruntime" };
}
