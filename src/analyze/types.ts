// The data shapes of a dataset analysis: the settings it ran with, one record per case, the
// problems found, the summary and the suggestions. Everything here is plain JSON (fingerprint.json).
import type { DatasetFormat } from "../datasets/types.js";
import type { IntensityStatistics } from "../imaging/normalize.js";
import type { Affine, Dtype } from "../imaging/types.js";

export type SpacingRule = "nnunet" | "most_common";

/** What the analysis was asked to do; enters the content fingerprint. */
export interface AnalysisSettings {
  target_spacing_rule: SpacingRule;
  /** Label values every label file may contain; null: the dataset's declared labels (if any). */
  labels_expected: number[] | null;
  format: DatasetFormat | null;
  /** An image/label affine pair further apart than this (mm, at any grid corner) is an error. */
  affine_tolerance_mm: number;
  /** max/min spacing above which an axis counts as anisotropic (nnU-Net: 3). */
  anisotropy_threshold: number;
  /** Foreground intensities drawn per case for the dataset statistics (nnU-Net: 10 000). */
  foreground_samples_per_case: number;
  /** Patch rule: multiple, lower and upper clamp. */
  patch_multiple: number;
  patch_min: number;
  patch_max: number;
}

export const DEFAULT_SETTINGS: AnalysisSettings = {
  target_spacing_rule: "nnunet",
  labels_expected: null,
  format: null,
  affine_tolerance_mm: 1e-3,
  anisotropy_threshold: 3,
  foreground_samples_per_case: 10_000,
  patch_multiple: 16,
  patch_min: 32,
  patch_max: 256,
};

export type Severity = "error" | "warning";

export type ProblemCheck =
  | "dataset"
  | "unreadable"
  | "shape-mismatch"
  | "affine-mismatch"
  | "channel-mismatch"
  | "label-values"
  | "label-not-integer"
  | "empty-label"
  | "non-finite"
  | "mixed-orientation"
  | "label-unused";

/** One problem, one line: `message` always starts with the file it is about. */
export interface Problem {
  severity: Severity;
  check: ProblemCheck;
  case: string | null;
  file: string;
  message: string;
}

/** A file that was read, with its content digest (the fingerprint is built from these). */
export interface FileRecord {
  role: string;
  path: string;
  sha256: string | null;
  bytes: number | null;
}

/** Intensity statistics of one channel of one case (exact, over every selected finite voxel). */
export interface ChannelStatistics {
  channel: number;
  /** "foreground": voxels where the label is non-zero; "all": the case has no label. */
  over: "foreground" | "all";
  count: number;
  mean: number | null;
  std: number | null;
  min: number | null;
  max: number | null;
  p00_5: number | null;
  p50: number | null;
  p99_5: number | null;
  /** NaN or infinite voxels in the whole channel (excluded from the statistics). */
  non_finite: number;
}

/** One label value present in a case's label file. */
export interface LabelStatistics {
  value: number;
  voxels: number;
  volume_mm3: number;
  /** Connected components, face connectivity (scipy.ndimage.label's default); 0 for the background. */
  components: number;
}

export interface CaseRecord {
  id: string;
  image: string[];
  label: string | null;
  group?: string;
  fold?: number;
  /** The source's own split (npy2d `train`/`val`/`test` folders); plan's `split: predefined` reads it. */
  split?: string;
  /**
   * 0-based position in the dataset's own listing (MSD: dataset.json's `training` list), the order
   * a tool reading that listing sees (plan's `subset` follows MONAI through it); cases themselves
   * are sorted by id.
   */
  listed?: number;
  files: FileRecord[];
  /** False when the image could not be read: the fields below are then null. */
  readable: boolean;
  shape: number[] | null;
  spacing: number[] | null;
  affine: Affine | null;
  axis_codes: string[] | null;
  orientation: string | null;
  dtype: Dtype | null;
  channels: number | null;
  /** Shape and spacing after reorientation to closest-canonical RAS (what preprocess resamples). */
  canonical_shape: number[] | null;
  canonical_spacing: number[] | null;
  intensity: ChannelStatistics[];
  label_dtype: Dtype | null;
  labels: LabelStatistics[];
  foreground_voxels: number | null;
  foreground_volume_mm3: number | null;
  foreground_components: number | null;
}

/** min / median / max (and p10 / p90) per axis, numpy's definitions. */
export interface AxisStatistics {
  min: number[];
  median: number[];
  max: number[];
  p10: number[];
  p90: number[];
}

export interface ScalarStatistics {
  min: number;
  median: number;
  max: number;
}

export interface LabelSummary {
  value: number;
  name: string | null;
  /** Cases whose label file contains the value. */
  cases: number;
  voxels: number;
  volume_mm3: ScalarStatistics | null;
  components: ScalarStatistics | null;
}

export interface AnalysisSummary {
  cases: number;
  readable_cases: number;
  labelled_cases: number;
  spatial_dims: 2 | 3 | null;
  channels: number | null;
  orientations: Record<string, number>;
  dtypes: Record<string, number>;
  /** Canonical (RAS) spacing and shape across readable cases. */
  spacing: AxisStatistics | null;
  shape: AxisStatistics | null;
  /** Per channel: pooled per-case foreground samples (nnU-Net's dataset statistics; CT normalization). */
  intensity: IntensityStatistics[];
  labels: LabelSummary[];
  foreground_volume_mm3: ScalarStatistics | null;
}

export interface Suggestions {
  target_spacing: number[] | null;
  target_spacing_rule: SpacingRule;
  /** The axis the target spacing treats as anisotropic (nnU-Net rule), or null. */
  anisotropic_axis: number | null;
  resampled_size: AxisStatistics | null;
  patch_size: number[] | null;
  patch_reasons: string[];
}

/** fingerprint.json. */
export interface Analysis {
  schema_version: 1;
  dataset: {
    name: string;
    root: string;
    format: DatasetFormat | null;
    modality: string | null;
    channels: string[];
    labels: Record<string, string>;
  };
  settings: AnalysisSettings;
  fingerprint: string;
  cases: CaseRecord[];
  summary: AnalysisSummary;
  suggestions: Suggestions;
  problems: Problem[];
  errors: number;
  warnings: number;
}
