// analysis (fingerprint.json) + overrides → plan.json, pure. Every field starts at the heart
// reference default or the analysis suggestion; an override replaces it (objects such as
// `network` or `inference` are merged key by key onto the default).
import type { Analysis, CaseRecord } from "../analyze/types.js";
import { classCount, defaultProbabilities, maskedClasses } from "./classes.js";
import {
  DEFAULT_INFERENCE,
  DEFAULT_LOSS,
  DEFAULT_OPTIMIZER,
  DEFAULT_SCHEDULE,
  DEFAULT_SPLIT,
  DEFAULT_TRAINING,
  defaultAugment,
  defaultNetwork,
} from "./defaults.js";
import { patchProblem } from "./network.js";
import { permutation } from "./random.js";
import { type Fold, groupKfold, holdout, kfold, stratifiedKfold, testSet } from "./split.js";
import type { JsonObject, Normalization, Plan, PlanCase, PlanOverrides, Split, Subset } from "./types.js";

export class PlanError extends Error {}

export function buildPlan(analysis: Analysis, o: PlanOverrides = {}): Plan {
  if (analysis.errors > 0)
    throw new PlanError(
      `the analysis lists ${analysis.errors} error(s) (first: ${analysis.problems.find((p) => p.severity === "error")?.message}); fix the data and analyze again`,
    );
  if (analysis.cases.length === 0) throw new PlanError("the analysis has no case");
  const { pool: chosen, subset } = subsetOf(analysis.cases, o);
  const { pool: cases, test } = testSplit(chosen, o);
  if (cases.length === 0) throw new PlanError("the analysis has no case outside the test set");
  const targetSpacing = o.target_spacing ?? analysis.suggestions.target_spacing;
  if (!targetSpacing)
    throw new PlanError("the analysis has no target spacing suggestion; give target_spacing");
  const spatialDims = analysis.summary.spatial_dims ?? (targetSpacing.length === 2 ? 2 : 3);
  const patch = o.patch_size ?? analysis.suggestions.patch_size;
  if (!patch) throw new PlanError("the analysis has no patch size suggestion; give patch_size");
  for (const [name, v] of [
    ["target_spacing", targetSpacing],
    ["patch_size", patch],
  ] as const)
    if (v.length !== spatialDims)
      throw new PlanError(`${name} [${v.join(", ")}] has ${v.length} values; the data is ${spatialDims}D`);

  const labels = o.labels ?? labelNames(analysis);
  const classes = classCount(labels);
  const channels = o.channels ?? channelNames(analysis);
  const modality = o.modality ?? analysis.dataset.modality ?? "other";

  const network = networkFor(o.network, spatialDims, channels.length, classes);
  const masked = maskedClasses(labels);
  if (masked.length) network.masked_classes = masked;
  const misfit = patchProblem(patch, network);
  if (misfit) throw new PlanError(misfit);
  const optimizer = optimizerFor(o.optimizer);
  if (o.lr !== undefined) optimizer.lr = o.lr;

  return {
    schema_version: 1,
    dataset: {
      name: o.name ?? analysis.dataset.name,
      root: analysis.dataset.root,
      fingerprint: analysis.fingerprint,
      labels,
      channels,
      modality,
      cases: cases.map((c) => planCase(c, o)),
    },
    spatial_dims: spatialDims,
    orientation: "RAS",
    target_spacing: targetSpacing,
    normalization: normalizationFor(analysis, modality, o.normalization),
    patch_size: patch,
    network,
    loss: { ...DEFAULT_LOSS, ...o.loss },
    optimizer,
    schedule: { ...DEFAULT_SCHEDULE, ...o.schedule },
    epochs: o.epochs ?? DEFAULT_TRAINING.epochs,
    batch_size: o.batch_size ?? DEFAULT_TRAINING.batch_size,
    samples_per_volume: o.samples_per_volume ?? DEFAULT_TRAINING.samples_per_volume,
    sampler: {
      name: o.sampler?.name ?? "label",
      probabilities:
        o.sampler?.probabilities !== undefined ? o.sampler.probabilities : defaultProbabilities(labels),
    },
    augment: o.augment ?? defaultAugment(spatialDims),
    ema: o.ema ?? DEFAULT_TRAINING.ema,
    val_every: o.val_every ?? DEFAULT_TRAINING.val_every,
    validate_on: o.validate_on ?? DEFAULT_TRAINING.validate_on,
    early_stopping: o.early_stopping ?? null,
    inference: { ...DEFAULT_INFERENCE, ...o.inference },
    split: { ...splitFor(cases, o), ...test, ...(subset ? { subset } : {}) },
  };
}

/**
 * The cases the plan trains and validates on: all of them, except with `split: predefined`, where
 * the source's `test` cases (npy2d's test/ folder) are set aside, by id, for a later test stage.
 */
/**
 * A plan case; a group split records each case's group (also one derived by a regex), so that the
 * verifier can check from plan.json alone that no group straddles folds.
 */
function planCase(c: CaseRecord, o: PlanOverrides): PlanCase {
  const group = o.split === "group" ? groupOf(c, o.group_by ?? "group") : c.group;
  return { id: c.id, image: c.image, label: c.label, ...(group !== undefined ? { group } : {}) };
}

