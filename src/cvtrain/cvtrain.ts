// One cv-train stage: train a fold from a fresh init (Python), predict its held-out cases in full
// volume (Python), map them back to each image's native space, post-process, write NIfTI and
// score them (TypeScript), then export the model package (Python). Returns the output.json payload.
import { existsSync } from "node:fs";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { classCount } from "../plan/classes.js";
import { type CaseProperties, readPlan, readProperties } from "../preprocess/index.js";
import {
  CvTrainInputError,
  changedOverrides,
  checkDataMatchesPlan,
  type DataIndex,
  defaultSeed,
  effectivePlan,
  type Fold,
  foldSplit,
  NOMINAL_VALIDATION_FRACTION,
  NOMINAL_VALIDATION_MIN,
  predictSettings,
  type TrainOverrides,
  type TrainPlan,
  trainerConfig,
} from "./config.js";
import { type CaseScore, nativeLabel, scoreCase, writePrediction } from "./native.js";
import { readNpyFloat16 } from "./npy-f16.js";
import { type PyEvent, PythonError, packageModel, runPythonModule } from "./python.js";
import { type LabelSummaryJson, meanMetrics, summarizeScores } from "./summary.js";

export interface CvTrainOptions {
  plan: string;
  data: string;
  fold: Fold;
  outputDir: string;
  device?: "auto" | "cpu" | "cuda";
  seed?: number;
  overrides?: TrainOverrides;
  /** A wall-clock budget for the epoch loop in seconds (train.py's time_limit_s); none by default. */
  timeLimitS?: number;
  progress?: (event: Record<string, unknown>) => void;
}

/** result.json of medpipe.train (the keys we read). */
interface TrainResult {
  status: string;
  message?: string;
  hint?: string;
  selection: string;
  best_epoch: number;
  best_dice: number | null;
  best_ema: number | null;
  last_epoch: number;
  stopped_early: boolean;
  stop_epoch: number | null;
  stop_reason: "patience" | "time_limit" | null;
  time_limit_s: number | null;
  last_dice: number | null;
  last_ema: number | null;
  nominal_validation: boolean;
  held_out: boolean | null;
  epoch_over_compute: number | null;
  init_digest: string;
  best_digest: string;
  last_digest: string;
  final_digest: string;
  epochs: number;
  iterations_per_epoch: number;
  device: string;
  data_device: string;
  amp: boolean;
  torch: string;
  peak_gpu_mb: number | null;
  peak_rss_mb: number;
  timings: Record<string, number>;
}

interface Trace {
  epochs: {
    epoch: number;
    loss: number;
    lr: number;
    seconds: number;
    fwd_bwd_seconds: number;
    data_seconds: number;
  }[];
  validations: { epoch: number; dice: number; ema: number }[];
  nominal_validation?: boolean;
  held_out?: boolean | null;
  best: { epoch: number; dice: number | null; ema: number | null } | null;
}

interface PredictSummary {
  weights_digest: string;
  device: string;
  num_classes: number;
  cases: { id: string; shape: number[]; label: string; probabilities: string | null; seconds: number }[];
  timings: Record<string, number>;
  peak_rss_mb: number;
  peak_gpu_mb: number | null;
}

interface ModelCard {
  provenance: { weights_digest: string; onnx_opset: number; plan_sha256: string };
}

export interface PerCase extends CaseScore {
  fold: number;
  prediction: string;
  grid_prediction: string;
  seconds: number;
}

const readJson = async <T>(path: string): Promise<T> => JSON.parse(await readFile(path, "utf8")) as T;

/** The highest EMA of a recorded validation trace (the training-best the checkpoint claims). */
export function traceBest(trace: Trace): { epoch: number; ema: number; dice: number } | null {
  let best: Trace["validations"][number] | null = null;
  for (const v of trace.validations) if (best === null || v.ema > best.ema) best = v; // first on ties
  return best;
}

export const FINAL_MODEL_NOTE =
  "fold 'all' trains the final model on every case: nothing is held out, so it has no performance estimate; use the CV summary of the folds";

