// Runs a graph: each stage instance once its upstream finished, up to --jobs stages at a time, a
// GPU stage once the pool gives it a device (stages_per_gpu per device); cache hits are linked
// in instead of run. Every outcome is recorded in evidence.json as it happens, so an interrupted
// run still says what it did.
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import {
  type EarlierAttempt,
  type Evidence,
  type KeyParts,
  type StageRecord,
  type StageStatus,
  writeEvidence,
} from "../evidence/evidence.js";
import { type Hasher, hashJson, listFiles, sha256 } from "../evidence/hash.js";
import { checkOutput } from "../evidence/output-check.js";
import type { Graph, StageNode } from "../graph/expand.js";
import { ManifestError } from "../manifest/diagnostics.js";
import type { Value } from "../manifest/expr.js";
import type { PipelineSpec } from "../manifest/pipeline.js";
import { toArgs } from "../skill-kit/args.js";
import { linkTree, type StageCache } from "./cache.js";
import { keyParts, needsKeys } from "./cache-key.js";
import type { Reporter } from "./events.js";
import type { Executor } from "./executor.js";
import type { GpuPool } from "./gpus.js";
import { type Namespace, type ResolvedInputs, resolveInputs, stageNamespace } from "./inputs.js";
import { findPython, pythonProblem } from "./python.js";
import { stageDir } from "./run-dir.js";

export interface RunContext {
  spec: PipelineSpec;
  graph: Graph;
  runId: string;
  runDir: string;
  workspace: string;
  jobs: number;
  gpus: GpuPool;
  reporter: Reporter;
  signal: AbortSignal;
  hasher: Hasher;
  /** Where the hasher's digests are saved; stages read them (MEDPIPE_FILE_HASHES). */
  hashesFile: string;
  cache: StageCache;
  env: Record<string, string | undefined>;
  /** How long a stage gets between SIGTERM and SIGKILL. */
  graceMs: number;
  executor: Executor;
  /** This run's own earlier records, when resuming it. */
  resumed: Evidence | null;
}

export interface RunOutcome {
  status: "succeeded" | "failed" | "interrupted";
  records: Record<string, StageRecord>;
}

export async function executeRun(ctx: RunContext): Promise<RunOutcome> {
  const records: Record<string, StageRecord> = {};
  const namespaces = new Map<string, Namespace>();
  const state = new Map<string, "pending" | "running" | "done" | "failed">();
  for (const n of ctx.graph.nodes) state.set(n.id, "pending");
  let savedAt = 0;
  let unsaved = false;
  const save = (): void => {
    unsaved = false;
    // In graph order, whatever order the stages finished in.
    const stages: Record<string, StageRecord> = {};
    for (const n of ctx.graph.nodes) if (records[n.id]) stages[n.id] = records[n.id] as StageRecord;
    writeEvidence(ctx.runDir, { schema_version: 1, run_id: ctx.runId, pipeline: ctx.spec.name, stages });
    savedAt = performance.now();
  };
  const finish = (node: StageNode, rec: StageRecord, ns: Namespace | null): void => {
    records[node.id] = rec;
    if (ns) namespaces.set(node.id, ns);
    state.set(node.id, ns ? "done" : "failed");
    // A stage that ran is recorded at once; cache hits (cheap to redo) are batched.
    if (rec.status !== "cached" || performance.now() - savedAt > 250) save();
    else unsaved = true;
    ctx.reporter.emit({
      event: "stage-end",
      stage: node.id,
      status: rec.status,
      reason: rec.reason,
      wall_s: rec.wall_s,
      cached_from: rec.cached_from,
    });
  };

  // A resumed run whose manifest renamed or dropped a stage still has that stage's folder: it is
  // no result of this run any more, so it goes where replaced results go.
  if (ctx.resumed) {
    for (const name of listDir(join(ctx.runDir, "stages")))
      if (name !== ".tmp" && !ctx.graph.byId.has(name))
        moveAside(
          join(ctx.runDir, "stages", name),
          join(ctx.runDir, "superseded", name, new Date().toISOString()),
        );
  }

  const running = new Map<string, Promise<void>>();
  for (;;) {
    for (const node of ctx.graph.nodes) {
      if (state.get(node.id) !== "pending" || ctx.signal.aborted) continue;
      const blocked = node.deps.find((d) => state.get(d) === "failed");
      if (blocked) {
        finish(node, record(node, "skipped", `upstream ${blocked} did not succeed`), null);
        continue;
      }
      if (running.size >= ctx.jobs || !node.deps.every((d) => state.get(d) === "done")) continue;
      state.set(node.id, "running");
      // A stage process may read evidence.json (the verifier does): it sees every finished stage.
      const beforeLaunch = (): void => {
        if (unsaved) save();
      };
      const task = runNode(ctx, node, namespaces, records, beforeLaunch)
        .then(({ rec, ns }) => finish(node, rec, ns))
        .catch((err: unknown) =>
          finish(node, record(node, "failed", `internal error: ${(err as Error).message}`), null),
        )
        .finally(() => running.delete(node.id));
      running.set(node.id, task);
    }
    if (running.size === 0) break;
    await Promise.race(running.values());
  }
  save();
  const statuses = Object.values(records).map((r) => r.status);
  const unfinished = ctx.graph.nodes.some((n) => state.get(n.id) === "pending");
  const status =
    ctx.signal.aborted || statuses.includes("interrupted")
      ? "interrupted"
      : statuses.some((s) => s === "failed" || s === "skipped") || unfinished
        ? "failed"
        : "succeeded";
  // A crashed engine's leftovers stay for inspection until a resume has finished the run: only
  // then is nothing of it still writing there (a Slurm job outlives the engine and is re-attached
  // by the resume), and they go where replaced results go instead of staying beside the results.
  const tmp = join(ctx.runDir, "stages", ".tmp");
  if (ctx.resumed && status === "succeeded")
    for (const name of listDir(tmp)) moveAside(join(tmp, name), join(ctx.runDir, "superseded", ".tmp", name));
  rmEmptyDir(tmp);
  return { status, records };
}

