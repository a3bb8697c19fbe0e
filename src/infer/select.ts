// Which cases one infer run predicts: the cases of every path of `images` (files or folders, in
// the order given), each id once, optionally only a listed subset in the listed order. Problems
// of single cases become CaseFailures; only a path that can hold no case throws (scanImageCases).
import { resolve } from "node:path";
import { type CaseFailure, type ImageCase, scanImageCases } from "./images.js";

export interface CaseSelection {
  cases: ImageCase[];
  failed: CaseFailure[];
}

export async function selectCases(
  sources: readonly string[],
  spatialDims: 2 | 3,
  only?: readonly string[],
): Promise<CaseSelection> {
  let cases: ImageCase[] = [];
  let failed: CaseFailure[] = [];
  for (const source of sources) {
    const scan = await scanImageCases(source, spatialDims);
    cases.push(...scan.cases);
    failed.push(...scan.failed);
  }
  // Two images with one name would write one prediction file: the second one fails.
  const seen = new Set<string>();
  cases = cases.filter((c) => {
    if (!seen.has(c.id)) {
      seen.add(c.id);
      return true;
    }
    failed.push({
      case: c.id,
      file: c.files[0]!,
      reason: `case ${c.id} appears twice (two files with one name)`,
    });
    return false;
  });
  if (only === undefined) return { cases, failed };
  // Only the listed cases, in the listed order; a listed case with no image is a failure.
  const where = sources.length === 1 ? resolve(sources[0]!) : `images (${sources.length} paths)`;
  const byId = new Map(cases.map((c) => [c.id, c]));
  failed = failed.filter((f) => only.includes(f.case));
  const failedIds = new Set(failed.map((f) => f.case));
  const selected: ImageCase[] = [];
  for (const id of only) {
    const c = byId.get(id);
    if (c) selected.push(c);
    else if (!failedIds.has(id))
      failed.push({ case: id, file: where, reason: `no image for case ${id} here` });
  }
  return { cases: selected, failed };
}
