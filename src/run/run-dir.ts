// runs/<pipeline>/<run-id>/: where a run keeps its record, its stages and its evidence.
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeJsonAtomic } from "../evidence/atomic.js";
import type { Value } from "../manifest/expr.js";

export type RunStatus = "running" | "succeeded" | "failed" | "interrupted";

export interface RunRecord {
  run_id: string;
  pipeline: string;
  manifest: string;
  manifest_sha256: string;
  profile: string | null;
  mode: string;
  params: Record<string, Value>;
  status: RunStatus;
  started: string;
  ended: string | null;
  workspace: string;
  argv: string[];
  environment: Record<string, string | null>;
  /** The devices GPU stages were given, and how many stages one device took at a time. */
  gpus?: { devices: string[]; stages_per_gpu: number };
}

/** UTC time to the millisecond, then random: ids sort in the order runs started. */
export function newRunId(now = new Date()): string {
  const iso = now.toISOString(); // 2026-11-23T12:31:26.481Z
  const stamp = `${iso.slice(0, 10).replace(/-/g, "")}-${iso.slice(11, 19).replace(/:/g, "")}-${iso.slice(20, 23)}`;
  return `${stamp}-${randomBytes(2).toString("hex")}`;
}

export function pipelineRunsDir(runsDir: string, pipeline: string): string {
  return join(runsDir, pipeline);
}

/** The newest run of a pipeline (run ids sort by time), or null. */
export function latestRun(runsDir: string, pipeline: string): string | null {
  const dir = pipelineRunsDir(runsDir, pipeline);
  if (!existsSync(dir)) return null;
  const ids = readdirSync(dir)
    .filter((d) => existsSync(join(dir, d, "run.json")))
    .sort();
  const last = ids[ids.length - 1];
  return last ? join(dir, last) : null;
}

/** Runs of a pipeline older than `runDir`, newest first. */
export function earlierRuns(runsDir: string, pipeline: string, runId: string): string[] {
  const dir = pipelineRunsDir(runsDir, pipeline);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((d) => d < runId && existsSync(join(dir, d, "run.json")))
    .sort()
    .reverse()
    .map((d) => join(dir, d));
}

export function createRunDir(runsDir: string, pipeline: string, runId: string): string {
  const dir = join(pipelineRunsDir(runsDir, pipeline), runId);
  mkdirSync(join(dir, "stages"), { recursive: true });
  return dir;
}

export function writeRunRecord(runDir: string, r: RunRecord): void {
  writeJsonAtomic(join(runDir, "run.json"), r);
}

export function readRunRecord(runDir: string): RunRecord {
  return JSON.parse(readFileSync(join(runDir, "run.json"), "utf8")) as RunRecord;
}

/** A stage id as a folder name: `cv[fold=2]` is kept as it is (valid on POSIX filesystems). */
export function stageDir(runDir: string, stageId: string): string {
  return join(runDir, "stages", stageId);
}
