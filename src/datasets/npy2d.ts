// 2D slices as .npy pairs: `X_T1w.npy` with its label `X_T1w_tissue_segmentation.npy`, either in
// one folder or split into train/ val/ test/ sub-folders (or the 2D tissue reference's own names,
// training_data/ validation_data/ test_data/).
// An optional dataset.json (MSD-style name, labels, modality) supplies the metadata.
import { join, resolve } from "node:path";
import {
  channelList,
  checkCases,
  isRecord,
  kindOf,
  listNames,
  modalityOf,
  Problems,
  readJson,
} from "./common.js";
import { msdLabels } from "./labels.js";
import { type DatasetCase, type DatasetReadResult, emptyMeta, type ReadDatasetOptions } from "./types.js";

/** The splits, in this order, and the folder names each may have: ours, then the 2D tissue reference's. */
export const NPY_SPLIT_FOLDERS: Record<string, string[]> = {
  train: ["train", "training_data"],
  val: ["val", "validation_data"],
  test: ["test", "test_data"],
};
export const NPY_IMAGE_SUFFIX = "_T1w.npy";
export const NPY_LABEL_SUFFIX = "_T1w_tissue_segmentation.npy";

export async function readNpy2d(dir: string, opts: ReadDatasetOptions = {}): Promise<DatasetReadResult> {
  const root = resolve(dir);
  const problems = new Problems();
  const meta = emptyMeta();
  meta.fileEnding = ".npy";
  const jsonPath = join(root, "dataset.json");
  if ((await kindOf(jsonPath)) === "file") {
    const json = await readJson(jsonPath, problems);
    if (isRecord(json)) {
      meta.name = typeof json.name === "string" ? json.name : null;
      meta.labels = msdLabels(json.labels, jsonPath, problems);
      if (json.modality !== undefined)
        meta.channelNames = channelList(json.modality, jsonPath, "modality", problems);
    } else if (json !== null) problems.add(jsonPath, "not a JSON object");
  }
  meta.modality = modalityOf(meta.channelNames);
  if (meta.channelNames.length === 0) meta.channelNames = ["channel 0"];

  const splits: Array<[string | undefined, string]> = [];
  for (const [s, names] of Object.entries(NPY_SPLIT_FOLDERS)) {
    const found: string[] = [];
    for (const name of names) if ((await kindOf(join(root, name))) === "dir") found.push(name);
    if (found.length > 1) problems.add(root, `${found.join("/ and ")}/ are both the ${s} split: keep one`);
    for (const name of found) splits.push([s, join(root, name)]);
  }
  if (splits.length === 0) splits.push([undefined, root]);
  const cases: DatasetCase[] = [];
  for (const [split, folder] of splits) cases.push(...(await pairFolder(folder, split, opts, problems)));
  checkCases(cases, problems, opts.requireLabels ?? true);
  return { format: "npy2d", root, meta, cases, problems: problems.lines };
}

async function pairFolder(
  dir: string,
  split: string | undefined,
  opts: ReadDatasetOptions,
  problems: Problems,
): Promise<DatasetCase[]> {
  const imageSuffix = opts.npyImageSuffix ?? NPY_IMAGE_SUFFIX;
  const labelSuffix = opts.npyLabelSuffix ?? NPY_LABEL_SUFFIX;
  const names = (await listNames(dir)) ?? [];
  const labels = new Set(names.filter((n) => n.endsWith(labelSuffix)));
  const unmatched = new Set(labels);
  const cases: DatasetCase[] = [];
  for (const name of names) {
    if (labels.has(name) || !name.endsWith(".npy")) continue;
    if (!name.endsWith(imageSuffix)) {
      problems.add(join(dir, name), `neither an image (*${imageSuffix}) nor a label (*${labelSuffix})`);
      continue;
    }
    const id = name.slice(0, -imageSuffix.length);
    const label = `${id}${labelSuffix}`;
    const found = unmatched.delete(label);
    const c: DatasetCase = { id, image: [join(dir, name)], label: found ? join(dir, label) : null };
    if (split !== undefined) c.split = split;
    cases.push(c);
  }
  for (const name of unmatched)
    problems.add(
      join(dir, name),
      `label without image (expected ${name.slice(0, -labelSuffix.length)}${imageSuffix})`,
    );
  return cases;
}
