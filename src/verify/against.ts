// What a run may be judged against, checked before anything is judged: the folder is a run, a
// reference reads as one, and a baseline is a run of the same pipeline. The CLI turns a problem
// into a usage error (exit 2), the agent tools into a refusal; both show the same one line. No
// report is written for such a folder: a report goes inside the run it judges.
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { readReference } from "./reference.js";

/** Why `dir` (absolute) is not a run folder the verifier can judge, or null. */
export function runFolderProblem(dir: string): string | null {
  if (!existsSync(dir)) return `${dir}: no such run folder`;
  if (!statSync(dir).isDirectory()) return `${dir}: a file, expected a run folder`;
  const path = join(dir, "run.json");
  if (!existsSync(path)) return `${dir}: no run.json there, expected a run folder`;
  // run.json is what says which run this is; without it nothing can be judged or reported on.
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    return `${path}: cannot be read (${(err as Error).message})`;
  }
  let record: unknown;
  try {
    record = JSON.parse(text);
  } catch (err) {
    return `${path}: not valid JSON (${(err as Error).message}), expected the run's record`;
  }
  if (record === null || typeof record !== "object" || Array.isArray(record)) {
    const found = record === null ? "null" : Array.isArray(record) ? "an array" : `a ${typeof record}`;
    return `${path}: expected a JSON object (the run's record), found ${found}`;
  }
  return null;
}

/** The problem with judging `runDir` against `reference` / `baseline` (absolute paths), or null. */
export function againstProblem(runDir: string, reference?: string, baseline?: string): string | null {
  const notRun = runFolderProblem(runDir);
  if (notRun) return notRun;
  if (reference) {
    const ref = readReference(reference);
    if (ref instanceof Error) return `--reference ${ref.message}`;
  }
  if (baseline) {
    const notBaseline = runFolderProblem(baseline);
    if (notBaseline) return `--baseline ${notBaseline}`;
    const mine = pipelineOf(runDir);
    const theirs = pipelineOf(baseline);
    if (mine && theirs !== mine)
      return `--baseline ${baseline}: a run of '${theirs}', expected a run of '${mine}' to compare with`;
  }
  return null;
}

function pipelineOf(dir: string): string | undefined {
  if (!existsSync(join(dir, "run.json"))) return undefined;
  return (JSON.parse(readFileSync(join(dir, "run.json"), "utf8")) as { pipeline?: string }).pipeline;
}