function record(node: StageNode, status: StageStatus, reason: string | null): StageRecord {
  return {
    stage: node.id,
    skill: node.spec.skill.manifest.id,
    skill_version: node.spec.skill.manifest.version,
    status,
    reason,
    cache_key: null,
    key_parts: null,
    cached_from: null,
    started: null,
    ended: null,
    wall_s: null,
    exit_code: null,
    signal: null,
    attempts: 0,
    peak_rss_mb: null,
    device: null,
    output_json_sha256: null,
    artifacts: [],
  };
}

async function runNode(
  ctx: RunContext,
  node: StageNode,
  namespaces: Map<string, Namespace>,
  records: Record<string, StageRecord>,
  beforeLaunch: () => void,
): Promise<{ rec: StageRecord; ns: Namespace | null }> {
  const skill = node.spec.skill;
  const started = new Date();
  const base = { ...record(node, "failed", null), started: started.toISOString() };
  const fail = (reason: string, extra: Partial<StageRecord> = {}): { rec: StageRecord; ns: null } => ({
    rec: { ...base, ...extra, status: "failed", reason, ended: new Date().toISOString() },
    ns: null,
  });

  let inputs: ResolvedInputs;
  try {
    inputs = resolveInputs(node, {
      spec: ctx.spec,
      graph: ctx.graph,
      namespaces,
      env: ctx.env,
      workspace: ctx.workspace,
    });
  } catch (err) {
    if (err instanceof ManifestError) return fail(err.message);
    throw err;
  }
  let parts: KeyParts;
  try {
    parts = await keyParts(
      { hasher: ctx.hasher, env: ctx.env, mode: ctx.spec.mode, stage: node.id },
      skill,
      inputs,
      needsKeys(node, ctx.graph, (id) => records[id]?.cache_key ?? null),
    );
  } catch (err) {
    return fail((err as Error).message);
  }
  const key = hashJson(parts);
  const prev = ctx.resumed?.stages[node.id];
  const earlier: EarlierAttempt | null = prev
    ? {
        status: prev.status,
        reason: prev.reason,
        cache_key: prev.cache_key,
        key_parts: prev.key_parts,
        ended: prev.ended,
      }
    : null;
  const keyed = {
    ...base,
    cache_key: key,
    key_parts: parts,
    ...(earlier ? { earlier_attempt: earlier } : {}),
  };
  const finalDir = stageDir(ctx.runDir, node.id);

  // A skill whose result depends on the run it is in (the verifier) is never reused.
  const reusable = skill.manifest.cache !== false;
  // Resuming this very run: a stage that finished with the same key stays as it is.
  if (
    reusable &&
    prev &&
    (prev.status === "succeeded" || prev.status === "cached") &&
    prev.cache_key === key
  ) {
    const out = join(finalDir, "output.json");
    if (existsSync(out) && sha256(readFileSync(out)) === prev.output_json_sha256) {
      return {
        rec: { ...prev, status: "cached", cached_from: prev.cached_from ?? ctx.runId },
        ns: stageNamespace(skill, finalDir, readOutput(out), key),
      };
    }
  }
  if (existsSync(finalDir))
    moveAside(finalDir, join(ctx.runDir, "superseded", node.id, new Date().toISOString()));

  const hit = reusable ? await ctx.cache.lookup(key, ctx.hasher) : null;
  if (hit) {
    const tmp = tmpDir(ctx.runDir, node.id);
    linkTree(join(hit.run_dir, "stages", hit.stage), tmp);
    renameSync(tmp, finalDir);
    const artifacts = await digestTree(ctx.hasher, finalDir);
    return {
      rec: {
        ...keyed,
        status: "cached",
        cached_from: `${relative(dirname(ctx.runDir), hit.run_dir)}/stages/${hit.stage}`,
        ended: new Date().toISOString(),
        wall_s: 0,
        output_json_sha256: hit.output_json_sha256,
        artifacts,
      },
      ns: stageNamespace(skill, finalDir, readOutput(join(finalDir, "output.json")), key),
    };
  }

  let last: { rec: StageRecord; ns: Namespace | null } = fail("not run");
  for (let attempt = 1; attempt <= node.spec.retries + 1; attempt++) {
    beforeLaunch();
    last = await attemptStage(ctx, node, inputs, { ...keyed, attempts: attempt }, attempt);
    if (last.ns || last.rec.status === "interrupted" || ctx.signal.aborted) break;
  }
  if (last.ns && reusable) {
    ctx.cache.put(key, {
      run_dir: ctx.runDir,
      stage: node.id,
      output_json_sha256: last.rec.output_json_sha256 as string,
    });
  }
  return last;
}

