// Medical Segmentation Decathlon layout: dataset.json (name, modality, labels, a `training` list
// of {image, label} paths relative to the dataset folder) beside imagesTr/ and labelsTr/.
// Multi-channel tasks (BraTS) store all channels in one 4D file: one image path, several modalities.
import { isAbsolute, join, resolve } from "node:path";
import {
  caseIdOf,
  channelList,
  checkCases,
  checkFilesExist,
  imageEnding,
  isRecord,
  modalityOf,
  Problems,
  readJson,
} from "./common.js";
import { msdLabels } from "./labels.js";
import { pairSingleFiles } from "./pair.js";
import { type DatasetCase, type DatasetReadResult, emptyMeta, type ReadDatasetOptions } from "./types.js";

export async function readMsd(dir: string, opts: ReadDatasetOptions = {}): Promise<DatasetReadResult> {
  const root = resolve(dir);
  const problems = new Problems();
  const jsonPath = join(root, "dataset.json");
  const json = await readJson(jsonPath, problems);
  const meta = emptyMeta();
  let cases: DatasetCase[];
  if (isRecord(json)) {
    meta.name = typeof json.name === "string" ? json.name : null;
    meta.labels = msdLabels(json.labels, jsonPath, problems);
    meta.channelNames =
      json.modality === undefined ? [] : channelList(json.modality, jsonPath, "modality", problems);
    meta.modality = modalityOf(meta.channelNames);
  } else if (json !== null) {
    problems.add(jsonPath, "not a JSON object");
  }
  if (isRecord(json) && Array.isArray(json.training)) {
    cases = listedCases(json.training, root, jsonPath, problems);
    if (typeof json.numTraining === "number" && json.numTraining !== json.training.length)
      problems.add(
        jsonPath,
        `numTraining is ${json.numTraining} but "training" lists ${json.training.length} cases`,
      );
    await checkFilesExist(cases, problems);
  } else {
    // No usable list: still find what the folders hold, so one pass reports everything.
    if (isRecord(json)) problems.add(jsonPath, `no "training" list; pairing imagesTr/ and labelsTr/ by name`);
    cases = await pairSingleFiles(join(root, "imagesTr"), join(root, "labelsTr"), problems);
  }
  checkCases(cases, problems, opts.requireLabels ?? true);
  meta.fileEnding = cases[0] ? imageEnding(cases[0].image[0] ?? "") || null : null;
  return { format: "msd", root, meta, cases, problems: problems.lines };
}

/** The `training` entries as cases; malformed entries are problems, not exceptions. */
function listedCases(entries: unknown[], root: string, file: string, problems: Problems): DatasetCase[] {
  const cases: DatasetCase[] = [];
  entries.forEach((entry, i) => {
    const where = `"training"[${i}]`;
    if (!isRecord(entry) || typeof entry.image !== "string" || entry.image === "") {
      problems.add(file, `${where}: expected {"image": path, "label": path}, got ${JSON.stringify(entry)}`);
      return;
    }
    const label = typeof entry.label === "string" && entry.label !== "" ? entry.label : null;
    if (entry.label !== undefined && entry.label !== null && label === null)
      problems.add(file, `${where}: "label" is not a path (${JSON.stringify(entry.label)})`);
    const image = at(root, entry.image);
    cases.push({ id: caseIdOf(image), image: [image], label: label === null ? null : at(root, label) });
  });
  return cases;
}

function at(root: string, p: string): string {
  return isAbsolute(p) ? p : join(root, p);
}
