// Which reader a path needs, decided from what is there (no image is opened).
import { readFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { isRecord, kindOf, listNames } from "./common.js";
import { NPY_IMAGE_SUFFIX, NPY_SPLIT_FOLDERS } from "./npy2d.js";
import type { DatasetFormat, ReadDatasetOptions } from "./types.js";

export interface Detected {
  format: DatasetFormat;
  /** The folder (msd, nnunet, npy2d) or file (datalist, csv) to hand the reader. */
  path: string;
}

/**
 * - a `.csv`/`.tsv` file → csv; a `dataset.json` beside imagesTr/ → its folder; another `.json` → datalist;
 * - a folder with imagesTr/ → nnU-Net when dataset.json has `channel_names` or `file_ending`, or, without
 *   a readable dataset.json, when every image has a `_XXXX` channel suffix; MSD otherwise;
 * - a folder with `*_T1w.npy` files (or train/ val/ test/ folders of them) → npy2d;
 * - a folder with only a dataset.json → that file as a datalist.
 * Null when nothing fits.
 */
export async function detectFormat(path: string, opts: ReadDatasetOptions = {}): Promise<Detected | null> {
  const kind = await kindOf(path);
  if (kind === "file") {
    const lower = path.toLowerCase();
    if (lower.endsWith(".csv") || lower.endsWith(".tsv")) return { format: "csv", path };
    if (!lower.endsWith(".json")) return null;
    if (basename(lower) === "dataset.json" && (await kindOf(join(dirname(path), "imagesTr"))) === "dir")
      return detectFormat(dirname(path), opts);
    return { format: "datalist", path };
  }
  if (kind !== "dir") return null;
  if ((await kindOf(join(path, "imagesTr"))) === "dir")
    return { format: (await looksNnunet(path)) ? "nnunet" : "msd", path };
  const suffix = opts.npyImageSuffix ?? NPY_IMAGE_SUFFIX;
  for (const folder of [
    path,
    ...Object.values(NPY_SPLIT_FOLDERS)
      .flat()
      .map((s) => join(path, s)),
  ])
    if ((await listNames(folder))?.some((n) => n.endsWith(suffix))) return { format: "npy2d", path };
  if ((await kindOf(join(path, "dataset.json"))) === "file")
    return { format: "datalist", path: join(path, "dataset.json") };
  return null;
}

async function looksNnunet(dir: string): Promise<boolean> {
  try {
    const json: unknown = JSON.parse(await readFile(join(dir, "dataset.json"), "utf8"));
    if (isRecord(json)) return json.channel_names !== undefined || json.file_ending !== undefined;
  } catch {
    // Unreadable: the reader will say so; decide from the file names.
  }
  const names = (await listNames(join(dir, "imagesTr"))) ?? [];
  const images = names.filter((n) => /\.(nii(\.gz)?|nrrd|mha|npy)$/i.test(n));
  return images.length > 0 && images.every((n) => /_\d{4}\.[^_]+$/.test(n));
}
