// One reader for an image file of either kind a dataset may hold: NIfTI as it is, or a `.npy`
// array (the npy2d layout), which carries no placement.
import { readNifti } from "./nifti-read.js";
import { npyToVolume, readNpy } from "./npy.js";
import type { Image } from "./types.js";

const IDENTITY = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];

/** A NIfTI file as it is; a `.npy` array as an image with unit spacing and the identity affine. */
export async function readImage(path: string): Promise<Image> {
  if (!path.toLowerCase().endsWith(".npy")) return readNifti(path);
  const array = await readNpy(path);
  return { ...npyToVolume(array), affine: IDENTITY.slice(), dtype: array.dtype };
}
