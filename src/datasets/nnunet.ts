// nnU-Net v2 raw layout: imagesTr/CASE_XXXX<ending> (one file per channel, XXXX the 4-digit
// channel index), labelsTr/CASE<ending>, and dataset.json with channel_names, labels
// (name → value) and file_ending. Case ids come from the file names, not from a list.
import { join, resolve } from "node:path";
import {
  channelList,
  checkCases,
  imageEnding,
  isRecord,
  listNames,
  modalityOf,
  Problems,
  readJson,
} from "./common.js";
import { nnunetLabels } from "./labels.js";
import { labelFiles } from "./pair.js";
import { type DatasetCase, type DatasetReadResult, emptyMeta, type ReadDatasetOptions } from "./types.js";

export async function readNnunet(dir: string, opts: ReadDatasetOptions = {}): Promise<DatasetReadResult> {
  const root = resolve(dir);
  const problems = new Problems();
  const jsonPath = join(root, "dataset.json");
  const json = await readJson(jsonPath, problems);
  const meta = emptyMeta();
  const imagesDir = join(root, "imagesTr");
  const labelsDir = join(root, "labelsTr");
  const names = await listNames(imagesDir);
  if (names === null) problems.add(imagesDir, "folder missing or unreadable");

  if (isRecord(json)) {
    meta.name = typeof json.name === "string" ? json.name : null;
    // nnU-Net v1 datasets converted by hand sometimes still say "modality".
    const key = json.channel_names !== undefined ? "channel_names" : "modality";
    meta.channelNames = channelList(json[key], jsonPath, key, problems);
    const { labels, regions } = nnunetLabels(json.labels, jsonPath, problems);
    meta.labels = labels;
    if (Object.keys(regions).length > 0) meta.regions = regions;
    if (typeof json.file_ending === "string" && json.file_ending !== "") meta.fileEnding = json.file_ending;
    else problems.add(jsonPath, `"file_ending" missing; assuming the images' own ending`);
  } else if (json !== null) {
    problems.add(jsonPath, "not a JSON object");
  }
  meta.fileEnding ??= names?.map(imageEnding).find((e) => e !== "") ?? ".nii.gz";
  meta.modality = modalityOf(meta.channelNames);

  const cases = groupChannels(names ?? [], imagesDir, meta.fileEnding, meta.channelNames.length, problems);
  const labels = await labelFiles(labelsDir, problems);
  for (const c of cases) {
    const name = labels.get(c.id);
    labels.delete(c.id);
    c.label = name ? join(labelsDir, name) : null;
  }
  for (const [id, name] of labels) problems.add(join(labelsDir, name), `label without image (case ${id})`);
  if (isRecord(json) && typeof json.numTraining === "number" && json.numTraining !== cases.length)
    problems.add(jsonPath, `numTraining is ${json.numTraining} but imagesTr/ holds ${cases.length} cases`);
  checkCases(cases, problems, opts.requireLabels ?? true);
  return { format: "nnunet", root, meta, cases, problems: problems.lines };
}

/** Groups CASE_XXXX files into cases with their channels in order; gaps and strays are problems. */
function groupChannels(
  names: string[],
  dir: string,
  ending: string,
  declared: number,
  problems: Problems,
): DatasetCase[] {
  const byCase = new Map<string, Map<number, string>>();
  const pattern = /^(.+)_(\d{4})$/;
  for (const name of names) {
    if (!name.endsWith(ending)) {
      if (imageEnding(name) !== "") problems.add(join(dir, name), `ending is not file_ending ${ending}`);
      continue;
    }
    const m = pattern.exec(name.slice(0, -ending.length));
    if (!m) {
      problems.add(join(dir, name), `not named CASE_XXXX${ending} (4-digit channel index)`);
      continue;
    }
    const channels = byCase.get(m[1]!) ?? new Map<number, string>();
    channels.set(Number(m[2]), join(dir, name));
    byCase.set(m[1]!, channels);
  }
  const cases: DatasetCase[] = [];
  for (const [id, channels] of byCase) {
    const count = declared > 0 ? declared : Math.max(...channels.keys()) + 1;
    const image: string[] = [];
    for (let c = 0; c < count; c++) {
      const file = channels.get(c);
      if (file) image.push(file);
      else
        problems.add(
          join(dir, `${id}_${String(c).padStart(4, "0")}${ending}`),
          `channel ${c} of case ${id} missing`,
        );
    }
    for (const [c, file] of channels)
      if (c >= count)
        problems.add(file, `channel ${c} of case ${id} beyond the ${count} declared in channel_names`);
    cases.push({ id, image, label: null });
  }
  return cases;
}
