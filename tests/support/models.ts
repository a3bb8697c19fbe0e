// The small networks tests build packages from: seeded and fast on the CPU, the real architectures.

/** A 3-level residual UNet (4-8-16 channels), one input channel, two classes. */
export const TINY_UNET = {
  family: "unet",
  spatial_dims: 3,
  in_channels: 1,
  out_channels: 2,
  channels: [4, 8, 16],
  strides: [2, 2],
  num_res_units: 1,
};