async function attemptStage(
  ctx: RunContext,
  node: StageNode,
  inputs: ResolvedInputs,
  base: StageRecord,
  attempt: number,
): Promise<{ rec: StageRecord; ns: Namespace | null }> {
  const skill = node.spec.skill;
  const m = skill.manifest;
  const end = (status: StageStatus, reason: string | null, extra: Partial<StageRecord> = {}) => ({
    rec: { ...base, ...extra, status, reason, ended: new Date().toISOString() },
    ns: null,
  });

  const gpuPolicy = node.spec.resources.gpu ?? "none";
  // A cluster executor gets devices from its scheduler; locally they come from the pool.
  const clusterGpus =
    ctx.executor.managesDevices && gpuPolicy !== "none" ? (node.spec.resources.gpus ?? 1) : 0;
  if (gpuPolicy === "required" && ctx.gpus.size === 0 && !ctx.executor.managesDevices)
    return end(
      "failed",
      "needs a GPU (resources.gpu: required) but none is available (CUDA_VISIBLE_DEVICES is empty or unset and nvidia-smi lists none)",
    );
  let command = process.execPath;
  if (m.entrypoint.interpreter === "python") {
    const { runtime: py, probes } = findPython(ctx.env as NodeJS.ProcessEnv);
    if (!py)
      return end(
        "failed",
        `${pythonProblem(probes, ctx.env as NodeJS.ProcessEnv)} (\`pipeline doctor\` gives the fix)`,
      );
    command = py.command;
  }
  const device =
    gpuPolicy !== "none" && ctx.gpus.size > 0 && !ctx.executor.managesDevices
      ? await ctx.gpus.acquire()
      : null;
  if (ctx.signal.aborted) {
    if (device !== null) ctx.gpus.release(device);
    return end("interrupted", "interrupted before it started");
  }
  // A resumed run waits for a job an earlier engine left queued or running, instead of
  // starting the stage again.
  const attach = ctx.resumed && attempt === 1 ? (ctx.executor.reattach?.(node.id, ctx.runDir) ?? null) : null;
  const tmp = attach?.outputDir ?? tmpDir(ctx.runDir, node.id);
  mkdirSync(join(tmp, "logs"), { recursive: true });
  ctx.reporter.emit({ event: "stage-start", stage: node.id, attempt, device });
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(ctx.env)) if (v !== undefined) env[k] = v;
  Object.assign(env, {
    MEDPIPE_STAGE: node.id,
    MEDPIPE_MODE: ctx.spec.mode,
    MEDPIPE_RUN_DIR: ctx.runDir,
    MEDPIPE_WORKSPACE: ctx.workspace,
    // The inputs were just hashed for the cache key: the stage's evidence reuses those digests
    // instead of reading a whole dataset again.
    MEDPIPE_FILE_HASHES: ctx.hashesFile,
    PYTHONUNBUFFERED: "1",
  });
  ctx.hasher.save(ctx.hashesFile);
  // A stage sees only the device it was given; a CPU stage sees none. On a cluster, the
  // scheduler there sets CUDA_VISIBLE_DEVICES for the GPUs it assigned.
  if (clusterGpus > 0) delete env.CUDA_VISIBLE_DEVICES;
  else env.CUDA_VISIBLE_DEVICES = device ?? "";
  // How many stages may share that device, so a stage that runs out of memory can say so.
  if (device !== null) env.MEDPIPE_STAGES_PER_GPU = String(ctx.gpus.perDevice);
  else delete env.MEDPIPE_STAGES_PER_GPU;
  const outcome = await ctx.executor.run({
    stage: node.id,
    group: node.spec.id,
    runId: ctx.runId,
    runDir: ctx.runDir,
    outputDir: tmp,
    resources: node.spec.resources,
    gpus: clusterGpus,
    ...(attach ? { attach } : {}),
    command,
    args: [skill.scriptPath, ...toArgs(tmp, inputs.exec)],
    cwd: ctx.workspace,
    env,
    stdoutLog: join(tmp, "logs", "stdout.log"),
    stderrLog: join(tmp, "logs", "stderr.log"),
    timeoutMs: node.spec.timeoutMs,
    signal: ctx.signal,
    graceMs: ctx.graceMs,
    onStdoutLine: (line) => {
      const data = progressEvent(line);
      if (data) ctx.reporter.emit({ event: "stage-progress", stage: node.id, data });
    },
  });
  if (device !== null) ctx.gpus.release(device);
  const measured: Partial<StageRecord> = {
    wall_s: outcome.wallS,
    exit_code: outcome.exitCode,
    signal: outcome.signal,
    peak_rss_mb: outcome.peakRssMb,
    device,
  };
  const reject = (status: StageStatus, reason: string) => {
    moveAside(tmp, join(ctx.runDir, "failed", node.id, `attempt-${attempt}`), { reject: true });
    return end(status, reason, measured);
  };
  if (outcome.interrupted) return reject("interrupted", "interrupted");
  if (outcome.reason) return reject("failed", outcome.reason);
  if (outcome.timedOut)
    return reject("failed", `timeout after ${((node.spec.timeoutMs ?? 0) / 1000).toFixed(1)} s`);
  if (outcome.spawnError) return reject("failed", `could not start ${command}: ${outcome.spawnError}`);
  if (outcome.exitCode !== 0) {
    const why = lastLine(outcome.stderrTail);
    const how = outcome.signal ? `killed by ${outcome.signal}` : `exit code ${outcome.exitCode}`;
    return reject("failed", why ? `${how}: ${why}` : how);
  }
  const outPath = join(tmp, "output.json");
  if (!existsSync(outPath)) return reject("failed", "exited 0 but wrote no output.json");
  let output: Record<string, Value>;
  try {
    output = readOutput(outPath);
  } catch (err) {
    return reject("failed", `output.json is not valid JSON: ${(err as Error).message}`);
  }
  const problem = checkOutput(skill, node.id, output);
  if (problem) return reject("failed", problem);

  const finalDir = stageDir(ctx.runDir, node.id);
  renameSync(tmp, finalDir);
  const artifacts = await digestTree(ctx.hasher, finalDir);
  const outputSha = artifacts.find((a) => a.path === "output.json")?.sha256 ?? null;
  return {
    rec: {
      ...base,
      ...measured,
      status: "succeeded",
      reason: null,
      ended: new Date().toISOString(),
      output_json_sha256: outputSha,
      artifacts,
    },
    ns: stageNamespace(skill, finalDir, output, base.cache_key as string),
  };
}

