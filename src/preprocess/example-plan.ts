// A minimal plan.json that validates against schemas/plan.schema.json, for tests and tools that
// need a plan without running analyze and plan (the training sections hold neutral defaults).
import type { PlanCase, PlanNormalization } from "./types.js";

export interface ExamplePlanOptions {
  cases: PlanCase[];
  targetSpacing: number[];
  normalization: PlanNormalization;
  labels?: Record<string, string>;
  channels?: string[];
  modality?: string;
  name?: string;
  root?: string;
}

export function examplePlan(o: ExamplePlanOptions): Record<string, unknown> {
  const dims = o.targetSpacing.length as 2 | 3;
  const ids = o.cases.map((c) => c.id);
  return {
    schema_version: 1,
    dataset: {
      name: o.name ?? "example",
      ...(o.root ? { root: o.root } : {}),
      fingerprint: "0".repeat(64),
      labels: o.labels ?? { "0": "background", "1": "foreground" },
      channels: o.channels ?? ["image"],
      modality: o.modality ?? "MR",
      cases: o.cases,
    },
    spatial_dims: dims,
    orientation: "RAS",
    target_spacing: o.targetSpacing,
    normalization: o.normalization,
    patch_size: o.targetSpacing.map(() => 32),
    network: { family: "unet" },
    loss: { name: "dice_ce" },
    optimizer: { name: "adam", lr: 1e-3 },
    schedule: { name: "constant" },
    epochs: 1,
    batch_size: 1,
    samples_per_volume: 1,
    sampler: { name: "uniform" },
    augment: [],
    ema: 0.9,
    val_every: 1,
    inference: { overlap: 0.5, mode: "gaussian", tta: false, keep_largest_component: false },
    split: { method: "holdout", seed: 0, folds: [{ fold: 0, train: ids.slice(1), val: ids.slice(0, 1) }] },
  };
}
