// The finetune inputs turned into what the run needs: the cases with their split (fold 0 =
// validation, every other fold = training) and the label mapping local value → model class.
// Pure apart from reading the dataset listing; every problem is one FinetuneInputError line.
import { readDataset } from "../datasets/index.js";
import type { DatasetCase } from "../datasets/types.js";
import { FinetuneInputError } from "./errors.js";

export interface SplitCases {
  train: DatasetCase[];
  val: DatasetCase[];
  /** "datalist" when the folds came from the input, else the rule that made them. */
  source: string;
}

/** Folds the skill assigns when the dataset has none: case i (in id order) is in fold i mod 5. */
export const DEFAULT_FOLDS = 5;

/**
 * The dataset's cases and their split. A datalist's `fold` keys win (its relative paths resolve
 * against `datasetDir` when given, MONAI's data root, else the list's folder); npy2d train/ and
 * val/ folders are their own split (test/ left out); any other folder is split by id order,
 * fold = index mod 5.
 */
export async function loadSplit(
  datasetDir: string | undefined,
  datalist: string | undefined,
): Promise<SplitCases> {
  if (!datasetDir && !datalist) throw new FinetuneInputError("give dataset_dir, datalist or both");
  const read = datalist
    ? await readDataset(datalist, { format: "datalist", ...(datasetDir ? { baseDir: datasetDir } : {}) })
    : await readDataset(datasetDir as string);
  if (read.problems.length) throw new FinetuneInputError(read.problems[0] as string);
  const cases = read.cases.filter((c) => c.label !== null);
  if (cases.length === 0) throw new FinetuneInputError(`${read.root}: no labelled case`);
  const withFold = cases.filter((c) => c.fold !== undefined);
  if (datalist && withFold.length > 0) {
    if (withFold.length !== cases.length)
      throw new FinetuneInputError(
        `${datalist}: ${cases.length - withFold.length} case(s) have no "fold" while others do (fold 0 = validation, others train)`,
      );
    const val = cases.filter((c) => c.fold === 0);
    const train = cases.filter((c) => c.fold !== 0);
    if (val.length === 0)
      throw new FinetuneInputError(
        `${datalist}: no case with "fold": 0 (fold 0 is the validation set; folds present: ${[...new Set(withFold.map((c) => c.fold))].sort().join(", ")})`,
      );
    if (train.length === 0)
      throw new FinetuneInputError(`${datalist}: every case is in fold 0; no training case`);
    return { train, val, source: "datalist" };
  }
  if (datalist)
    throw new FinetuneInputError(
      `${datalist}: no case has a "fold" (fold 0 is the validation set, others train)`,
    );
  if (cases.some((c) => c.split !== undefined)) {
    // npy2d train/ val/ test/ folders: their own split; test/ is never touched
    const val = cases.filter((c) => c.split === "val");
    const train = cases.filter((c) => c.split === "train");
    if (val.length === 0)
      throw new FinetuneInputError(`${read.root}: no labelled slice in val/ (val/ validates, train/ trains)`);
    if (train.length === 0)
      throw new FinetuneInputError(
        `${read.root}: no labelled slice in train/ (val/ validates, train/ trains)`,
      );
    return { train, val, source: "the dataset's train/ and val/ folders" };
  }
  const sorted = [...cases].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  if (sorted.length < 2)
    throw new FinetuneInputError(
      `${read.root}: ${sorted.length} labelled case; need one to validate and one to train`,
    );
  const val = sorted.filter((_, i) => i % DEFAULT_FOLDS === 0);
  const train = sorted.filter((_, i) => i % DEFAULT_FOLDS !== 0);
  return { train, val, source: `id order, fold = index mod ${DEFAULT_FOLDS}` };
}

/** Every image of the split is of the kind the model takes: `.npy` slices for 2D, NIfTI for 3D. */
export function checkImageKind(split: SplitCases, spatialDims: number): void {
  for (const c of [...split.val, ...split.train])
    for (const file of c.image) {
      const slice = file.toLowerCase().endsWith(".npy");
      if (spatialDims === 2 && !slice)
        throw new FinetuneInputError(`${file}: the model is 2D and takes .npy slices, not a volume`);
      if (spatialDims !== 2 && slice)
        throw new FinetuneInputError(`${file}: the model is 3D and takes NIfTI volumes, not .npy slices`);
    }
}

export type Mapping = Array<[number, number]>;

/**
 * The mapping local label → model class. An explicit `label_mapping` is checked against the
 * model's classes (plan.dataset.labels); else `target_anatomy` names one of them (case-insensitive,
 * exact name first, else the only name containing it) and local label 1 maps to it.
 */
export function resolveMapping(
  modelLabels: Record<string, string>,
  mapping: Mapping | undefined,
  anatomy: string | undefined,
): { mapping: Mapping; source: string } {
  const classes = Object.keys(modelLabels)
    .map(Number)
    .filter((k) => k !== 0)
    .sort((a, b) => a - b);
  const known = classes.map((k) => `${k} ${JSON.stringify(modelLabels[String(k)])}`).join(", ");
  if (mapping?.length) {
    const locals = new Set<number>();
    for (const [local, cls] of mapping) {
      if (local === 0)
        throw new FinetuneInputError(`label_mapping: local label 0 is background and cannot be mapped`);
      if (!classes.includes(cls))
        throw new FinetuneInputError(
          `label_mapping: model class ${cls} (for local label ${local}) is not a class of the model; its classes: ${known}`,
        );
      if (locals.has(local))
        throw new FinetuneInputError(`label_mapping: local label ${local} is mapped twice`);
      locals.add(local);
    }
    return { mapping: mapping.map(([a, b]) => [a, b]), source: "label_mapping" };
  }
  if (!anatomy) throw new FinetuneInputError("give label_mapping or target_anatomy");
  const want = anatomy.trim().toLowerCase();
  const exact = classes.filter((k) => modelLabels[String(k)]?.toLowerCase() === want);
  const partial = classes.filter((k) => modelLabels[String(k)]?.toLowerCase().includes(want));
  const hits = exact.length ? exact : partial;
  if (hits.length === 0)
    throw new FinetuneInputError(
      `target_anatomy ${JSON.stringify(anatomy)} is not a class of the model; its classes: ${known}`,
    );
  if (hits.length > 1)
    throw new FinetuneInputError(
      `target_anatomy ${JSON.stringify(anatomy)} is ambiguous: ${hits.map((k) => `${k} ${JSON.stringify(modelLabels[String(k)])}`).join(", ")}; give label_mapping`,
    );
  return { mapping: [[1, hits[0] as number]], source: `target_anatomy ${JSON.stringify(anatomy)}` };
}
