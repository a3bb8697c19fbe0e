// One case, pure: from its loaded files (or the reasons they could not be read) to its record, its
// problems (every one, not the first) and its foreground intensity samples.
import { sampleForeground } from "../imaging/normalize.js";
import type { Image, VoxelArray } from "../imaging/types.js";
import { channelCount, cornerDrift, fmtShape, placement, spatialShape } from "./geometry.js";
import { isIntegerArray } from "./sparse.js";
import { channelStatistics, foregroundMask, labelContent, maskedValues } from "./stats.js";
import type { AnalysisSettings, CaseRecord, ChannelStatistics, FileRecord, Problem } from "./types.js";

/** A file as the I/O layer hands it over: the image, or the one-line reason it could not be read. */
export interface LoadedFile {
  path: string;
  image: Image | null;
  error: string | null;
}

export interface CaseInput {
  id: string;
  image: string[];
  label: string | null;
  group?: string;
  fold?: number;
  split?: string;
  files: FileRecord[];
  images: LoadedFile[];
  labelFile: LoadedFile | null;
}

export interface CaseOutput {
  record: CaseRecord;
  problems: Problem[];
  /** Per channel: foreground intensities drawn for the dataset statistics (empty without a label). */
  samples: Float64Array[];
}

/** nnU-Net draws each case's foreground sample with the same fixed seed. */
const SAMPLE_SEED = 1234;

export function analyzeLoadedCase(
  input: CaseInput,
  settings: AnalysisSettings,
  allowedLabels: number[] | null,
): CaseOutput {
  const problems: Problem[] = [];
  const add = (severity: Problem["severity"], check: Problem["check"], file: string, what: string): void => {
    problems.push({ severity, check, case: input.id, file, message: `${file}: ${what}` });
  };
  for (const f of [...input.images, ...(input.labelFile ? [input.labelFile] : [])])
    if (f.error !== null)
      problems.push({
        severity: "error",
        check: "unreadable",
        case: input.id,
        file: f.path,
        message: f.error,
      });

  const record = emptyRecord(input);
  const ref = input.images[0]?.image ?? null;
  const labelImage = input.labelFile?.image ?? null;
  const allImagesRead = input.images.length > 0 && input.images.every((f) => f.image !== null);

  let shape: number[] | null = null;
  let channels: VoxelArray[] = [];
  if (ref && allImagesRead) {
    shape = spatialShape(ref.shape);
    const spacing = ref.spacing.slice(0, shape.length);
    const where = placement(ref.affine, shape, spacing);
    Object.assign(record, {
      readable: true,
      shape,
      spacing,
      affine: ref.affine.slice(),
      axis_codes: where.axisCodes,
      orientation: where.axisCodes.join(""),
      dtype: ref.dtype,
      canonical_shape: where.canonicalShape,
      canonical_spacing: where.canonicalSpacing,
    });
    channels = channelViews(input.images, shape, settings, add);
    record.channels = channels.length;
  }

  // Non-zero where the label holds a non-zero integer.
  let mask: ArrayLike<number> | null = null;
  if (labelImage && input.labelFile) {
    const labelPath = input.labelFile.path;
    const labelShape = spatialShape(labelImage.shape);
    const labelSpacing = labelImage.spacing.slice(0, labelShape.length);
    record.label_dtype = labelImage.dtype;
    let usable = channelCount(labelImage.shape) === 1;
    if (!usable)
      add(
        "error",
        "shape-mismatch",
        labelPath,
        `label has ${fmtShape(labelImage.shape)}: more than one volume`,
      );
    if (shape && ref) {
      if (!sameShape(labelShape, shape)) {
        usable = false;
        add(
          "error",
          "shape-mismatch",
          labelPath,
          `label shape ${fmtShape(labelShape)} differs from image shape ${fmtShape(shape)} (${input.images[0]!.path})`,
        );
      } else {
        const drift = cornerDrift(ref.affine, labelImage.affine, shape);
        if (drift > settings.affine_tolerance_mm)
          add(
            "error",
            "affine-mismatch",
            labelPath,
            `label affine differs from the image's (${input.images[0]!.path}): up to ${fmtMm(drift)} mm apart at the grid corners`,
          );
      }
    }
    const content = labelContent(
      labelImage.data,
      labelShape,
      shape && usable ? record.spacing! : labelSpacing,
    );
    record.labels = content.labels;
    record.foreground_voxels = content.foregroundVoxels;
    record.foreground_volume_mm3 = content.labels.reduce((s, l) => s + (l.value === 0 ? 0 : l.volume_mm3), 0);
    record.foreground_components = content.foregroundComponents;
    if (content.notInteger > 0)
      add(
        "error",
        "label-not-integer",
        labelPath,
        `${content.notInteger} voxels are not integer label values`,
      );
    if (allowedLabels) {
      const allowed = new Set([0, ...allowedLabels]);
      const outside = content.labels.filter((l) => !allowed.has(l.value));
      if (outside.length)
        add(
          "error",
          "label-values",
          labelPath,
          `label values ${outside.map((l) => `${l.value} (${l.voxels} voxels)`).join(", ")} outside the declared set {${[...allowed].sort((a, b) => a - b).join(", ")}}`,
        );
    }
    if (content.foregroundVoxels === 0)
      add("error", "empty-label", labelPath, "label is empty (no foreground voxel)");
    // An integer label is its own mask (no copy); others are tested voxel by voxel.
    if (usable && shape)
      mask = isIntegerArray(labelImage.data) ? labelImage.data : foregroundMask(labelImage.data);
  }

  const samples: Float64Array[] = [];
  record.intensity = channels.map((data, c): ChannelStatistics => {
    const stats = channelStatistics(data, mask, c);
    if (stats.non_finite > 0) {
      const file = input.images[Math.min(c, input.images.length - 1)]!.path;
      add("error", "non-finite", file, `channel ${c} has ${stats.non_finite} NaN or infinite voxels`);
    }
    if (mask)
      samples.push(sampleMasked(data, finiteMask(data, mask, stats.non_finite), stats.count, settings));
    return stats;
  });
  return { record, problems, samples };
}