/** The dataset's label names, else names for the values found ("0" is the background). */
function labelNames(analysis: Analysis): Record<string, string> {
  if (Object.keys(analysis.dataset.labels).length) return analysis.dataset.labels;
  const values = analysis.summary.labels.map((l) => l.value);
  const out: Record<string, string> = { "0": "background" };
  for (const v of values) if (v !== 0) out[String(v)] = `label ${v}`;
  return out;
}

function channelNames(analysis: Analysis): string[] {
  if (analysis.dataset.channels.length) return analysis.dataset.channels;
  const n = analysis.summary.channels ?? 1;
  return Array.from({ length: n }, (_, c) => `channel ${c}`);
}

/**
 * Another optimizer starts from the trainer's defaults for it and the default lr: the default's
 * weight decay is AdamW's, which torch's Adam would apply as an L2 term instead.
 */
function optimizerFor(over: JsonObject | undefined): JsonObject {
  if (over?.name !== undefined && over.name !== DEFAULT_OPTIMIZER.name)
    return { name: over.name, lr: DEFAULT_OPTIMIZER.lr as number, ...over };
  return { ...DEFAULT_OPTIMIZER, ...over };
}

/** Changing the family starts from the new family's own defaults (filled in by medpipe.nets). */
function networkFor(
  over: JsonObject | undefined,
  dims: 2 | 3,
  inChannels: number,
  classes: number,
): JsonObject {
  const base = defaultNetwork(dims, inChannels, classes);
  if (over?.family !== undefined && over.family !== base.family)
    return {
      family: over.family,
      spatial_dims: dims,
      in_channels: inChannels,
      out_channels: classes,
      ...over,
    };
  return { ...base, ...over };
}

/**
 * MR and other modalities: z-score over the image's foreground, its voxels above the image's mean
 * (the reference's foreground z-normalization, computed from the image alone so that training,
 * held-out evaluation and inference normalize alike; src/preprocess/normalize-case.ts). CT: nnU-Net's scheme,
 * clip to the dataset's foreground 0.5/99.5 percentiles, z-score with the dataset's foreground
 * mean and std (channel 0 of the analysis's pooled foreground samples). An override naming a
 * scheme starts from that scheme's defaults.
 */
function normalizationFor(
  analysis: Analysis,
  modality: string,
  over: Partial<Normalization> | undefined,
): Normalization {
  const scheme = over?.scheme ?? (modality.toUpperCase() === "CT" ? "ct" : "zscore");
  let base: Normalization;
  if (scheme === "zscore") base = { scheme, over: "above_mean" };
  else if (scheme === "none") base = { scheme };
  else {
    const s = analysis.summary.intensity[0];
    if (!s || !Number.isFinite(s.p00_5) || !Number.isFinite(s.std))
      throw new PlanError("CT normalization needs foreground intensity statistics; the analysis has none");
    base = { scheme, clip: [s.p00_5, s.p99_5], mean: s.mean, std: s.std };
  }
  return { ...base, ...over, scheme };
}

/** MONAI DecathlonDataset's default share of its validation section. */
const MONAI_VAL_FRAC = 0.2;

/**
 * The cases a plan is restricted to, before the test set and the folds: with `subset`, one section
 * of MONAI's DecathlonDataset over the analysed cases in their dataset.json order, kept in the
 * order MONAI gives them (so a reference that ran KFold over that section gets the same folds).
 */
function subsetOf(cases: CaseRecord[], o: PlanOverrides): { pool: CaseRecord[]; subset: Subset | null } {
  if (o.subset === undefined) return { pool: cases, subset: null };
  if (o.split === "predefined")
    throw new PlanError("subset: not with split predefined, whose train/ and val/ folders are the cases");
  if (cases.some((c) => c.listed === undefined))
    throw new PlanError(
      "subset: the analysis does not record the dataset's listing order (an analysis made before it did); run analyze again",
    );
  // MONAI reads the dataset's listing, not cases sorted by id.
  const listing = [...cases].sort((a, b) => (a.listed as number) - (b.listed as number));
  const seed = o.subset_seed ?? 0;
  const order = permutation(listing.length, seed);
  const nVal = Math.trunc(listing.length * MONAI_VAL_FRAC);
  const [keep, drop] =
    o.subset === "monai-training"
      ? [order.slice(nVal), order.slice(0, nVal)]
      : [order.slice(0, nVal), order.slice(nVal)];
  if (keep.length < 2)
    throw new PlanError(
      `subset: ${o.subset} of ${listing.length} analysed cases leaves ${keep.length}; at least 2 are needed`,
    );
  const at = (i: number): CaseRecord => listing[i] as CaseRecord;
  return {
    pool: keep.map(at),
    subset: { name: o.subset, seed, val_frac: MONAI_VAL_FRAC, left_out: drop.map((i) => at(i).id) },
  };
}

/**
 * The test set, set aside before anything else is split, so that no training stage can reach a
 * test case: a predefined split's `test/` cases, or with `test_fraction` scikit-learn's
 * train_test_split test set (⌈n × fraction⌉ cases of numpy's `RandomState(split_seed).permutation(n)`).
 * The rest is the pool that the plan's dataset and folds are made of.
 */
