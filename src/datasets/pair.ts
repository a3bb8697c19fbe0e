// Pairing image and label files found in folders by case id (basename rule in common.ts).
import { join } from "node:path";
import { caseIdOf, imageEnding, listNames, type Problems } from "./common.js";
import type { DatasetCase } from "./types.js";

/**
 * One case per image file in `imagesDir` (a 3D or multi-channel 4D file), its label the file of
 * the same case id in `labelsDir`. Labels without an image are problems; images without a label
 * get `label: null` (the caller decides whether that is a problem).
 */
export async function pairSingleFiles(
  imagesDir: string,
  labelsDir: string,
  problems: Problems,
): Promise<DatasetCase[]> {
  const images = await imageFiles(imagesDir, problems);
  const labels = await labelFiles(labelsDir, problems);
  const cases: DatasetCase[] = images.map((name) => {
    const id = caseIdOf(name);
    const label = labels.get(id);
    labels.delete(id);
    return { id, image: [join(imagesDir, name)], label: label ? join(labelsDir, label) : null };
  });
  for (const [id, name] of labels) problems.add(join(labelsDir, name), `label without image (case ${id})`);
  return cases;
}

/** Image-like files of a folder (a problem when the folder cannot be read). */
export async function imageFiles(dir: string, problems: Problems): Promise<string[]> {
  const names = await listNames(dir);
  if (names === null) {
    problems.add(dir, "folder missing or unreadable");
    return [];
  }
  return names.filter((n) => imageEnding(n) !== "");
}

/** case id → label file name, for a labels folder that may legitimately be absent (empty map). */
export async function labelFiles(dir: string, problems: Problems): Promise<Map<string, string>> {
  const names = await listNames(dir);
  const out = new Map<string, string>();
  if (names === null) {
    problems.add(dir, "folder missing or unreadable");
    return out;
  }
  for (const n of names.filter((x) => imageEnding(x) !== "")) {
    const id = caseIdOf(n);
    if (out.has(id)) problems.add(join(dir, n), `second label for case ${id} (also ${out.get(id)})`);
    else out.set(id, n);
  }
  return out;
}
