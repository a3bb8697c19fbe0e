// The I/O half of one case: digest and read its files (NIfTI or .npy), turning every failure into
// a one-line reason that names the file, then hand everything to the pure `analyzeLoadedCase`.
// A well-formed NIfTI file is read once for both its digest and its image (read-once.ts).
import { stat } from "node:fs/promises";
import { sha256File } from "../evidence/hash.js";
import { reason } from "../imaging/errors.js";
import { readImage } from "../imaging/read-image.js";
import { analyzeLoadedCase, type CaseOutput, type LoadedFile } from "./case.js";
import { decodeNifti, type FileBytes, readWithDigest } from "./read-once.js";
import type { AnalysisSettings, FileRecord } from "./types.js";

/** One case to analyze. */
export interface CaseJob {
  id: string;
  image: string[];
  label: string | null;
  group?: string;
  fold?: number;
  split?: string;
  settings: AnalysisSettings;
  allowedLabels: number[] | null;
}

export async function analyzeCaseFiles(job: CaseJob): Promise<CaseOutput> {
  const roles = [
    ...job.image.map((path, c) => ({ role: `image:${c}`, path })),
    ...(job.label ? [{ role: "label", path: job.label }] : []),
  ];
  // Every file read once (digest and image from the same bytes), the case's files side by side
  // (hashing in this thread while inflating runs on libuv's thread pool).
  const read = await Promise.all(roles.map(({ role, path }) => readCaseFile(role, path)));
  const images = read.slice(0, job.image.length).map((r) => r.loaded);
  const labelFile = job.label ? read[job.image.length]!.loaded : null;
  return analyzeLoadedCase(
    {
      id: job.id,
      image: job.image,
      label: job.label,
      ...(job.group !== undefined ? { group: job.group } : {}),
      ...(job.fold !== undefined ? { fold: job.fold } : {}),
      ...(job.split !== undefined ? { split: job.split } : {}),
      files: read.map((r) => r.file),
      images,
      labelFile,
    },
    job.settings,
    job.allowedLabels,
  );
}

/**
 * Files up to this size are read once into memory (the bytes and their inflated image side by
 * side); a bigger one is hashed by streaming and then read with the streamed gunzip, so that a
 * case costs its inflated volume, not that plus the whole compressed file.
 */
export const READ_ONCE_MAX_BYTES = 256 * 2 ** 20;

/** A file's digest record and its image (or the reason it could not be read). */
export async function readCaseFile(
  role: string,
  path: string,
  readOnceMax = READ_ONCE_MAX_BYTES,
): Promise<{ file: FileRecord; loaded: LoadedFile }> {
  // A file that cannot be stat'ed fails the read-once path below, which records it as missing.
  const size = await stat(path).then(
    (s) => s.size,
    () => 0,
  );
  if (size > readOnceMax) {
    let sha256: string | null = null;
    try {
      sha256 = await sha256File(path);
    } catch {
      // Unreadable: the read below says why.
    }
    return { file: { role, path, sha256, bytes: sha256 === null ? null : size }, loaded: await load(path) };
  }
  let got: FileBytes;
  try {
    got = await readWithDigest(path);
  } catch {
    // The read below reports why; the fingerprint records the file as missing.
    return { file: { role, path, sha256: null, bytes: null }, loaded: await load(path) };
  }
  const file = { role, path, sha256: got.sha256, bytes: got.bytes.length };
  const image = path.endsWith(".npy") ? null : await decodeNifti(got.bytes);
  return { file, loaded: image ? { path, image, error: null } : await load(path) };
}

async function load(path: string): Promise<LoadedFile> {
  try {
    return { path, image: await readImage(path), error: null };
  } catch (err) {
    const why = reason(err);
    return { path, image: null, error: why.startsWith(path) ? why : `${path}: ${why}` };
  }
}
