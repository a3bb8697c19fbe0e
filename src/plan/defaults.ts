// The defaults: the heart reference of DESIGN.md (MSD Task02, 5-fold KFold seed 42, residual UNet
// 16-256, DiceCE, label sampler 0.5/0.5, Adam 1e-3 one-cycle, 20 epochs, EMA 0.9, TTA, hann).
import type { Inference, JsonObject } from "./types.js";

/** medpipe.nets UNet: channels 16-32-64-128-256, strides 2, two residual units, instance norm, PReLU. */
export function defaultNetwork(spatialDims: 2 | 3, inChannels: number, outChannels: number): JsonObject {
  return {
    family: "unet",
    spatial_dims: spatialDims,
    in_channels: inChannels,
    out_channels: outChannels,
    channels: [16, 32, 64, 128, 256],
    strides: [2, 2, 2, 2],
    num_res_units: 2,
    norm: { name: "instance", affine: false },
    act: { name: "prelu" },
    dropout: 0,
  };
}

/** Dice + cross-entropy, background excluded from the Dice, Dice over the whole batch. */
export const DEFAULT_LOSS: JsonObject = {
  name: "dice_ce",
  include_background: false,
  batch: true,
  lambda_dice: 1,
  lambda_ce: 1,
};

/**
 * fastai's Adam, the heart reference's (a Learner's defaults): decoupled weight decay 0.01, which
 * the trainer keeps off biases and normalization layers (wd_bn_bias=False); its betas 0.9/0.99
 * and eps 1e-5 are the trainer's defaults.
 */
export const DEFAULT_OPTIMIZER: JsonObject = { name: "adamw", lr: 1e-3, weight_decay: 0.01 };
export const DEFAULT_SCHEDULE: JsonObject = { name: "one_cycle" };

export const DEFAULT_TRAINING = {
  epochs: 20,
  batch_size: 4,
  samples_per_volume: 8,
  ema: 0.9,
  val_every: 1,
  validate_on: "patches",
} as const;

export const DEFAULT_INFERENCE: Inference = {
  overlap: 0.5,
  mode: "hann",
  sw_batch_size: 4,
  tta: true,
  keep_largest_component: true,
  threshold: null,
};

export const DEFAULT_SPLIT = { method: "kfold" as const, k: 5, seed: 42, holdout_fraction: 0.2 };

/**
 * The batched GPU augmentations of the trainer (medpipe.augment): flips on every spatial axis,
 * a mild affine, gamma, noise, blur, bias field and intensity shift.
 */
export function defaultAugment(spatialDims: 2 | 3): JsonObject[] {
  return [
    { name: "flip", axes: spatialDims === 3 ? [0, 1, 2] : [0, 1], p: 0.5 },
    { name: "affine", rotate: 0.26, scale: 0.1, translate: 0, p: 0.2 },
    { name: "gamma", range: [0.7, 1.5], p: 0.3 },
    { name: "noise", std: 0.1, p: 0.15 },
    { name: "blur", sigma: [0.5, 1.0], p: 0.2 },
    { name: "bias_field", coeff: 0.3, p: 0.1 },
    { name: "shift", offset: 0.1, p: 0.5 },
  ];
}
