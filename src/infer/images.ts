// Which files make which case: a folder of NIfTI images (nnU-Net's `<case>_0000.nii.gz`
// channel files grouped per case) or one file; and a cheap header-only check of every case
// before any inference, so a bad file fails the run in seconds with a line naming it.
import { readdir, stat } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { NPY_LABEL_SUFFIX } from "../datasets/npy2d.js";
import { ImageReadError, type NiftiHeader, readNiftiHeader } from "../imaging/index.js";
import { InferError } from "./errors.js";

export interface ImageCase {
  /** The output name stem: `<id>.nii.gz`. */
  id: string;
  /** Channel files in channel order (absolute). */
  files: string[];
}

const NIFTI = /\.nii(\.gz)?$/i;
const NPY = /\.npy$/i;
// nnU-Net's channel suffix: <case>_<4 digits>.<ext>
const CHANNEL = /^(.+)_(\d{4})$/;

/** File name without .nii.gz / .nii / .npy. */
export function stem(file: string): string {
  return basename(file).replace(NIFTI, "").replace(NPY, "");
}

/** A case that could not be run, and why: one line. */
export interface CaseFailure {
  /** The case id (the output name stem it would have had). */
  case: string;
  /** The offending file (or folder). */
  file: string;
  /** The problem, one line, without the file. */
  reason: string;
}

/** A failure record from any error thrown for one case (the file named by the error when it names one). */
export function caseFailure(id: string, err: unknown, fallbackFile: string): CaseFailure {
  const raw = err instanceof Error ? err.message : String(err);
  const file =
    err && typeof err === "object" && "file" in err && typeof err.file === "string" && err.file
      ? err.file
      : fallbackFile;
  let reason =
    raw
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean)
      .join(" ") || "failed";
  if (reason.startsWith(`${file}: `)) reason = reason.slice(file.length + 2);
  return { case: id, file, reason };
}

/**
 * The cases under `path`. A file is one case (named after it, less a `_0000` suffix). In a folder
 * (hidden files and other types ignored), when any image ends in `_0000` the folder is nnU-Net
 * style: files `<case>_NNNN` are grouped per case, channels ordered by NNNN, which must run
 * 0000, 0001, ... without a gap; otherwise every image is its own single-file case. 3D plans read
 * NIfTI, 2D plans `.npy` slices (as preprocess does). Throws on the first bad case; see
 * scanImageCases for the per-case form.
 */
export async function findImageCases(path: string, spatialDims: 2 | 3): Promise<ImageCase[]> {
  const { cases, failed } = await scanImageCases(path, spatialDims);
  const first = failed[0];
  if (first) throw new InferError(first.file, first.reason);
  return cases;
}

/**
 * As findImageCases, but a problem of one case (a file without a channel suffix in an nnU-Net
 * folder, a channel twice or missing) fails that case only: it is returned in `failed`, in file
 * order, and the other cases are returned. Only a path that cannot hold any case (missing, not
 * an image, an empty folder) throws.
 */
export async function scanImageCases(
  path: string,
  spatialDims: 2 | 3,
): Promise<{ cases: ImageCase[]; failed: CaseFailure[] }> {
  const abs = resolve(path);
  const info = await stat(abs).catch(() => null);
  if (!info) throw new InferError(abs, "no such image file or folder");
  const pattern = spatialDims === 3 ? NIFTI : NPY;
  const kind = spatialDims === 3 ? "NIfTI (.nii/.nii.gz)" : ".npy";
  if (info.isFile()) {
    if (!pattern.test(abs))
      throw new InferError(abs, `not a ${kind} image, which this ${spatialDims}D model reads`);
    return { cases: [{ id: stem(abs).replace(/_0000$/, ""), files: [abs] }], failed: [] };
  }
  // npy2d folders keep each slice's label beside it (X_T1w_tissue_segmentation.npy): not an image.
  const names = (await readdir(abs))
    .filter(
      (n) => !n.startsWith(".") && pattern.test(n) && !(spatialDims === 2 && n.endsWith(NPY_LABEL_SUFFIX)),
    )
    .sort();
  if (names.length === 0) throw new InferError(abs, `no ${kind} images in this folder`);
  const grouped = names.some((n) => stem(n).endsWith("_0000"));
  if (!grouped) return { cases: names.map((n) => ({ id: stem(n), files: [join(abs, n)] })), failed: [] };
  const failed: CaseFailure[] = [];
  const broken = new Set<string>();
  const byCase = new Map<string, Map<number, string>>();
  for (const n of names) {
    const m = CHANNEL.exec(stem(n));
    if (!m) {
      failed.push({
        case: stem(n),
        file: join(abs, n),
        reason: "has no _NNNN channel suffix, but this folder holds nnU-Net channel files (<case>_0000...)",
      });
      continue;
    }
    const channels = byCase.get(m[1]!) ?? new Map<number, string>();
    const index = Number(m[2]);
    if (channels.has(index) && !broken.has(m[1]!)) {
      failed.push({
        case: m[1]!,
        file: join(abs, n),
        reason: `channel ${m[2]} of case ${m[1]} appears twice`,
      });
      broken.add(m[1]!);
    }
    channels.set(index, join(abs, n));
    byCase.set(m[1]!, channels);
  }
  const cases: ImageCase[] = [];
  for (const [id, channels] of byCase) {
    if (broken.has(id)) continue;
    const files: string[] = [];
    for (let c = 0; c < channels.size; c++) {
      const f = channels.get(c);
      if (!f) {
        failed.push({
          case: id,
          file: join(abs, `${id}_${String(c).padStart(4, "0")}`),
          reason: `missing: case ${id} has channels ${[...channels.keys()].sort((a, b) => a - b).join(", ")}`,
        });
        break;
      }
      files.push(f);
    }
    if (files.length === channels.size) cases.push({ id, files });
  }
  return { cases, failed };
}

/**
 * Header-only check of one case against the model: every file readable as NIfTI, 3D (a 4th axis
 * counts as channels), all files on the same grid, and as many channels as the plan declares.
 * Returns the first file's header (its codes are copied onto the prediction).
 */
export async function checkImageCase(c: ImageCase, channels: number): Promise<NiftiHeader> {
  let first: NiftiHeader | null = null;
  let total = 0;
  for (const file of c.files) {
    let h: NiftiHeader;
    try {
      h = await readNiftiHeader(file);
    } catch (err) {
      if (err instanceof ImageReadError)
        throw new InferError(file, `unreadable image (${err.message.replace(`${file}: `, "")})`);
      throw err;
    }
    if (h.shape.length < 3)
      throw new InferError(file, `expected a 3D image, got shape [${h.shape.join(", ")}]`);
    const spatial = h.shape.slice(0, 3);
    if (first && spatial.join() !== first.shape.slice(0, 3).join())
      throw new InferError(
        file,
        `shape [${spatial.join(", ")}] differs from the first channel's [${first.shape.slice(0, 3).join(", ")}]`,
      );
    first ??= h;
    total += h.shape.slice(3).reduce((a, b) => a * b, 1);
  }
  if (!first) throw new InferError(c.id, "a case needs at least one image file");
  if (total !== channels)
    throw new InferError(
      c.files[0]!,
      `${total} image channel(s) for case ${c.id}, the model takes ${channels} (plan.json dataset.channels)`,
    );
  return first;
}
