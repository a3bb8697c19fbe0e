// Small helpers every reader shares: problem collection, file checks, case ids, JSON loading.
import { readdir, readFile, stat } from "node:fs/promises";
import { basename } from "node:path";
import type { DatasetCase } from "./types.js";

/** Collects problems as `<file>: <what is wrong>` lines; readers never stop at the first. */
export class Problems {
  readonly lines: string[] = [];
  add(file: string, what: string): void {
    this.lines.push(`${file}: ${what}`);
  }
}

const IMAGE_ENDINGS = [".nii.gz", ".nii", ".npy", ".nrrd", ".mha", ".mhd"];

/** The ending of an image file name (".nii.gz", ".nii", ...), or "" for an unknown one. */
export function imageEnding(name: string): string {
  const lower = name.toLowerCase();
  return IMAGE_ENDINGS.find((e) => lower.endsWith(e)) ?? "";
}

/**
 * The case id of an image or label path: its base name without the image ending and without
 * nnU-Net's first-channel suffix `_0000`, so `imagesTr/la_003_0000.nii.gz` and
 * `labelsTr/la_003.nii.gz` both give `la_003`.
 */
export function caseIdOf(path: string): string {
  const name = basename(path);
  const stem = name.slice(0, name.length - imageEnding(name).length);
  return stem.endsWith("_0000") ? stem.slice(0, -5) : stem;
}

/** "file", "dir" or null (missing or unreadable). */
export async function kindOf(path: string): Promise<"file" | "dir" | null> {
  try {
    const s = await stat(path);
    return s.isDirectory() ? "dir" : s.isFile() ? "file" : null;
  } catch {
    return null;
  }
}

/**
 * The visible entries of a folder, sorted; null when it cannot be listed. Hidden names are
 * skipped: MSD's archives carry macOS `._name.nii.gz` companions that are not images.
 */
export async function listNames(dir: string): Promise<string[] | null> {
  try {
    return (await readdir(dir)).filter((n) => !n.startsWith(".")).sort();
  } catch {
    return null;
  }
}

/** Parsed JSON, or null with a problem recorded (missing, unreadable, invalid). */
export async function readJson(path: string, problems: Problems): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    problems.add(path, `cannot read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
    return null;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    problems.add(path, `not valid JSON (${err instanceof Error ? err.message : String(err)})`);
    return null;
  }
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Records one problem per file a case names that is not a readable file. */
export async function checkFilesExist(cases: DatasetCase[], problems: Problems): Promise<void> {
  const checks = cases.flatMap((c) => [
    ...c.image.map((p) => ({ p, role: `image of case ${c.id}` })),
    ...(c.label ? [{ p: c.label, role: `label of case ${c.id}` }] : []),
  ]);
  const kinds = await Promise.all(checks.map((c) => kindOf(c.p)));
  checks.forEach((c, i) => {
    if (kinds[i] !== "file") problems.add(c.p, `${c.role}: file not found`);
  });
}

/** Records cases without a label (when labels are required) and case ids that occur twice. */
export function checkCases(cases: DatasetCase[], problems: Problems, requireLabels: boolean): void {
  const seen = new Map<string, DatasetCase>();
  for (const c of cases) {
    const first = seen.get(c.id);
    if (first)
      problems.add(
        c.image[0] ?? c.id,
        `duplicate case id ${c.id} (also ${first.image[0] ?? "an earlier entry"})`,
      );
    else seen.set(c.id, c);
    if (requireLabels && c.label === null)
      problems.add(c.image[0] ?? c.id, `image without label (case ${c.id})`);
  }
}

/** "CT" or "MR" when the channel names say so (nnU-Net keys CT normalization on the name "CT"). */
export function modalityOf(channelNames: string[]): string | null {
  if (channelNames.length === 0) return null;
  if (channelNames.some((n) => /^ct$/i.test(n.trim()))) return "CT";
  const mr = /^(mri?|t1\w*|t2\w*|flair|adc|dwi|pd|bssfp|cine|mra|nonenhanced|t1gd|t1c)$/i;
  if (channelNames.every((n) => mr.test(n.trim()))) return "MR";
  return channelNames[0]!;
}

/** `{"0": "T2", "1": "ADC"}` → ["T2", "ADC"] by numeric key; problems for gaps or non-string names. */
export function channelList(dict: unknown, file: string, key: string, problems: Problems): string[] {
  if (!isRecord(dict)) {
    problems.add(file, `"${key}" missing or not an object`);
    return [];
  }
  const entries = Object.entries(dict).map(([k, v]) => [Number(k), v] as const);
  entries.sort((a, b) => a[0] - b[0]);
  const out: string[] = [];
  for (const [i, [k, v]] of entries.entries()) {
    if (k !== i) {
      problems.add(file, `"${key}" keys must be 0, 1, 2, ... (found ${JSON.stringify(Object.keys(dict))})`);
      return entries.map(([, name]) => String(name));
    }
    out.push(String(v));
  }
  return out;
}
