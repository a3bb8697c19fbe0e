// Writing a prediction next to its image's conventions: NIfTI with the image's own affine
// (stored as sform and qform, with the image's non-zero form codes), or a Fortran uint8 .npy for
// 2D slices, which carry no orientation.
import type { Image, NiftiHeader } from "../imaging/index.js";
import { writeNifti, writeNpy } from "../imaging/index.js";

/**
 * Writes `image` (a label map or probabilities from inferCase) to `path`. For NIfTI, `reference`
 * is the input image's header: viewers pick sform or qform by their codes, so copying the
 * input's codes makes the overlay land where the image lands in every viewer.
 */
export async function writePrediction(
  path: string,
  image: Image<Uint8Array> | Image<Float32Array>,
  reference: NiftiHeader | null,
): Promise<void> {
  if (/\.npy$/i.test(path)) {
    await writeNpy(path, { data: image.data, dtype: image.dtype, shape: image.shape, fortranOrder: true });
    return;
  }
  const codes = reference
    ? {
        qformCode: reference.qformCode > 0 ? reference.qformCode : 1,
        sformCode: reference.sformCode > 0 ? reference.sformCode : reference.qformCode > 0 ? 0 : 1,
      }
    : {};
  await writeNifti(path, image, { ...codes, description: "medpipe infer" });
}
