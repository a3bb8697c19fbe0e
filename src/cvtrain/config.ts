// From plan.json + the preprocessed data/ folder + a fold to the Python trainer's config
// (src/py/medpipe/train.py). Pure: no process is started here, so the split rules are tested
// without training anything.
import { join } from "node:path";
import { classCount, maskedClasses } from "../plan/classes.js";
import { permutation } from "../plan/random.js";

/** The fields of plan.json that training reads (schemas/plan.schema.json; validated whole elsewhere). */
export interface TrainPlan {
  dataset: {
    name: string;
    fingerprint: string;
    labels: Record<string, string>;
    channels: string[];
    modality: string;
    cases: { id: string }[];
  };
  spatial_dims: 2 | 3;
  target_spacing: number[];
  patch_size: number[];
  network: Record<string, unknown>;
  loss: Record<string, unknown>;
  optimizer: Record<string, unknown>;
  schedule: Record<string, unknown>;
  epochs: number;
  batch_size: number;
  samples_per_volume: number;
  sampler: { name: string; probabilities?: number[] | null };
  augment: Record<string, unknown>[];
  ema: number;
  val_every: number;
  validate_on?: "patches" | "volumes";
  early_stopping?: { patience: number } | null;
  inference: {
    overlap: number;
    mode: "hann" | "gaussian" | "constant";
    sw_batch_size?: number;
    tta: boolean;
    keep_largest_component: boolean;
    threshold?: number | null;
  };
  split: {
    method: string;
    seed: number;
    folds: { fold: number; train: string[]; val: string[] }[];
  };
}

/** data/dataset.json (schemas/preprocessed.md). */
export interface DataIndex {
  schema_version: 1;
  plan_sha256: string;
  fingerprint: string;
  spatial_dims: 2 | 3;
  channels: string[];
  labels: Record<string, string>;
  target_spacing?: number[];
  cases: { id: string; image: string; label: string | null; shape: number[] }[];
}

export type Fold = number | "all";

/** Trainer overrides a manifest may give (each replaces the plan's value). */
export interface TrainOverrides {
  epochs?: number;
  batch_size?: number;
  patch_size?: number[];
  lr?: number;
  samples_per_volume?: number;
  val_every?: number;
}

export interface Split {
  fold: Fold;
  train: string[];
  /** Held-out cases (fold k); empty for fold "all". */
  val: string[];
  /**
   * Fold "all" only: the nominal-validation subset the final model watches. Its cases are also
   * training cases (duplicated, not held out), so what it measures is fit, never performance.
   */
  nominal?: string[];
}

/** The reference's nominal-validation share of the final model: 15% of the cases, at least 2. */
export const NOMINAL_VALIDATION_FRACTION = 0.15;
export const NOMINAL_VALIDATION_MIN = 2;

/**
 * The final model's nominal-validation subset: max(2, round(15% of n)) cases (all of them when
 * n is smaller), drawn with `np.random.RandomState(seed).permutation(n)` over the cases in the
 * given order and returned in that order. Seeded with plan.split.seed: the same plan, the same
 * subset.
 */
export function nominalValidationCases(ids: string[], seed: number): string[] {
  const n = Math.min(
    ids.length,
    Math.max(NOMINAL_VALIDATION_MIN, Math.round(NOMINAL_VALIDATION_FRACTION * ids.length)),
  );
  const pick = permutation(ids.length, seed)
    .slice(0, n)
    .sort((a, b) => a - b);
  return pick.map((i) => ids[i] as string);
}

export interface TrainerCase {
  id: string;
  image: string;
  label: string;
}

/** The JSON object `python -m medpipe.train --config` reads. */
export interface TrainerConfig {
  network: Record<string, unknown>;
  loss: Record<string, unknown>;
  train_cases: TrainerCase[];
  val_cases: TrainerCase[];
  /** true: val_cases are the final model's nominal subset (also trained on; nothing selected). */
  nominal_validation: boolean;
  patch_size: number[];
  batch_size: number;
  samples_per_volume: number;
  sampler: { name: string; probabilities: number[] | null };
  augment: Record<string, unknown>[];
  optimizer: Record<string, unknown>;
  schedule: Record<string, unknown>;
  epochs: number;
  val_every: number;
  validate_on: "patches" | "volumes";
  ema: number;
  /** null: off; else stop after `patience` validations in a row without a new best (train.py). */
  early_stopping: { patience: number } | null;
  /** null: off; else the epoch loop's wall-clock budget in seconds (train.py). */
  time_limit_s: number | null;
  inference: { overlap: number; mode: string; sw_batch_size: number; tta: boolean };
  seed: number;
  device: "auto" | "cpu" | "cuda";
  metadata: Record<string, string>;
}

