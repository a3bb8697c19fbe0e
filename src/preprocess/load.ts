// Reading one case into the canonical frame: image channel(s) and label, reoriented to closest
// canonical RAS (3D NIfTI), or 2D `.npy` slices taken as they are (spacing 1, no orientation).
import { identity4 } from "../imaging/affine.js";
import { readNifti } from "../imaging/nifti-read.js";
import { npyToVolume, readNpy } from "../imaging/npy.js";
import {
  axisCodes,
  type CanonicalTransform,
  ioOrientation,
  RAS,
  toClosestCanonical,
} from "../imaging/orientation.js";
import type { Affine, Image, Volume, VoxelArray } from "../imaging/types.js";

/** A case on its canonical grid: one spatial volume per channel, the label, and the way back. */
export interface CanonicalCase {
  channels: Volume[];
  label: Volume | null;
  transform: CanonicalTransform;
  /** Affine of the canonical grid (the original's in 2D: identity). */
  affine: Affine;
  /** Axis codes of the source image (["-", "-"] for 2D slices, which carry no orientation). */
  orientation: string[];
}

/** A problem with one input file: the message is `<file>: <problem>`. */
export class CaseInputError extends Error {
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
  }
}

export async function loadCanonicalCase(
  image: string[],
  label: string | null,
  spatialDims: 2 | 3,
): Promise<CanonicalCase> {
  return spatialDims === 2 ? loadSlices(image, label) : loadVolumes(image, label);
}

const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((n, i) => n === b[i]);

async function loadVolumes(files: string[], labelFile: string | null): Promise<CanonicalCase> {
  const channels: Volume[] = [];
  let first: { transform: CanonicalTransform; affine: Affine; file: string } | null = null;
  for (const file of files) {
    if (/\.npy$/i.test(file)) throw new CaseInputError(file, "a 3D plan needs NIfTI images (.nii/.nii.gz)");
    const img = await readNifti(file);
    if (img.shape.length < 3) throw new CaseInputError(file, `expected a 3D image, got shape [${img.shape}]`);
    const { image: canon, transform } = toClosestCanonical(img);
    if (first) {
      const ref = first.transform;
      if (!sameShape(img.shape.slice(0, 3), ref.originalShape.slice(0, 3)))
        throw new CaseInputError(
          file,
          `shape [${img.shape.slice(0, 3)}] differs from the first channel's [${ref.originalShape.slice(0, 3)}] (${first.file})`,
        );
      if (axisCodes(transform.ornt).join("") !== axisCodes(ref.ornt).join(""))
        throw new CaseInputError(file, `orientation differs from the first channel's (${first.file})`);
    } else first = { transform, affine: canon.affine, file };
    channels.push(...splitChannels(canon));
  }
  if (!first) throw new Error("a case needs at least one image file");
  let label: Volume | null = null;
  if (labelFile) {
    const lab = await readNifti(labelFile);
    const spatial = lab.shape.slice(0, 3);
    if (lab.shape.slice(3).some((n) => n !== 1))
      throw new CaseInputError(labelFile, `a label must be one 3D volume, got shape [${lab.shape}]`);
    if (!sameShape(spatial, first.transform.originalShape.slice(0, 3)))
      throw new CaseInputError(
        labelFile,
        `shape [${spatial}] differs from the image's [${first.transform.originalShape.slice(0, 3)}] (${first.file})`,
      );
    // Each file is reoriented by its own affine; the two must agree on where the axes point,
    // or the canonical label would not lie over the canonical image.
    const codes = axisCodes(ioOrientation(lab.affine)).join("");
    const imageCodes = axisCodes(first.transform.ornt).join("");
    if (codes !== imageCodes)
      throw new CaseInputError(labelFile, `orientation ${codes} differs from the image's ${imageCodes}`);
    const { image: canon } = toClosestCanonical({ ...lab, shape: spatial, spacing: lab.spacing.slice(0, 3) });
    label = { data: canon.data, shape: canon.shape, spacing: canon.spacing };
  }
  return {
    channels,
    label,
    transform: first.transform,
    affine: first.affine,
    orientation: axisCodes(first.transform.ornt),
  };
}

/** The spatial volumes of a canonical image: axes past the third are channels (one per block). */
function splitChannels(img: Image): Volume[] {
  const shape = img.shape.slice(0, 3);
  const spacing = img.spacing.slice(0, 3);
  const block = shape[0]! * shape[1]! * shape[2]!;
  const count = img.data.length / block;
  const out: Volume[] = [];
  for (let c = 0; c < count; c++)
    out.push({ data: img.data.subarray(c * block, (c + 1) * block) as VoxelArray, shape, spacing });
  return out;
}

async function loadSlices(files: string[], labelFile: string | null): Promise<CanonicalCase> {
  const channels: Volume[] = [];
  let shape: number[] | null = null;
  for (const file of files) {
    if (!/\.npy$/i.test(file)) throw new CaseInputError(file, "a 2D plan needs .npy slices");
    const vol = npyToVolume(await readNpy(file));
    if (vol.shape.length !== 2)
      throw new CaseInputError(file, `expected a 2D array, got shape (${vol.shape})`);
    if (shape && !sameShape(shape, vol.shape))
      throw new CaseInputError(file, `shape (${vol.shape}) differs from the first channel's (${shape})`);
    shape = vol.shape;
    channels.push(vol);
  }
  if (!shape) throw new Error("a case needs at least one image file");
  let label: Volume | null = null;
  if (labelFile) {
    if (!/\.npy$/i.test(labelFile)) throw new CaseInputError(labelFile, "a 2D plan needs .npy labels");
    label = npyToVolume(await readNpy(labelFile));
    if (!sameShape(label.shape, shape))
      throw new CaseInputError(labelFile, `shape (${label.shape}) differs from the image's (${shape})`);
  }
  // Slices carry no orientation: the identity transform, so the way back is a no-op.
  const transform: CanonicalTransform = {
    ornt: RAS.map(([a, d]) => [a, d]),
    originalShape: shape.slice(),
    originalSpacing: shape.map(() => 1),
    originalAffine: identity4(),
  };
  return { channels, label, transform, affine: identity4(), orientation: shape.map(() => "-") };
}