/**
 * `sampleForeground(data, mask)`, drawn from the `count` selected values gathered first (in memory
 * order, so the same draws pick the same voxels): the gathering skips the mask's empty stretches.
 */
function sampleMasked(
  data: VoxelArray,
  mask: ArrayLike<number>,
  count: number,
  settings: AnalysisSettings,
): Float64Array {
  const values = maskedValues(data, mask, count);
  return sampleForeground(values, new Uint8Array(count).fill(1), {
    count: settings.foreground_samples_per_case,
    seed: SAMPLE_SEED,
  });
}

/** The foreground mask without non-finite voxels (the same mask when there are none). */
function finiteMask(data: VoxelArray, mask: ArrayLike<number>, nonFinite: number): ArrayLike<number> {
  if (nonFinite === 0) return mask;
  const out = new Uint8Array(mask.length);
  for (let i = 0; i < mask.length; i++) out[i] = mask[i] !== 0 && Number.isFinite(data[i]!) ? 1 : 0;
  return out;
}

/**
 * Every channel of the case as a view into its file's data (a 4D file holds several; one file per
 * channel in nnU-Net's layout). Channel files that do not match the first file are problems.
 */
function channelViews(
  files: LoadedFile[],
  shape: number[],
  settings: AnalysisSettings,
  add: (s: Problem["severity"], c: Problem["check"], f: string, w: string) => void,
): VoxelArray[] {
  const ref = files[0]!.image!;
  const block = shape.reduce((a, b) => a * b, 1);
  const out: VoxelArray[] = [];
  files.forEach((f, i) => {
    const image = f.image!;
    const own = spatialShape(image.shape);
    if (i > 0) {
      if (!sameShape(own, shape)) {
        add(
          "error",
          "channel-mismatch",
          f.path,
          `channel file shape ${fmtShape(own)} differs from ${fmtShape(shape)} (${files[0]!.path})`,
        );
        return;
      }
      const drift = cornerDrift(ref.affine, image.affine, shape);
      if (drift > settings.affine_tolerance_mm)
        add(
          "error",
          "channel-mismatch",
          f.path,
          `channel file affine differs from ${files[0]!.path}: up to ${fmtMm(drift)} mm apart at the grid corners`,
        );
    }
    const n = channelCount(image.shape);
    for (let c = 0; c < n; c++) out.push(image.data.subarray(c * block, (c + 1) * block) as VoxelArray);
  });
  return out;
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function fmtMm(x: number): string {
  return x >= 0.01 ? x.toFixed(3) : x.toPrecision(3);
}

/** The record of a case nothing could be read of. */
export function emptyRecord(
  input: Pick<CaseInput, "id" | "image" | "label" | "group" | "fold" | "split" | "files">,
): CaseRecord {
  const record: CaseRecord = {
    id: input.id,
    image: input.image,
    label: input.label,
    files: input.files,
    readable: false,
    shape: null,
    spacing: null,
    affine: null,
    axis_codes: null,
    orientation: null,
    dtype: null,
    channels: null,
    canonical_shape: null,
    canonical_spacing: null,
    intensity: [],
    label_dtype: null,
    labels: [],
    foreground_voxels: null,
    foreground_volume_mm3: null,
    foreground_components: null,
  };
  if (input.group !== undefined) record.group = input.group;
  if (input.fold !== undefined) record.fold = input.fold;
  if (input.split !== undefined) record.split = input.split;
  return record;
}