export class CvTrainInputError extends Error {}

/**
 * The fold's split. Fold k: plan.split.folds[k] exactly (the plan skill made it, seeded). Fold
 * "all": every case of the split trains and nothing is held out — the final model — watching a
 * small duplicated nominal-validation subset (`nominal`, see nominalValidationCases).
 */
export function foldSplit(plan: TrainPlan, fold: Fold): Split {
  const folds = plan.split.folds;
  if (fold === "all") {
    // Every case the split knows about, in the plan's case order (stable across plans that list
    // the folds differently).
    const all = new Set<string>();
    for (const f of folds) for (const id of [...f.train, ...f.val]) all.add(id);
    const order = new Map(plan.dataset.cases.map((c, i) => [c.id, i]));
    const rank = (id: string) => order.get(id) ?? Number.MAX_SAFE_INTEGER;
    const train = [...all].sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
    return { fold, train, val: [], nominal: nominalValidationCases(train, plan.split.seed) };
  }
  const f = folds.find((x) => x.fold === fold);
  if (!f)
    throw new CvTrainInputError(
      `fold ${fold} is not in plan.split.folds (folds: ${folds.map((x) => x.fold).join(", ") || "none"})`,
    );
  const val = new Set(f.val);
  const leaked = f.train.filter((id) => val.has(id));
  if (leaked.length)
    throw new CvTrainInputError(
      `fold ${fold}: held-out case(s) ${leaked.join(", ")} are also in its training list`,
    );
  if (f.train.length === 0) throw new CvTrainInputError(`fold ${fold} has no training cases`);
  if (f.val.length === 0) throw new CvTrainInputError(`fold ${fold} has no held-out cases`);
  return { fold, train: f.train.slice(), val: f.val.slice() };
}

/** The default seed: plan.split.seed + fold; the final model takes the next one after the folds. */
export function defaultSeed(plan: TrainPlan, fold: Fold): number {
  return plan.split.seed + (fold === "all" ? plan.split.folds.length : fold);
}

/**
 * Checks that data/ was made for this plan: the preprocessing-relevant facts must agree (a
 * different plan sha256 alone is allowed: training settings may change without re-preprocessing).
 */
export function checkDataMatchesPlan(
  plan: TrainPlan,
  data: DataIndex,
  planSha256: string,
): { planSha256Matches: boolean } {
  const problems: string[] = [];
  if (data.fingerprint !== plan.dataset.fingerprint) problems.push("dataset fingerprint");
  if (data.spatial_dims !== plan.spatial_dims) problems.push("spatial_dims");
  if (data.target_spacing && data.target_spacing.join(",") !== plan.target_spacing.join(","))
    problems.push("target_spacing");
  const keys = (o: Record<string, string>) => JSON.stringify(Object.keys(o).sort());
  if (keys(data.labels) !== keys(plan.dataset.labels)) problems.push("labels");
  if (data.channels.length !== plan.dataset.channels.length) problems.push("channels");
  if (problems.length)
    throw new CvTrainInputError(`data/ was preprocessed with another plan: ${problems.join(", ")} differ`);
  return { planSha256Matches: data.plan_sha256 === planSha256 };
}

function casesFor(ids: string[], data: DataIndex, dataDir: string, role: string): TrainerCase[] {
  const byId = new Map(data.cases.map((c) => [c.id, c]));
  return ids.map((id) => {
    const c = byId.get(id);
    if (!c) throw new CvTrainInputError(`${role} case ${id} is not in ${join(dataDir, "dataset.json")}`);
    if (!c.label) throw new CvTrainInputError(`${role} case ${id} has no label in the preprocessed data`);
    return { id, image: join(dataDir, c.image), label: join(dataDir, c.label) };
  });
}

export interface ConfigOptions {
  plan: TrainPlan;
  planSha256: string;
  data: DataIndex;
  dataDir: string;
  split: Split;
  seed: number;
  device: "auto" | "cpu" | "cuda";
  overrides: TrainOverrides;
  timeLimitS?: number;
}