function testSplit(
  cases: CaseRecord[],
  o: PlanOverrides,
): { pool: CaseRecord[]; test: Pick<Split, "test_fraction" | "test_cases"> } {
  if (o.split === "predefined") {
    if (o.test_fraction !== undefined)
      throw new PlanError("test_fraction: not with split predefined, whose test/ cases are the test set");
    const isTest = (c: CaseRecord): boolean => c.split === "test";
    return {
      pool: cases.filter((c) => !isTest(c)),
      test: { test_cases: cases.filter(isTest).map((c) => c.id) },
    };
  }
  if (o.test_fraction === undefined) return { pool: cases, test: {} };
  let held: string[];
  try {
    held = testSet(
      cases.map((c) => c.id),
      o.test_fraction,
      o.split_seed ?? DEFAULT_SPLIT.seed,
    );
  } catch (err) {
    throw new PlanError(`test_fraction: ${(err as Error).message}`);
  }
  const isTest = new Set(held);
  return {
    pool: cases.filter((c) => !isTest.has(c.id)),
    test: { test_fraction: o.test_fraction, test_cases: held },
  };
}

function splitFor(cases: CaseRecord[], o: PlanOverrides): Split {
  const method = o.split ?? DEFAULT_SPLIT.method;
  const seed = o.split_seed ?? DEFAULT_SPLIT.seed;
  const k = o.folds ?? DEFAULT_SPLIT.k;
  const ids = cases.map((c) => c.id);
  let folds: Fold[];
  const split: Omit<Split, "folds"> = { method, seed };
  try {
    if (method === "kfold") {
      folds = kfold(ids, k, seed);
      split.k = k;
    } else if (method === "stratified") {
      const by = o.stratify_by ?? "foreground_volume";
      folds = stratifiedKfold(
        ids,
        cases.map((c) => caseProperty(c, by)),
        k,
        seed,
      );
      Object.assign(split, { k, stratify_by: by });
    } else if (method === "group") {
      const by = o.group_by ?? "group";
      folds = groupKfold(
        ids,
        cases.map((c) => groupOf(c, by)),
        k,
        seed,
      );
      Object.assign(split, { k, group_by: by });
    } else if (method === "predefined") {
      folds = [predefined(cases)];
    } else {
      const fraction = o.holdout_fraction ?? DEFAULT_SPLIT.holdout_fraction;
      folds = holdout(ids, fraction, seed);
      split.holdout_fraction = fraction;
    }
  } catch (err) {
    throw new PlanError(`split: ${(err as Error).message}`);
  }
  return { ...split, folds };
}

/** The source's own split as one fold: its `train` cases train, its `val` cases validate. */
function predefined(cases: CaseRecord[]): Fold {
  const other = cases.filter((c) => c.split !== "train" && c.split !== "val").map((c) => c.id);
  if (other.length)
    throw new Error(
      `predefined: case(s) ${other.slice(0, 3).join(", ")} have no train/val split from the dataset (npy2d train/ val/ test/ folders)`,
    );
  const train = cases.filter((c) => c.split === "train").map((c) => c.id);
  const val = cases.filter((c) => c.split === "val").map((c) => c.id);
  if (train.length === 0 || val.length === 0)
    throw new Error(`predefined: needs training and validation cases, got ${train.length} and ${val.length}`);
  return { fold: 0, train, val };
}

/**
 * A numeric case property to stratify on: foreground_volume (mm³), foreground_voxels, components
 * (foreground connected components) or volume:<label> (mm³ of one label value, 0 when absent).
 */
export function caseProperty(c: CaseRecord, name: string): number {
  let v: number | null;
  if (name === "foreground_volume") v = c.foreground_volume_mm3;
  else if (name === "foreground_voxels") v = c.foreground_voxels;
  else if (name === "components") v = c.foreground_components;
  else if (/^volume:\d+$/.test(name)) {
    const value = Number(name.slice("volume:".length));
    v = c.label_dtype === null ? null : (c.labels.find((l) => l.value === value)?.volume_mm3 ?? 0);
  } else
    throw new Error(
      `unknown stratify_by ${JSON.stringify(name)}; expected foreground_volume, foreground_voxels, components or volume:<label>`,
    );
  if (v === null) throw new Error(`case ${c.id} has no ${name} (no readable label)`);
  return v;
}

/** A case's group: its source's group key ("group"), or the first capture of "regex:<pattern>" on its id. */
export function groupOf(c: CaseRecord, by: string): string {
  if (by === "group") {
    if (c.group === undefined) throw new Error(`case ${c.id} has no group key (datalist/CSV "group")`);
    return c.group;
  }
  if (by.startsWith("regex:")) {
    const m = new RegExp(by.slice("regex:".length)).exec(c.id);
    if (!m) throw new Error(`case id ${c.id} does not match group_by ${by}`);
    return m[1] ?? m[0];
  }
  throw new Error(`unknown group_by ${JSON.stringify(by)}; expected "group" or "regex:<pattern>"`);
}
