// Dataset readers: a folder or list file → a plain list of cases plus the dataset's metadata, with
// every problem found collected as one line (never an exception for bad data).
import { resolve } from "node:path";
import { readCsv } from "./csv.js";
import { readDatalist } from "./datalist.js";
import { detectFormat } from "./detect.js";
import { readMsd } from "./msd.js";
import { readNnunet } from "./nnunet.js";
import { readNpy2d } from "./npy2d.js";
import { type DatasetFormat, type DatasetReadResult, emptyMeta, type ReadDatasetOptions } from "./types.js";

export { caseIdOf } from "./common.js";
export { parseCsv } from "./csv-parse.js";
export { detectFormat } from "./detect.js";
export { NPY_IMAGE_SUFFIX, NPY_LABEL_SUFFIX } from "./npy2d.js";
export type * from "./types.js";
export { readCsv, readDatalist, readMsd, readNnunet, readNpy2d };

const READERS: Record<DatasetFormat, (path: string, opts: ReadDatasetOptions) => Promise<DatasetReadResult>> =
  {
    msd: readMsd,
    nnunet: readNnunet,
    datalist: readDatalist,
    csv: readCsv,
    npy2d: readNpy2d,
  };

/**
 * Reads a dataset: an MSD or nnU-Net raw folder, a MONAI-style datalist JSON, a CSV of
 * image/label paths, or a folder of 2D `.npy` pairs; the layout is detected unless `opts.format`
 * names it. Paths in the result are absolute; problems are `<file>: <what>` lines.
 */
export async function readDataset(
  pathOrFile: string,
  opts: ReadDatasetOptions = {},
): Promise<DatasetReadResult> {
  const path = resolve(pathOrFile);
  if (opts.format) return READERS[opts.format](path, opts);
  const detected = await detectFormat(path, opts);
  if (!detected) {
    return {
      format: null,
      root: path,
      meta: emptyMeta(),
      cases: [],
      problems: [
        `${path}: not a dataset (expected a folder with imagesTr/ or *_T1w.npy files, a datalist .json or a .csv)`,
      ],
    };
  }
  return READERS[detected.format](detected.path, opts);
}