/** The trainer config: the plan's sections one to one, with the fold's cases and the overrides. */
export function trainerConfig(o: ConfigOptions): TrainerConfig {
  const { plan, overrides: ov } = o;
  const patch = ov.patch_size ?? plan.patch_size;
  if (patch.length !== plan.spatial_dims)
    throw new CvTrainInputError(`patch_size [${patch.join(", ")}] does not have ${plan.spatial_dims} axes`);
  const classes = classCount(plan.dataset.labels);
  const network: Record<string, unknown> = { spatial_dims: plan.spatial_dims, ...plan.network };
  // The data decide the network's ends; a plan saying otherwise is a plan error, not a guess.
  for (const [key, want] of [
    ["in_channels", plan.dataset.channels.length],
    ["out_channels", classes],
  ] as const) {
    if (network[key] !== undefined && network[key] !== want)
      throw new CvTrainInputError(`plan.network.${key} is ${String(network[key])} but the data need ${want}`);
    network[key] = want;
  }
  const masked = maskedClasses(plan.dataset.labels);
  const planMasked = JSON.stringify(network.masked_classes ?? []);
  if (network.masked_classes !== undefined && planMasked !== JSON.stringify(masked))
    throw new CvTrainInputError(
      `plan.network.masked_classes is ${planMasked} but the labels' gaps are [${masked.join(", ")}]`,
    );
  if (masked.length) network.masked_classes = masked;
  const optimizer = { ...plan.optimizer, ...(ov.lr !== undefined ? { lr: ov.lr } : {}) };
  const inf = plan.inference;
  return {
    network,
    loss: plan.loss,
    train_cases: casesFor(o.split.train, o.data, o.dataDir, "training"),
    // Fold k validates on its held-out cases; fold "all" on its nominal subset (duplicated).
    val_cases: o.split.nominal
      ? casesFor(o.split.nominal, o.data, o.dataDir, "nominal-validation")
      : casesFor(o.split.val, o.data, o.dataDir, "held-out"),
    nominal_validation: o.split.nominal !== undefined,
    patch_size: patch.slice(),
    batch_size: ov.batch_size ?? plan.batch_size,
    samples_per_volume: ov.samples_per_volume ?? plan.samples_per_volume,
    sampler: { name: plan.sampler.name, probabilities: plan.sampler.probabilities ?? null },
    augment: plan.augment,
    optimizer,
    schedule: plan.schedule,
    epochs: ov.epochs ?? plan.epochs,
    val_every: ov.val_every ?? plan.val_every,
    validate_on: plan.validate_on ?? "patches",
    ema: plan.ema,
    early_stopping: plan.early_stopping ?? null,
    time_limit_s: o.timeLimitS ?? null,
    // Validation on volumes runs without TTA (2^d times cheaper); the held-out inference after
    // training uses the plan's TTA.
    inference: { overlap: inf.overlap, mode: inf.mode, sw_batch_size: inf.sw_batch_size ?? 4, tta: false },
    seed: o.seed,
    device: o.device,
    metadata: {
      plan_sha256: o.planSha256,
      data_fingerprint: plan.dataset.fingerprint,
      fold: String(o.split.fold),
      patch_size: JSON.stringify(patch),
    },
  };
}

/** The settings `python -m medpipe.predict --inference` takes for held-out inference. */
export function predictSettings(plan: TrainPlan, patch: number[]): Record<string, unknown> {
  const inf = plan.inference;
  return {
    patch_size: patch,
    overlap: inf.overlap,
    mode: inf.mode,
    sw_batch_size: inf.sw_batch_size ?? 4,
    tta: inf.tta,
  };
}

/**
 * The overrides that change the plan: one equal to the plan's own value is dropped, so a
 * manifest that passes the plan's epochs along (to keep a skill mode's default out) leaves no
 * trace of an override in the output or the package.
 */
export function changedOverrides(plan: TrainPlan, ov: TrainOverrides): TrainOverrides {
  const planned: Record<keyof TrainOverrides, unknown> = {
    epochs: plan.epochs,
    batch_size: plan.batch_size,
    patch_size: plan.patch_size,
    lr: plan.optimizer.lr,
    samples_per_volume: plan.samples_per_volume,
    val_every: plan.val_every,
  };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(ov))
    if (v !== undefined && JSON.stringify(v) !== JSON.stringify(planned[k as keyof TrainOverrides]))
      out[k] = v;
  return out as TrainOverrides;
}

/**
 * plan.json as the model was actually trained: the raw plan object with the overrides applied,
 * so that the model package's plan.json (what inference reads) tells the truth about the patch
 * size and recipe. Null when there are no overrides (the plan is then copied as it is).
 */
export function effectivePlan(
  raw: Record<string, unknown>,
  ov: TrainOverrides,
): Record<string, unknown> | null {
  const keys = Object.keys(ov).filter((k) => ov[k as keyof TrainOverrides] !== undefined);
  if (keys.length === 0) return null;
  const out: Record<string, unknown> = { ...raw };
  for (const k of ["epochs", "batch_size", "patch_size", "samples_per_volume", "val_every"] as const)
    if (ov[k] !== undefined) out[k] = ov[k];
  if (ov.lr !== undefined) out.optimizer = { ...(raw.optimizer as Record<string, unknown>), lr: ov.lr };
  return out;
}
