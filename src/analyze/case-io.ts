// The I/O half of one case: digest and read its files (NIfTI or .npy), turning every failure into
// a one-line reason that names the file, then hand everything to the pure `analyzeLoadedCase`.
import { stat } from "node:fs/promises";
import { sha256File } from "../evidence/hash.js";
import { reason } from "../imaging/errors.js";
import { readNifti } from "../imaging/nifti-read.js";
import { npyToVolume, readNpy } from "../imaging/npy.js";
import type { Image } from "../imaging/types.js";
import { analyzeLoadedCase, type CaseOutput, type LoadedFile } from "./case.js";
import type { AnalysisSettings, FileRecord } from "./types.js";

/** One case to analyze; plain JSON so that it crosses a worker boundary. */
export interface CaseJob {
  id: string;
  image: string[];
  label: string | null;
  group?: string;
  fold?: number;
  settings: AnalysisSettings;
  allowedLabels: number[] | null;
}

export async function analyzeCaseFiles(job: CaseJob): Promise<CaseOutput> {
  const roles = [
    ...job.image.map((path, c) => ({ role: `image:${c}`, path })),
    ...(job.label ? [{ role: "label", path: job.label }] : []),
  ];
  const files = await Promise.all(roles.map(({ role, path }) => digest(role, path)));
  // One file at a time: a worker holds one case's volumes, nothing more.
  const images: LoadedFile[] = [];
  for (const path of job.image) images.push(await load(path));
  const labelFile = job.label ? await load(job.label) : null;
  return analyzeLoadedCase(
    {
      id: job.id,
      image: job.image,
      label: job.label,
      ...(job.group !== undefined ? { group: job.group } : {}),
      ...(job.fold !== undefined ? { fold: job.fold } : {}),
      files,
      images,
      labelFile,
    },
    job.settings,
    job.allowedLabels,
  );
}

async function digest(role: string, path: string): Promise<FileRecord> {
  try {
    const [sha256, st] = await Promise.all([sha256File(path), stat(path)]);
    return { role, path, sha256, bytes: st.size };
  } catch {
    // The read below reports why; the fingerprint records the file as missing.
    return { role, path, sha256: null, bytes: null };
  }
}

async function load(path: string): Promise<LoadedFile> {
  try {
    return { path, image: await readImage(path), error: null };
  } catch (err) {
    const why = reason(err);
    return { path, image: null, error: why.startsWith(path) ? why : `${path}: ${why}` };
  }
}

/** A NIfTI file as it is; a `.npy` array as an image with unit spacing and the identity affine. */
export async function readImage(path: string): Promise<Image> {
  if (!path.endsWith(".npy")) return readNifti(path);
  const array = await readNpy(path);
  const volume = npyToVolume(array);
  const affine = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
  return { ...volume, affine, dtype: array.dtype };
}
