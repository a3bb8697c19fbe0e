// How `pipeline evaluate` and the evaluate skill pair predictions with references. A references
// folder in the npy2d layout (`X_T1w.npy` beside its label `X_T1w_tissue_segmentation.npy`, the
// layout infer reads) pairs each label with the prediction infer wrote for its image (`X_T1w.npy`,
// or cv-train's `X.npy`) and keeps the image for overlays; any other folder, or two files, pairs
// by case name (pairs.ts).
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { NPY_IMAGE_SUFFIX, NPY_LABEL_SUFFIX } from "../datasets/npy2d.js";
import { type CasePair, caseName, isMaskFile, pairCases, problemsError, selectCases } from "./pairs.js";

/** A pair to score, with the image it was predicted from when the references folder has it. */
export interface ReferencePair extends CasePair {
  image: string | null;
}

const isDir = (path: string): boolean => {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
};

/**
 * The pairs to score. A references folder holding npy2d label files is read in that layout: case
 * X's reference is `X_T1w_tissue_segmentation.npy`, its image `X_T1w.npy` (if present), its
 * prediction `X_T1w.npy` or `X.npy` in `predictions`. Every missing or ambiguous prediction and every
 * prediction without a reference is collected into one error. Otherwise `pairCases`. With `cases`,
 * only those cases are paired (each must be on both sides; other files are left alone).
 */
export function pairReferences(
  predictions: string,
  references: string,
  cases?: readonly string[],
): ReferencePair[] {
  const labels = isDir(references)
    ? readdirSync(references)
        .filter((n) => n.endsWith(NPY_LABEL_SUFFIX) && !n.startsWith("."))
        .sort()
    : [];
  if (labels.length === 0)
    return pairCases(predictions, references, cases).map((p) => ({ ...p, image: null }));
  if (!isDir(predictions))
    throw problemsError([
      `--pred ${predictions}: expected a folder of predictions for the folder ${references}`,
    ]);
  const preds = new Map<string, string[]>();
  for (const n of readdirSync(predictions).filter((x) => isMaskFile(x) && !x.startsWith("."))) {
    // infer names a prediction after its image (X_T1w.npy); cv-train after the case (X.npy).
    const id = caseName(n).replace(new RegExp(`${NPY_IMAGE_SUFFIX.replace(".npy", "")}$`), "");
    preds.set(id, [...(preds.get(id) ?? []), join(predictions, n)]);
  }
  const names = new Set(readdirSync(references));
  const imageOf = (id: string): string | null =>
    names.has(`${id}${NPY_IMAGE_SUFFIX}`) ? join(references, `${id}${NPY_IMAGE_SUFFIX}`) : null;
  if (cases) {
    const gts = new Map(labels.map((l) => [l.slice(0, -NPY_LABEL_SUFFIX.length), join(references, l)]));
    const ambiguous = [...preds].filter(([id, files]) => files.length > 1 && cases.includes(id));
    if (ambiguous.length)
      throw problemsError(
        ambiguous.map(
          ([id, f]) => `case '${id}': ${f.length} predictions in --pred ${predictions}: ${f.join(", ")}`,
        ),
      );
    const single = new Map([...preds].map(([id, files]) => [id, files[0]!]));
    return selectCases(cases, single, gts, predictions, references).map((p) => ({
      ...p,
      image: imageOf(p.case),
    }));
  }
  const problems: string[] = [];
  const pairs: ReferencePair[] = [];
  for (const label of labels) {
    const id = label.slice(0, -NPY_LABEL_SUFFIX.length);
    const found = preds.get(id) ?? [];
    preds.delete(id);
    if (found.length !== 1) {
      problems.push(
        found.length === 0
          ? `case '${id}': in --gt (${join(references, label)}) but not in --pred ${predictions}`
          : `case '${id}': ${found.length} predictions in --pred ${predictions}: ${found.join(", ")}`,
      );
      continue;
    }
    pairs.push({ case: id, pred: found[0]!, gt: join(references, label), image: imageOf(id) });
  }
  for (const [id, files] of preds)
    problems.push(`case '${id}': in --pred (${files.join(", ")}) but not in --gt ${references}`);
  if (problems.length) throw problemsError(problems);
  return pairs;
}
