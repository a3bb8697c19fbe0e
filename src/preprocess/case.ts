// One case, start to finish: read → canonical RAS → resample to the plan's spacing → normalize →
// image.npy, label.npy, properties.json. Runs inside a worker (or in-process); holds one case.
// The in-memory part (prepareCase) is also what the infer skill runs on an unlabelled image, so
// inference sees exactly what training saw.
import { mkdir, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { writeNpy } from "../imaging/npy.js";
import {
  anisotropicAxis,
  resampledAffine,
  resampledShape,
  resampleImage,
  resampleLabels,
} from "../imaging/resample.js";
import { CaseInputError, loadCanonicalCase } from "./load.js";
import { type AppliedNormalization, normalizationFor, normalizeChannel } from "./normalize-case.js";
import type { CaseJob, CaseProperties, CaseSummary, ChannelStats } from "./types.js";

const seconds = (from: number) => (performance.now() - from) / 1000;

/** What prepareCase needs: a job without the output folder (nothing is written). */
export type CaseInput = Omit<CaseJob, "outDir">;

/** One case preprocessed in memory, as preprocessCase would write it. */
export interface PreparedCase {
  /** float32, channel-planar: the bytes of image.npy, Fortran (...resampled_shape, C). */
  image: Float32Array;
  /** uint8 on the resampled grid, or null for an unlabelled case. */
  label: Uint8Array | null;
  labelVoxels: Record<string, number> | null;
  /** properties.json: enough to map a prediction on this grid back to the original image. */
  properties: CaseProperties;
  /** What the normalization did (the same for every channel). */
  normalization: AppliedNormalization;
  orientation: string[];
  channels: ChannelStats[];
  /** Seconds: reading + reorienting, resampling, normalizing. */
  seconds: { read: number; resample: number; normalize: number };
}

/** Read → canonical RAS → resample → normalize, in memory. Errors are CaseInputErrors naming the file. */
export async function prepareCase(job: CaseInput): Promise<PreparedCase> {
  const t0 = performance.now();
  const canon = await loadCanonicalCase(job.image, job.label, job.spatialDims);
  const tRead = seconds(t0);
  const first = job.image[0]!;
  if (canon.channels.length !== job.channels)
    throw new CaseInputError(
      first,
      `${canon.channels.length} image channel(s), the plan declares ${job.channels}`,
    );
  const shape = canon.channels[0]!.shape;
  const spacing = canon.channels[0]!.spacing;
  const target = job.targetSpacing;
  const outShape = resampledShape(shape, spacing, target);
  const nearestAxis = anisotropicAxis(spacing, target);
  const count = outShape.reduce((a, b) => a * b, 1);

  const t1 = performance.now();
  let label: Uint8Array | null = null;
  let labelVoxels: Record<string, number> | null = null;
  if (canon.label && job.label) {
    let lab: Uint8Array;
    try {
      lab = resampleLabels(canon.label, outShape, { nearestAxis }).data;
    } catch (err) {
      throw new CaseInputError(job.label, (err as Error).message);
    }
    labelVoxels = countValues(lab);
    const unknown = Object.keys(labelVoxels).filter((v) => !job.labelValues.includes(Number(v)));
    if (unknown.length)
      throw new CaseInputError(
        job.label,
        `label value(s) ${unknown.join(", ")} not among the plan's labels (${job.labelValues.join(", ")})`,
      );
    label = lab;
  }
  // One channel at a time: resample, normalize, copy into the channel-last output.
  const image = new Float32Array(count * canon.channels.length);
  const stats: ChannelStats[] = [];
  // The same for every channel (it depends only on the plan).
  const applied = normalizationFor(job.normalization);
  let tResample = seconds(t1);
  let tNormalize = 0;
  canon.channels.forEach((vol, c) => {
    const ta = performance.now();
    const resampled = resampleImage(vol, outShape, { nearestAxis }).data;
    const tb = performance.now();
    const norm = normalizeChannel(resampled, job.normalization);
    image.set(norm.data, c * count);
    stats.push(norm.stats);
    tResample += (tb - ta) / 1000;
    tNormalize += seconds(tb);
  });

  const canonicalShape = shape.slice();
  const properties: CaseProperties = {
    original_shape: canon.transform.originalShape.slice(),
    original_spacing: canon.transform.originalSpacing.slice(),
    original_affine: canon.transform.originalAffine.slice(),
    canonical: canon.transform,
    canonical_shape: canonicalShape,
    canonical_spacing: spacing.slice(),
    resampled_shape: outShape,
    target_spacing: target.slice(),
    nearest_axis: nearestAxis,
    normalization: {
      scheme: job.normalization.scheme,
      ...(job.normalization.scheme === "zscore" ? { over: job.normalization.over ?? "all" } : {}),
      mean: stats[0]!.mean,
      std: stats[0]!.std,
      ...(job.normalization.scheme === "ct" ? { clip: job.normalization.clip!.slice() } : {}),
      channels: stats,
    },
    source: { image: job.image.slice(), label: job.label },
    spatial_dims: job.spatialDims,
    canonical_affine: canon.affine.slice(),
    resampled_affine: resampledAffine(canon.affine, canonicalShape, outShape),
  };
  return {
    image,
    label,
    labelVoxels,
    properties,
    normalization: applied,
    orientation: canon.orientation,
    channels: stats,
    seconds: { read: tRead, resample: tResample, normalize: tNormalize },
  };
}

export async function preprocessCase(job: CaseJob): Promise<CaseSummary> {
  const t0 = performance.now();
  const { image, label, labelVoxels, properties, orientation, channels, seconds: s } = await prepareCase(job);
  const t2 = performance.now();
  const outShape = properties.resampled_shape;
  await mkdir(job.outDir, { recursive: true });
  await writeNpy(join(job.outDir, "image.npy"), {
    data: image,
    dtype: "float32",
    shape: [...outShape, channels.length],
    fortranOrder: true,
  });
  if (label)
    await writeNpy(join(job.outDir, "label.npy"), {
      data: label,
      dtype: "uint8",
      shape: outShape,
      fortranOrder: true,
    });
  // properties.json last: its presence marks a finished case folder.
  const tmp = join(job.outDir, "properties.json.tmp");
  await writeFile(tmp, `${JSON.stringify(properties, null, 2)}\n`);
  await rename(tmp, join(job.outDir, "properties.json"));
  const tWrite = seconds(t2);

  return {
    id: job.id,
    orientation,
    original_shape: properties.original_shape,
    original_spacing: properties.original_spacing,
    canonical_shape: properties.canonical_shape,
    resampled_shape: outShape,
    target_spacing: properties.target_spacing,
    nearest_axis: properties.nearest_axis,
    channels,
    label_voxels: labelVoxels,
    image: `${job.id}/image.npy`,
    label: label ? `${job.id}/label.npy` : null,
    seconds: {
      read: s.read,
      resample: s.resample,
      normalize: s.normalize,
      write: tWrite,
      total: seconds(t0),
    },
  };
}

function countValues(data: Uint8Array): Record<string, number> {
  const hist = new Float64Array(256);
  for (let i = 0; i < data.length; i++) hist[data[i]!]!++;
  const out: Record<string, number> = {};
  hist.forEach((n, v) => {
    if (n > 0) out[String(v)] = n;
  });
  return out;
}