export const NOMINAL_VALIDATION_NOTE =
  "nominal validation: cases the final model also trains on (duplicated, not held out); its Dice measures fit, not performance, and selects nothing (the checkpoint is the last epoch)";

export async function runCvTrain(
  o: CvTrainOptions,
): Promise<{ payload: Record<string, unknown>; roles: Record<string, string> }> {
  const t0 = performance.now();
  const progress = o.progress ?? (() => {});
  const out = resolve(o.outputDir);
  const dataDir = resolve(o.data);
  const device = o.device ?? "auto";

  const loaded = readPlan(o.plan);
  const plan = loaded.plan as unknown as TrainPlan;
  const overrides = changedOverrides(plan, o.overrides ?? {});
  let data: DataIndex;
  try {
    data = await readJson<DataIndex>(join(dataDir, "dataset.json"));
  } catch (err) {
    throw new CvTrainInputError(`${dataDir}: no readable dataset.json (${(err as Error).message})`);
  }
  const { planSha256Matches } = checkDataMatchesPlan(plan, data, loaded.sha256);
  const split = foldSplit(plan, o.fold);
  const seed = o.seed ?? defaultSeed(plan, o.fold);
  const config = trainerConfig({
    plan,
    planSha256: loaded.sha256,
    data,
    dataDir,
    split,
    seed,
    device,
    overrides,
    ...(o.timeLimitS !== undefined ? { timeLimitS: o.timeLimitS } : {}),
  });
  const classes = classCount(plan.dataset.labels);
  const notes: string[] = [];
  if (!planSha256Matches)
    notes.push("data/ was preprocessed from a plan with other bytes (same preprocessing settings)");
  if (plan.early_stopping && split.nominal !== undefined)
    notes.push("plan.early_stopping does not apply to fold all: its nominal validation selects nothing");

  // ---- training
  await mkdir(join(out, "predictions"), { recursive: true });
  const configPath = join(out, "train_config.json");
  await writeFile(configPath, `${JSON.stringify(config, null, 2)}\n`);
  const forward = (phase: string) => (e: PyEvent) => progress({ ...e, phase });
  try {
    await runPythonModule("medpipe.train", ["--config", configPath, "--output-dir", out], forward("train"));
  } catch (err) {
    if (err instanceof PythonError && err.code === 3) {
      const r = await readJson<TrainResult>(join(out, "result.json")).catch(() => null);
      throw new Error(`${r?.message ?? "out of memory"} (${r?.hint ?? "reduce patch_size or batch_size"})`);
    }
    throw err;
  }
  await rename(join(out, "result.json"), join(out, "train_result.json"));
  const result = await readJson<TrainResult>(join(out, "train_result.json"));
  const trace = await readJson<Trace>(join(out, "trace.json"));
  const nominal = split.nominal !== undefined;
  if (nominal && !(result.nominal_validation && trace.nominal_validation && trace.held_out === false))
    throw new Error("the final model's nominal validation is not flagged as such by the trainer");
  // Nominal validation selects nothing: no training-best to claim.
  const best = nominal ? null : traceBest(trace);
  // The checkpoint's claim must be the trace's maximum, bit for bit (the verifier checks it too).
  if (best && (best.ema !== result.best_ema || best.epoch !== result.best_epoch))
    throw new Error(
      `trainer says best epoch ${result.best_epoch} (EMA ${result.best_ema}) but the trace's highest EMA is epoch ${best.epoch} (${best.ema})`,
    );

  // ---- held-out inference, native space, scores
  const perCase: PerCase[] = [];
  let predict: PredictSummary | null = null;
  const timings: Record<string, number> = { train_s: result.timings.total_s ?? 0 };
  if (split.val.length) {
    const t = performance.now();
    const grid = join(out, "grid");
    await mkdir(grid, { recursive: true });
    const casesPath = join(grid, "cases.json");
    const byId = new Map(data.cases.map((c) => [c.id, c]));
    await writeFile(
      casesPath,
      `${JSON.stringify(
        split.val.map((id) => ({ id, image: join(dataDir, byId.get(id)?.image ?? "") })),
        null,
        2,
      )}\n`,
    );
    await runPythonModule(
      "medpipe.predict",
      [
        "--checkpoint",
        join(out, "checkpoints", "best.safetensors"),
        "--cases",
        casesPath,
        "--output-dir",
        grid,
        "--inference",
        JSON.stringify(predictSettings(plan, config.patch_size)),
        "--device",
        device,
        "--probabilities",
      ],
      forward("predict"),
    );
    predict = await readJson<PredictSummary>(join(grid, "predict.json"));
    if (predict.weights_digest !== result.best_digest)
      throw new Error(
        `held-out inference used weights ${predict.weights_digest}, not the best checkpoint ${result.best_digest}`,
      );
    timings.predict_s = (performance.now() - t) / 1000;

    const t2 = performance.now();
    const post = {
      keepLargestComponent: plan.inference.keep_largest_component,
      threshold: plan.inference.threshold ?? null,
    };
    for (const row of predict.cases) {
      const tc = performance.now();
      const props: CaseProperties = await readProperties(join(dataDir, row.id, "properties.json"));
      const probsPath = join(grid, row.probabilities ?? "");
      const probs = await readNpyFloat16(probsPath);
      const want = [...props.resampled_shape, classes];
      if (!probs.fortranOrder || probs.shape.join(",") !== want.join(","))
        throw new Error(
          `${probsPath}: shape [${probs.shape}] (fortran ${probs.fortranOrder}), expected [${want}] Fortran`,
        );
      const label = nativeLabel(probs.data, props, classes, post);
      const rel = `predictions/${row.id}${plan.spatial_dims === 2 ? ".npy" : ".nii.gz"}`;
      await writePrediction(join(out, rel), label);
      // The probabilities were only the way to native space; the grid label map stays as evidence.
      await rm(probsPath);
      const reference = props.source.label;
      if (!reference || !existsSync(reference))
        throw new Error(`held-out case ${row.id}: original label ${reference ?? "(none)"} not found`);
      const score = await scoreCase(row.id, label, reference, plan.dataset.labels);
      const seconds = (performance.now() - tc) / 1000;
      perCase.push({
        ...score,
        fold: split.fold as number,
        prediction: rel,
        grid_prediction: `grid/${row.label}`,
        seconds,
      });
      progress({
        event: "case",
        phase: "score",
        id: row.id,
        dice: score.labels.map((l) => l.metrics.dice ?? null),
        seconds,
      });
    }
    await rm(casesPath);
    timings.native_and_score_s = (performance.now() - t2) / 1000;
  }
  const summary: LabelSummaryJson[] | null = perCase.length ? summarizeScores(perCase) : null;
  const performance_ = summary
    ? { scope: `held-out cases of fold ${split.fold}`, cases: perCase.length, mean: meanMetrics(summary) }
    : null;

  // ---- model package
  const t3 = performance.now();
  // With overrides the package carries the plan as trained (the original's sha256 in the card).
  const trained = effectivePlan(
    JSON.parse(await readFile(loaded.path, "utf8")) as Record<string, unknown>,
    overrides,
  );
  const packagePlan = trained ? join(out, "plan.effective.json") : loaded.path;
  if (trained) await writeFile(packagePlan, `${JSON.stringify(trained, null, 2)}\n`);
  await packageModel(
    join(out, "checkpoints", "best.safetensors"),
    packagePlan,
    join(out, "model"),
    {
      metrics: performance_,
      fold: split.fold,
      held_out: split.val,
      source_plan_sha256: loaded.sha256,
      plan_overrides: overrides,
      training: {
        epochs: result.epochs,
        seed,
        selection: result.selection,
        best_epoch: result.best_epoch,
        best_dice: result.best_dice,
        best_ema: result.best_ema,
      },
      ...(split.fold === "all" ? { performance_note: FINAL_MODEL_NOTE } : {}),
    },
    forward("package"),
  );
  const card = await readJson<ModelCard>(join(out, "model", "model_card.json"));
  timings.package_s = (performance.now() - t3) / 1000;
  timings.epoch_mean_s = result.timings.epoch_mean_s ?? 0;
  for (const k of ["fwd_bwd_s", "data_s"]) {
    const v = result.timings[k];
    if (typeof v === "number" && Number.isFinite(v)) timings[k] = v;
  }
  // Epoch wall time over the pure forward+backward+step time of the same steps (≥ 1; 1 = the
  // data pipeline costs nothing visible).
  if (typeof result.epoch_over_compute === "number" && Number.isFinite(result.epoch_over_compute))
    timings.epoch_over_compute = result.epoch_over_compute;
  timings.total_s = (performance.now() - t0) / 1000;

  const roles: Record<string, string> = {
    "trace.json": "trace",
    "train_result.json": "train-result",
    "train_config.json": "train-config",
    "plan.effective.json": "plan",
    "checkpoints/best.safetensors": "checkpoint",
    "checkpoints/last.safetensors": "checkpoint",
    "model/model.onnx": "model",
    "model/weights.safetensors": "model",
    "model/plan.json": "model",
    "model/model_card.json": "model",
  };
  for (const c of perCase) {
    roles[c.prediction] = "prediction";
    roles[c.grid_prediction] = "grid-prediction";
  }
  if (predict) roles["grid/predict.json"] = "predict-summary";

  const payload = {
    fold: split.fold,
    held_out: split.fold !== "all",
    seed,
    device: result.device,
    data_device: result.data_device,
    torch: result.torch,
    plan_sha256: loaded.sha256,
    plan_overrides: overrides,
    data_fingerprint: data.fingerprint,
    data_plan_sha256_matches: planSha256Matches,
    train_cases: split.train,
    val_cases: split.val,
    nominal_validation: nominal,
    nominal: nominal
      ? {
          cases: split.nominal,
          held_out: false,
          fraction: NOMINAL_VALIDATION_FRACTION,
          min_cases: NOMINAL_VALIDATION_MIN,
          seed: plan.split.seed,
          validations: trace.validations.length,
          last: trace.validations.length
            ? {
                epoch: result.last_epoch,
                dice: result.last_dice,
                ema: result.last_ema,
              }
            : null,
          note: NOMINAL_VALIDATION_NOTE,
        }
      : null,
    epochs: result.epochs,
    early_stopping: config.early_stopping
      ? {
          ...config.early_stopping,
          stopped_early: result.stop_reason === "patience",
          stop_epoch: result.stop_reason === "patience" ? result.stop_epoch : null,
        }
      : null,
    time_limit:
      result.time_limit_s !== null
        ? {
            seconds: result.time_limit_s,
            reached: result.stop_reason === "time_limit",
            stop_epoch: result.stop_reason === "time_limit" ? result.stop_epoch : null,
          }
        : null,
    iterations_per_epoch: result.iterations_per_epoch,
    selection: result.selection,
    best: { epoch: result.best_epoch, dice: result.best_dice, ema: result.best_ema },
    training_best: best ? best.ema : null,
    init_digest: result.init_digest,
    best_digest: result.best_digest,
    final_digest: result.final_digest,
    checkpoints: {
      best: { path: "checkpoints/best.safetensors", digest: result.best_digest },
      last: { path: "checkpoints/last.safetensors", digest: result.last_digest },
    },
    trace: "trace.json",
    inference: predictSettings(plan, config.patch_size),
    post_processing: {
      keep_largest_component: plan.inference.keep_largest_component,
      threshold: plan.inference.threshold ?? null,
    },
    per_case: perCase,
    summary,
    performance: performance_,
    ...(split.fold === "all" ? { performance_note: FINAL_MODEL_NOTE } : {}),
    model: {
      path: "model/",
      weights_digest: card.provenance.weights_digest,
      onnx_opset: card.provenance.onnx_opset,
    },
    timings,
    peak_memory: {
      train_rss_mb: result.peak_rss_mb,
      train_gpu_mb: result.peak_gpu_mb,
      predict_rss_mb: predict?.peak_rss_mb ?? null,
      predict_gpu_mb: predict?.peak_gpu_mb ?? null,
    },
    notes,
  };
  return { payload, roles };
}
