// `pipeline run`: a run folder, the scheduler, and the run's record — the edge where it all meets.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Evidence, readEvidence, type StageRecord } from "../evidence/evidence.js";
import { Hasher, sha256 } from "../evidence/hash.js";
import { UsageError } from "../manifest/diagnostics.js";
import { materialize } from "../manifest/pipeline.js";
import { skillDirs } from "../skills/registry.js";
import { StageCache } from "./cache.js";
import type { Reporter } from "./events.js";
import { type Executor, localExecutor } from "./executor.js";
import { type DeviceLedger, detectGpus, GpuPool } from "./gpus.js";
import { type LoadedPipeline, type LoadRequest, loadPipeline } from "./load.js";
import { lockRun, type RunLock } from "./lock.js";
import {
  createRunDir,
  latestRun,
  newRunId,
  type RunRecord,
  readRunRecord,
  writeRunRecord,
} from "./run-dir.js";
import { executeRun } from "./scheduler.js";

export interface RunOptions extends Pick<LoadRequest, "workspace" | "env" | "skillsDirs"> {
  runsDir: string;
  /** Where stage processes run; local by default. */
  executor?: Executor;
  jobs: number;
  /** GPU stages per device at once; overrides the manifest's `stages_per_gpu`. */
  stagesPerGpu?: number;
  /**
   * The devices and what runs on them, shared with the other runs of this process (the MCP
   * server's); by default the run detects the GPUs and counts its own stages alone.
   */
  devices?: DeviceLedger;
  resume: boolean;
  reporter: Reporter;
  signal: AbortSignal;
  graceMs: number;
  argv: string[];
}

export interface RunRequest extends LoadRequest, RunOptions {}

export interface RunResult {
  runDir: string;
  status: "succeeded" | "failed" | "interrupted";
  records: Record<string, StageRecord>;
}

export function runPipeline(req: RunRequest): Promise<RunResult> {
  return runLoaded(loadPipeline(req, "run"), req);
}

/** Runs a compiled pipeline (from a manifest file, or built in memory by run-script). */
export async function runLoaded(loaded: LoadedPipeline, req: RunOptions): Promise<RunResult> {
  const { spec } = loaded;
  let runDir: string;
  let runId: string;
  let resumed: Evidence | null = null;
  let started = new Date().toISOString();
  let lock: RunLock;
  if (req.resume) {
    const last = latestRun(req.runsDir, spec.name);
    if (!last) throw new UsageError(`--resume: no earlier run of '${spec.name}' in ${req.runsDir}`);
    runDir = last;
    // Before anything is read: the state to resume is the one the last holder left.
    lock = lockRun(runDir);
    try {
      const prev = readRunRecord(last);
      runId = prev.run_id;
      started = prev.started;
      // A run killed before any stage finished has no evidence.json yet: resume it all the same.
      resumed = readEvidence(last) ?? {
        schema_version: 1,
        run_id: runId,
        pipeline: spec.name,
        stages: {},
        root_hash: "",
      };
    } catch (err) {
      lock.release();
      throw err;
    }
  } else {
    runId = newRunId();
    runDir = createRunDir(req.runsDir, spec.name, runId);
    // Taken before run.json exists, so a --resume never finds this run unlocked.
    lock = lockRun(runDir);
  }
  try {
    return await runLocked(loaded, req, { runDir, runId, resumed, started });
  } finally {
    lock.release();
  }
}

async function runLocked(
  loaded: LoadedPipeline,
  req: RunOptions,
  at: { runDir: string; runId: string; resumed: Evidence | null; started: string },
): Promise<RunResult> {
  const { spec, graph, manifestPath } = loaded;
  const { runDir, runId, resumed, started } = at;
  const usesGpu =
    !req.executor?.managesDevices && spec.stages.some((s) => (s.resources.gpu ?? "none") !== "none");
  const perDevice = req.stagesPerGpu ?? spec.stagesPerGpu;
  const gpus = !usesGpu
    ? new GpuPool([], perDevice)
    : req.devices
      ? new GpuPool(req.devices.devices, perDevice, req.devices)
      : new GpuPool(detectGpus(req.env as NodeJS.ProcessEnv), perDevice);
  const record: RunRecord = {
    run_id: runId,
    pipeline: spec.name,
    manifest: manifestPath,
    manifest_sha256: sha256(spec.source.text),
    profile: spec.profile,
    mode: spec.mode,
    params: materialize(spec.params),
    status: "running",
    started,
    ended: null,
    workspace: req.workspace,
    argv: req.argv,
    environment: { node: process.version, platform: `${process.platform}-${process.arch}` },
    ...(gpus.size ? { gpus: { devices: gpus.devices, stages_per_gpu: gpus.perDevice } } : {}),
  };
  writeRunRecord(runDir, record);

  const cacheDir = join(req.runsDir, ".cache");
  mkdirSync(cacheDir, { recursive: true });
  const hashesFile = join(cacheDir, "file-hashes.json");
  const hasher = Hasher.load(hashesFile);

  req.reporter.emit({
    event: "run-start",
    run_id: runId,
    run_dir: runDir,
    pipeline: spec.name,
    stages: graph.nodes.map((n) => n.id),
    resumed: req.resume,
  });
  const outcome = await executeRun({
    spec,
    graph,
    runId,
    runDir,
    workspace: req.workspace,
    jobs: req.jobs,
    gpus,
    reporter: req.reporter,
    signal: req.signal,
    hasher,
    hashesFile,
    cache: new StageCache(cacheDir),
    // Stages that load skills themselves (the verifier) see the same skill folders as the engine.
    env: {
      ...req.env,
      PIPELINE_SKILLS_PATH: skillDirs(req.skillsDirs, req.env as NodeJS.ProcessEnv).join(":"),
    },
    graceMs: req.graceMs,
    resumed,
    executor: req.executor ?? localExecutor,
  });
  hasher.save(hashesFile);
  writeRunRecord(runDir, { ...record, status: outcome.status, ended: new Date().toISOString() });
  const counts: Record<string, number> = {};
  for (const r of Object.values(outcome.records)) counts[r.status] = (counts[r.status] ?? 0) + 1;
  req.reporter.emit({ event: "run-end", run_id: runId, run_dir: runDir, status: outcome.status, counts });
  return { runDir, status: outcome.status, records: outcome.records };
}