async function digestTree(hasher: Hasher, dir: string): Promise<StageRecord["artifacts"]> {
  const out: StageRecord["artifacts"] = [];
  for (const rel of listFiles(dir)) {
    const d = await hasher.file(join(dir, rel));
    out.push({ path: rel, sha256: d.sha256, bytes: d.bytes });
  }
  return out;
}

function readOutput(path: string): Record<string, Value> {
  return JSON.parse(readFileSync(path, "utf8")) as Record<string, Value>;
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function rmEmptyDir(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // not there, or not empty
  }
}

function tmpDir(runDir: string, id: string): string {
  return join(runDir, "stages", ".tmp", `${id}-${randomBytes(4).toString("hex")}`);
}

/** Keeps what a failed or replaced attempt left, where it cannot be mistaken for a result. */
function moveAside(dir: string, dest: string, opts: { reject?: boolean } = {}): void {
  if (existsSync(dest)) dest = `${dest}-${randomBytes(3).toString("hex")}`;
  mkdirSync(dirname(dest), { recursive: true });
  const out = join(dir, "output.json");
  if (opts.reject && existsSync(out)) renameSync(out, `${out}.rejected`);
  renameSync(dir, dest);
}

function progressEvent(line: string): Record<string, Value> | null {
  if (!line.startsWith("{")) return null;
  try {
    const v = JSON.parse(line) as unknown;
    return v !== null && typeof v === "object" && !Array.isArray(v) && "event" in v
      ? (v as Record<string, Value>)
      : null;
  } catch {
    return null;
  }
}

function lastLine(text: string): string {
  const lines = text.trim().split("\n");
  return (lines[lines.length - 1] ?? "").trim().slice(0, 500);
}
