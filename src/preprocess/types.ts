// The data shapes of preprocessing: the part of plan.json it reads, one job per case, the
// per-case properties.json (schemas/preprocessed.md) and the summary a case returns.

import type { CanonicalTransform } from "../imaging/orientation.js";
import type { Affine } from "../imaging/types.js";
import type { Plan, Normalization as PlanNormalization } from "../plan/types.js";

export type { Normalization as PlanNormalization, PlanCase } from "../plan/types.js";

/** The fields of plan.json that preprocessing depends on (the file is validated whole). */
export type PreprocessPlan = Pick<
  Plan,
  "dataset" | "spatial_dims" | "orientation" | "target_spacing" | "normalization"
>;

/**
 * Everything one worker needs for one case; plain JSON so it crosses a thread boundary.
 * Paths are absolute.
 */
export interface CaseJob {
  id: string;
  image: string[];
  label: string | null;
  /** The case's folder inside data/ (created by the job). */
  outDir: string;
  spatialDims: 2 | 3;
  targetSpacing: number[];
  normalization: PlanNormalization;
  /** Number of image channels the plan declares. */
  channels: number;
  /** Label values the plan declares (keys of plan.dataset.labels). */
  labelValues: number[];
}

/** Statistics a channel was normalized with. */
export interface ChannelStats {
  mean: number;
  std: number;
  /** Voxels the statistics were computed over (0 for dataset-level CT statistics or "none"). */
  count: number;
}

/**
 * properties.json, exactly as schemas/preprocessed.md lists it, plus (compatible additions)
 * `spatial_dims`, `canonical_affine`, `resampled_affine` and per-channel statistics.
 * Affines are 4x4 row-major flattened to 16 numbers, like `Image.affine`.
 */
export interface CaseProperties {
  original_shape: number[];
  original_spacing: number[];
  original_affine: Affine;
  canonical: CanonicalTransform;
  canonical_shape: number[];
  canonical_spacing: number[];
  resampled_shape: number[];
  target_spacing: number[];
  nearest_axis: number | null;
  normalization: {
    scheme: PlanNormalization["scheme"];
    over?: PlanNormalization["over"];
    /** Channel 0's statistics (the contract's single mean/std); `channels` has every channel. */
    mean: number;
    std: number;
    clip?: number[];
    channels: ChannelStats[];
  };
  source: { image: string[]; label: string | null };
  spatial_dims: 2 | 3;
  /** Voxel → world of the canonical grid and of the preprocessed grid (identity-based in 2D). */
  canonical_affine: Affine;
  resampled_affine: Affine;
}

/** Seconds spent per step of one case. */
export interface CaseTimings {
  /** Reading and reorienting to canonical RAS. */
  read: number;
  resample: number;
  normalize: number;
  write: number;
  total: number;
}

/** What one case reports back to the orchestrator (and into output.json). */
export interface CaseSummary {
  id: string;
  /** Orientation codes of the source image, e.g. ["L", "P", "S"] (["-", "-"] for 2D slices). */
  orientation: string[];
  original_shape: number[];
  original_spacing: number[];
  canonical_shape: number[];
  resampled_shape: number[];
  target_spacing: number[];
  nearest_axis: number | null;
  channels: ChannelStats[];
  /** Label value (as a string) → voxels on the preprocessed grid; null for unlabelled cases. */
  label_voxels: Record<string, number> | null;
  image: string;
  label: string | null;
  seconds: CaseTimings;
}
