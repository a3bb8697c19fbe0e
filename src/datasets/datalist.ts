// MONAI-style datalist JSON (what `load_decathlon_datalist` reads): {"training": [{"image": path
// or [paths], "label": path, "fold": 0}, ...], "validation": [...], "testing": [...]}. Relative
// paths resolve against the base dir, by default the JSON file's folder (MONAI's rule).
import { dirname, isAbsolute, join, resolve } from "node:path";
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
import { type DatasetCase, type DatasetReadResult, emptyMeta, type ReadDatasetOptions } from "./types.js";

export async function readDatalist(file: string, opts: ReadDatasetOptions = {}): Promise<DatasetReadResult> {
  const path = resolve(file);
  const root = resolve(opts.baseDir ?? dirname(path));
  const key = opts.datalistKey ?? "training";
  const problems = new Problems();
  const meta = emptyMeta();
  const json = await readJson(path, problems);
  const cases: DatasetCase[] = [];
  if (json !== null && !isRecord(json)) problems.add(path, "not a JSON object");
  if (isRecord(json)) {
    // Datalists written from an MSD dataset.json keep its metadata; use it when present.
    meta.name = typeof json.name === "string" ? json.name : null;
    meta.labels = msdLabels(json.labels, path, problems);
    if (json.modality !== undefined)
      meta.channelNames = channelList(json.modality, path, "modality", problems);
    const list = json[key];
    if (!Array.isArray(list)) problems.add(path, `no "${key}" list`);
    else
      list.forEach((entry, i) => {
        const c = entryCase(entry, `"${key}"[${i}]`, root, path, problems);
        if (c) cases.push(c);
      });
  }
  await checkFilesExist(cases, problems);
  checkCases(cases, problems, opts.requireLabels ?? key !== "testing");
  // Without a modality dict the channels are only counted; the modality stays unknown.
  meta.modality = modalityOf(meta.channelNames);
  if (meta.channelNames.length === 0 && cases[0])
    meta.channelNames = cases[0].image.map((_, i) => `channel ${i}`);
  meta.fileEnding = cases[0] ? imageEnding(cases[0].image[0] ?? "") || null : null;
  return { format: "datalist", root, meta, cases, problems: problems.lines };
}

/** One entry → a case; a bare string is an unlabeled image (MONAI's test lists). */
function entryCase(
  entry: unknown,
  where: string,
  root: string,
  file: string,
  problems: Problems,
): DatasetCase | null {
  const at = (p: string): string => (isAbsolute(p) ? p : join(root, p));
  if (typeof entry === "string" && entry !== "")
    return { id: caseIdOf(entry), image: [at(entry)], label: null };
  if (!isRecord(entry)) {
    problems.add(file, `${where}: expected an object with "image", got ${JSON.stringify(entry)}`);
    return null;
  }
  const raw = entry.image;
  const images = typeof raw === "string" ? [raw] : Array.isArray(raw) ? raw : [];
  if (images.length === 0 || !images.every((p): p is string => typeof p === "string" && p !== "")) {
    problems.add(file, `${where}: "image" must be a path or a list of paths, got ${JSON.stringify(raw)}`);
    return null;
  }
  const c: DatasetCase = {
    id: typeof entry.id === "string" && entry.id !== "" ? entry.id : caseIdOf(images[0]!),
    image: images.map(at),
    label: null,
  };
  if (typeof entry.label === "string" && entry.label !== "") c.label = at(entry.label);
  else if (entry.label !== undefined && entry.label !== null)
    problems.add(file, `${where}: "label" is not a path (${JSON.stringify(entry.label)})`);
  if (entry.fold !== undefined) {
    if (typeof entry.fold === "number" && Number.isInteger(entry.fold) && entry.fold >= 0)
      c.fold = entry.fold;
    else
      problems.add(
        file,
        `${where}: "fold" must be a non-negative integer, got ${JSON.stringify(entry.fold)}`,
      );
  }
  if (typeof entry.group === "string" || typeof entry.group === "number") c.group = String(entry.group);
  return c;
}
