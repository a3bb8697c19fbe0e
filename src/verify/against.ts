// What a run may be judged against, checked before anything is judged: a reference that reads
// as one, and a baseline that is a run of the same pipeline. The CLI turns a problem into a usage
// error (exit 2), the agent tools into a refusal; both show the same one line.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { readReference } from "./reference.js";

/** The problem with judging `runDir` against `reference` / `baseline` (absolute paths), or null. */
export function againstProblem(runDir: string, reference?: string, baseline?: string): string | null {
  if (reference) {
    const ref = readReference(reference);
    if (ref instanceof Error) return `--reference ${ref.message}`;
  }
  if (baseline) {
    if (!existsSync(join(baseline, "run.json")))
      return `--baseline ${baseline}: no run.json there, expected a run folder`;
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
