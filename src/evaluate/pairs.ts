// Which prediction goes with which reference: both files, or both folders matched by case name.
import { readdirSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import { UsageError } from "../manifest/diagnostics.js";

/** One case to score: a prediction file and its reference file. */
export interface CasePair {
  case: string;
  pred: string;
  gt: string;
}

const EXTENSIONS = [".nii.gz", ".nii", ".npy"] as const;

export function isMaskFile(name: string): boolean {
  return EXTENSIONS.some((e) => name.endsWith(e));
}

/**
 * The case a file holds: basename without `.nii.gz` / `.nii` / `.npy`, and without nnU-Net's
 * channel suffix `_0000`, so `case_001_0000.nii.gz` (an image-named file) and
 * `case_001.nii.gz` (a label-named file) pair up.
 */
export function caseName(file: string): string {
  let name = basename(file);
  const ext = EXTENSIONS.find((e) => name.endsWith(e));
  if (ext) name = name.slice(0, -ext.length);
  return name.endsWith("_0000") ? name.slice(0, -"_0000".length) : name;
}

type Kind = "file" | "folder";

function kindOf(path: string, flag: string): Kind {
  try {
    return statSync(path).isDirectory() ? "folder" : "file";
  } catch {
    throw new UsageError(`${flag} ${path}: no such file or folder`);
  }
}

/** Case name → file, with the problems (duplicate names, nothing found) of one folder. */
function scanFolder(dir: string, flag: string, problems: string[]): Map<string, string> {
  const cases = new Map<string, string>();
  const names = readdirSync(dir).filter((n) => !n.startsWith(".") && isMaskFile(n));
  names.sort();
  for (const n of names) {
    const file = join(dir, n);
    if (!statSync(file).isFile()) continue;
    const name = caseName(n);
    const seen = cases.get(name);
    if (seen) problems.push(`case '${name}': two files in ${flag} ${dir}: ${basename(seen)} and ${n}`);
    else cases.set(name, file);
  }
  if (cases.size === 0) problems.push(`${flag} ${dir}: no .nii.gz, .nii or .npy files`);
  return cases;
}

/**
 * Pairs `--pred` with `--gt`. Every problem is collected before failing, so one run shows
 * all the cases to fix; the UsageError's message has one line per problem.
 */
export function pairCases(pred: string, gt: string, cases?: readonly string[]): CasePair[] {
  const pk = kindOf(pred, "--pred");
  const gk = kindOf(gt, "--gt");
  if (pk !== gk)
    throw new UsageError(
      `--pred ${pred} is a ${pk} but --gt ${gt} is a ${gk}: give two files or two folders`,
    );
  if (pk === "file") {
    for (const [flag, f] of [
      ["--pred", pred],
      ["--gt", gt],
    ] as const) {
      if (!isMaskFile(f)) throw new UsageError(`${flag} ${f}: expected a .nii.gz, .nii or .npy file`);
    }
    return [{ case: caseName(gt), pred, gt }];
  }
  const problems: string[] = [];
  const preds = scanFolder(pred, "--pred", problems);
  const gts = scanFolder(gt, "--gt", problems);
  if (cases) {
    if (problems.length) throw problemsError(problems);
    return selectCases(cases, preds, gts, pred, gt);
  }
  const pairs: CasePair[] = [];
  for (const [name, g] of gts) {
    const p = preds.get(name);
    if (p) pairs.push({ case: name, pred: p, gt: g });
    else if (preds.size > 0) problems.push(`case '${name}': in --gt (${g}) but not in --pred ${pred}`);
  }
  for (const [name, p] of preds) {
    if (!gts.has(name) && gts.size > 0)
      problems.push(`case '${name}': in --pred (${p}) but not in --gt ${gt}`);
  }
  if (problems.length) throw problemsError(problems);
  pairs.sort((a, b) => (a.case < b.case ? -1 : a.case > b.case ? 1 : 0));
  return pairs;
}

/**
 * Only the `cases` named, in that order; each must be on both sides. Files of other cases are left
 * alone: e.g. a test set's predictions against the dataset's whole labelsTr/.
 */
export function selectCases(
  cases: readonly string[],
  preds: ReadonlyMap<string, string>,
  gts: ReadonlyMap<string, string>,
  pred: string,
  gt: string,
): CasePair[] {
  const problems: string[] = [];
  const pairs: CasePair[] = [];
  for (const name of new Set(cases)) {
    const p = preds.get(name);
    const g = gts.get(name);
    if (!p) problems.push(`case '${name}': listed in --cases but not in --pred ${pred}`);
    if (!g) problems.push(`case '${name}': listed in --cases but not in --gt ${gt}`);
    if (p && g) pairs.push({ case: name, pred: p, gt: g });
  }
  if (problems.length) throw problemsError(problems);
  return pairs;
}

/**
 * One UsageError for several problems. The CLI prints `error: <message>`; joining with
 * "\nerror: " gives every problem its own line in the same form.
 */
export function problemsError(problems: readonly string[]): UsageError {
  return new UsageError(problems.join("\nerror: "));
}
