/** The layouts `readDataset` understands. */
export type DatasetFormat = "msd" | "nnunet" | "datalist" | "csv" | "npy2d";

/**
 * One case: its image as a list of channel files (one file for a 3D image or a multi-channel 4D
 * file; one file per channel in nnU-Net's layout), its label file (null when there is none), and
 * the optional split information the source carried. Paths are absolute.
 */
export interface DatasetCase {
  id: string;
  image: string[];
  label: string | null;
  /** A fold assigned by the source (datalist `fold` key, CSV fold column). */
  fold?: number;
  /** A grouping key (patient, site) that CV must not split (datalist/CSV `group`). */
  group?: string;
  /** The source's own split, where its layout has one (npy2d `train`/`val`/`test` folders). */
  split?: string;
}

/** What the source says about the dataset as a whole. */
export interface DatasetMeta {
  name: string | null;
  /** Label value (as a decimal string) → name, e.g. { "0": "background", "1": "left atrium" }. */
  labels: Record<string, string>;
  /** nnU-Net region labels (name → the label values it unites); absent when there are none. */
  regions?: Record<string, number[]>;
  /** One name per image channel, in channel order (MSD `modality`, nnU-Net `channel_names`). */
  channelNames: string[];
  /** The imaging modality the channels suggest: "CT", "MR", another name, or null when unknown. */
  modality: string | null;
  /** The file ending of image files, e.g. ".nii.gz" or ".npy". */
  fileEnding: string | null;
}

/** `readDataset`'s answer: every case it could make out and every problem, one line each. */
export interface DatasetReadResult {
  format: DatasetFormat | null;
  /** The folder paths were resolved against (the dataset folder, or the list file's folder / base dir). */
  root: string;
  meta: DatasetMeta;
  cases: DatasetCase[];
  /** `<file>: <what is wrong>`, one per problem, in the order found. Empty when all is well. */
  problems: string[];
}

export interface ReadDatasetOptions {
  /** Skip auto-detection. */
  format?: DatasetFormat;
  /** Datalist and CSV: resolve relative paths against this folder instead of the list file's. */
  baseDir?: string;
  /** Datalist: which list to read; default "training". */
  datalistKey?: string;
  /** CSV: image column(s), several for multi-channel cases; default ["image"]. */
  imageColumns?: string[];
  /** CSV: label column; default "label". */
  labelColumn?: string;
  /** CSV: optional id / fold / group columns; defaults "id", "fold", "group" (used when present). */
  idColumn?: string;
  foldColumn?: string;
  groupColumn?: string;
  /** npy2d: file name endings of images and labels; defaults "_T1w.npy", "_T1w_tissue_segmentation.npy". */
  npyImageSuffix?: string;
  npyLabelSuffix?: string;
  /** Whether a case without a label is a problem; default true (training data). */
  requireLabels?: boolean;
}

export function emptyMeta(): DatasetMeta {
  return { name: null, labels: {}, channelNames: [], modality: null, fileEnding: null };
}
