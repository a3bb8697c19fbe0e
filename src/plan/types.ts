// plan.json as TypeScript (schemas/plan.schema.json is the contract) and the overrides the plan
// skill accepts, one per plan field.
import type { Fold } from "./split.js";

export type JsonObject = { [key: string]: JsonValue };
export type JsonValue = string | number | boolean | null | JsonValue[] | JsonObject;

export type SplitMethod = "kfold" | "stratified" | "group" | "holdout" | "predefined";

export interface Normalization {
  scheme: "zscore" | "ct" | "none";
  over?: "all" | "nonzero" | "above_mean";
  clip?: number[];
  mean?: number;
  std?: number;
}

export interface PlanCase {
  id: string;
  image: string[];
  label: string | null;
  group?: string;
}

export interface Split {
  method: SplitMethod;
  k?: number;
  seed: number;
  stratify_by?: string;
  group_by?: string;
  holdout_fraction?: number;
  /** Fraction of the cases set aside as a test set before the folds are made (absent: none). */
  test_fraction?: number;
  /**
   * The test cases (test_fraction's draw, or a predefined split's test/ cases): in no fold and
   * not in dataset.cases, so no training stage can see them.
   */
  test_cases?: string[];
  /** The analysed cases the plan was restricted to before anything else (absent: all of them). */
  subset?: Subset;
  folds: Fold[];
}

/**
 * MONAI's DecathlonDataset sections: numpy's `RandomState(seed)` shuffles the case indices, the
 * first ⌊n × val_frac⌋ are its "validation" section, the rest its "training" section, each in
 * that shuffled order (which is what a KFold over the section then sees).
 */
export interface Subset {
  name: SubsetName;
  seed: number;
  val_frac: number;
  /** The analysed cases left out, in the order MONAI lists them. */
  left_out: string[];
}

export type SubsetName = "monai-training" | "monai-validation";
/** What the validation Dice is pooled over during training (src/py/medpipe/train.py). */
export type ValidateOn = "patches" | "volumes";

export interface Inference {
  overlap: number;
  mode: "hann" | "gaussian" | "constant";
  sw_batch_size: number;
  tta: boolean;
  keep_largest_component: boolean;
  threshold: number | null;
}

export interface Plan {
  schema_version: 1;
  dataset: {
    name: string;
    root: string;
    fingerprint: string;
    labels: Record<string, string>;
    channels: string[];
    modality: string;
    cases: PlanCase[];
  };
  spatial_dims: 2 | 3;
  orientation: "RAS";
  target_spacing: number[];
  normalization: Normalization;
  patch_size: number[];
  network: JsonObject;
  loss: JsonObject;
  optimizer: JsonObject;
  schedule: JsonObject;
  epochs: number;
  batch_size: number;
  samples_per_volume: number;
  sampler: { name: "label" | "uniform"; probabilities: number[] | null };
  augment: JsonObject[];
  ema: number;
  val_every: number;
  validate_on: ValidateOn;
  early_stopping: { patience: number } | null;
  inference: Inference;
  split: Split;
}

/** Every plan field the manifest may set (the plan skill's inputs, less `analysis`). */
export interface PlanOverrides {
  name?: string;
  modality?: string;
  labels?: Record<string, string>;
  channels?: string[];
  target_spacing?: number[];
  patch_size?: number[];
  normalization?: Partial<Normalization>;
  network?: JsonObject;
  loss?: JsonObject;
  optimizer?: JsonObject;
  lr?: number;
  schedule?: JsonObject;
  epochs?: number;
  batch_size?: number;
  samples_per_volume?: number;
  sampler?: { name?: "label" | "uniform"; probabilities?: number[] | null };
  augment?: JsonObject[];
  ema?: number;
  val_every?: number;
  validate_on?: ValidateOn;
  early_stopping?: { patience: number } | null;
  inference?: Partial<Inference>;
  split?: SplitMethod;
  folds?: number;
  split_seed?: number;
  stratify_by?: string;
  group_by?: string;
  holdout_fraction?: number;
  test_fraction?: number;
  subset?: SubsetName;
  subset_seed?: number;
}
