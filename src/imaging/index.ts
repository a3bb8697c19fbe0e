export * from "./affine.js";
export { ImageReadError, ImageWriteError } from "./errors.js";
export type { NiftiHeader } from "./nifti-header.js";
export { type NiftiImage, type NiftiReadOptions, readNifti, readNiftiHeader } from "./nifti-read.js";
export { type NiftiWritable, type NiftiWriteOptions, writeNifti } from "./nifti-write.js";
export { type NpyArray, npyToVolume, readNpy, volumeToNpy, writeNpy } from "./npy.js";
export * from "./orientation.js";
export * from "./resample.js";
export type * from "./types.js";
