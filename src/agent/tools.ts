// What the MCP tools do, as plain async functions over a workspace: every call is checked
// (declared scripts, workspace-confined paths, size and concurrency limits) before anything is
// written, and a refusal is a one-line reason.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join, relative, resolve } from "node:path";
import { readEvidence } from "../evidence/evidence.js";
import { ManifestError } from "../manifest/diagnostics.js";
import type { Value } from "../manifest/expr.js";
import type { Reporter } from "../run/events.js";
import { DeviceLedger, detectGpus } from "../run/gpus.js";
import { resolveInputs } from "../run/inputs.js";
import { loadPipeline } from "../run/load.js";
import { type RunOptions, runLoaded } from "../run/run.js";
import { loadSkills, skillDirs } from "../skills/registry.js";
import { isRequiredInput } from "../skills/types.js";
import { againstProblem } from "../verify/against.js";
import { verifyRunWithModel, writeReport } from "../verify/index.js";
import type { ModelPick } from "../verify/model.js";
import { onnxGridRunner } from "../verify/onnx-runner.js";
import type { VerifyReport } from "../verify/types.js";
import { confinePaths, inside, Refusal } from "./boundaries.js";
import { prepareScript } from "./run-script.js";

export interface AgentLimits {
  maxConcurrentRuns: number;
  defaultTimeoutS: number;
  maxTimeoutS: number;
}

export const DEFAULT_LIMITS: AgentLimits = {
  maxConcurrentRuns: 2,
  defaultTimeoutS: 600,
  maxTimeoutS: 24 * 3600,
};

export interface Workspace {
  dir: string;
  runsDir: string;
  skillsDirs: string[];
  env: Record<string, string | undefined>;
}

export interface RunSummary {
  run_dir: string;
  status: string;
  stages: { id: string; status: string; reason: string | null }[];
  /** The output.json of a one-stage run (run_script), when it succeeded. */
  output: Record<string, unknown> | null;
}

export class AgentTools {
  private running = 0;
  // One count of the stages on each GPU for all of this server's runs: two concurrent runs each
  // counting only their own would both fill a device.
  private ledger: DeviceLedger | undefined;

  constructor(
    readonly ws: Workspace,
    readonly limits: AgentLimits = DEFAULT_LIMITS,
  ) {}

  private skills() {
    return loadSkills(skillDirs(this.ws.skillsDirs, this.ws.env as NodeJS.ProcessEnv));
  }

  listSkills() {
    return [...this.skills().values()].map((s) => ({
      id: s.manifest.id,
      version: s.manifest.version,
      description: s.manifest.description,
      interpreter: s.manifest.entrypoint.interpreter,
      script: relative(this.ws.dir, s.scriptPath),
      gpu: s.manifest.resources?.gpu ?? "none",
    }));
  }

  describeSkill(id: string) {
    const s = this.skills().get(id);
    if (!s)
      throw new Refusal(`unknown skill '${id}'; expected one of: ${[...this.skills().keys()].join(", ")}`);
    const m = s.manifest;
    return {
      id: m.id,
      version: m.version,
      description: m.description,
      script: relative(this.ws.dir, s.scriptPath),
      inputs: Object.fromEntries(
        Object.entries(m.inputs).map(([k, v]) => [k, { ...v, required: isRequiredInput(v) }]),
      ) as Record<string, Record<string, unknown>>,
      outputs: { result_schema: m.outputs.result_json.schema, files: m.outputs.files ?? {} },
      resources: (m.resources ?? {}) as Record<string, unknown>,
    };
  }

  /** The GPUs, detected on the first run (a server that never runs never calls nvidia-smi). */
  private devices(): DeviceLedger {
    this.ledger ??= new DeviceLedger(detectGpus(this.ws.env as NodeJS.ProcessEnv));
    return this.ledger;
  }

  private timeout(timeoutS: number | undefined): number {
    const t = timeoutS ?? this.limits.defaultTimeoutS;
    if (!(t > 0) || t > this.limits.maxTimeoutS)
      throw new Refusal(`timeout_s ${t}: expected more than 0 and at most ${this.limits.maxTimeoutS}`);
    return t;
  }

  /** Takes a run slot or refuses; the slot is given back when `f` settles. */
  private async slot<T>(f: () => Promise<T>): Promise<T> {
    if (this.running >= this.limits.maxConcurrentRuns)
      throw new Refusal(
        `too many concurrent runs (limit ${this.limits.maxConcurrentRuns}); wait for one to finish`,
      );
    this.running++;
    try {
      return await f();
    } finally {
      this.running--;
    }
  }

  private options(reporter: Reporter, signal: AbortSignal): RunOptions {
    return {
      workspace: this.ws.dir,
      env: this.ws.env,
      skillsDirs: this.ws.skillsDirs,
      runsDir: this.ws.runsDir,
      // As `pipeline run`: the folds of a cross-validation share a GPU only if they run at once.
      jobs: availableParallelism(),
      devices: this.devices(),
      resume: false,
      reporter,
      signal,
      graceMs: 2000,
      argv: [],
    };
  }

  async runScript(
    call: { script: string; args: Record<string, Value>; timeout_s?: number; smoke?: boolean },
    reporter: Reporter,
    signal: AbortSignal,
  ): Promise<RunSummary> {
    const timeoutS = this.timeout(call.timeout_s);
    const tokens = Object.entries(call.args).flatMap(([k, v]) => [
      `--${k}`,
      typeof v === "string" ? v : JSON.stringify(v),
    ]);
    const prepared = prepareScript({
      script: call.script,
      args: tokens,
      mode: call.smoke ? "smoke" : "full",
      timeoutS,
      workspace: this.ws.dir,
      env: this.ws.env,
      skillsDirs: this.ws.skillsDirs,
    });
    return this.slot(async () => {
      const r = await runLoaded(prepared.loaded, this.options(reporter, signal));
      return this.summary(r.runDir);
    });
  }

  async runPipeline(
    call: { manifest: string; profile?: string; params?: Record<string, Value>; timeout_s?: number },
    reporter: Reporter,
    signal: AbortSignal,
  ): Promise<RunSummary> {
    const manifest = resolve(this.ws.dir, call.manifest);
    if (!inside(this.ws.dir, manifest))
      throw new Refusal(`${call.manifest}: the manifest is outside the workspace`);
    if (!existsSync(manifest)) throw new Refusal(`${call.manifest}: no such manifest`);
    const sets = Object.entries(call.params ?? {}).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
    const profile = call.profile ?? null;
    let loaded: ReturnType<typeof loadPipeline>;
    try {
      loaded = loadPipeline(
        {
          manifest,
          workspace: this.ws.dir,
          profile,
          mode: profile === "smoke" || profile === "sanity" ? profile : "full",
          sets,
          skillsDirs: this.ws.skillsDirs,
          env: this.ws.env,
        },
        "run",
      );
    } catch (err) {
      if (err instanceof ManifestError)
        throw new Refusal(
          err.diagnostics
            .map((d) => `${relative(this.ws.dir, d.file)}:${d.line}:${d.col}: ${d.message}`)
            .join("; "),
        );
      throw err;
    }
    // Every path a stage would read that is known now must stay in the workspace.
    for (const node of loaded.graph.nodes) {
      if (node.spec.refs.some((r) => r.via === "input")) continue;
      const inputs = resolveInputs(node, {
        ...loaded,
        namespaces: new Map(),
        env: this.ws.env,
        workspace: this.ws.dir,
      });
      confinePaths(node.spec.skill, inputs.exec, this.ws.dir);
    }
    const timeoutS = this.timeout(call.timeout_s);
    return this.slot(async () => {
      const controller = new AbortController();
      const stop = () => controller.abort();
      signal.addEventListener("abort", stop, { once: true });
      const timer = setTimeout(stop, timeoutS * 1000);
      try {
        const r = await runLoaded(loaded, this.options(reporter, controller.signal));
        return this.summary(r.runDir);
      } finally {
        clearTimeout(timer);
        signal.removeEventListener("abort", stop);
      }
    });
  }

  /** A run folder named by an agent: it must be a run inside the runs folder. */
  private runDir(path: string): string {
    const dir = resolve(this.ws.runsDir, path);
    if (!inside(this.ws.runsDir, dir))
      throw new Refusal(`${path}: not inside the runs folder ${this.ws.runsDir}`);
    if (!existsSync(join(dir, "run.json"))) throw new Refusal(`${path}: not a run folder (no run.json)`);
    return dir;
  }

  getRun(path: string) {
    const dir = this.runDir(path);
    const run = JSON.parse(readFileSync(join(dir, "run.json"), "utf8")) as Record<string, unknown>;
    const evidence = readEvidence(dir);
    return {
      ...this.summary(dir),
      pipeline: String(run.pipeline),
      mode: String(run.mode),
      root_hash: evidence?.root_hash ?? null,
      files: evidence ? Object.values(evidence.stages).reduce((n, s) => n + s.artifacts.length, 0) : 0,
    };
  }

  /**
   * The trusted verifier over a run, as `pipeline verify` runs it: the models re-make
   * `modelChecks` predictions drawn at random (1 by default, or "all"). With `reference` (a file
   * in the workspace) and/or `baseline` (another run of the same pipeline) the regression checks
   * judge it against them.
   */
  async verifyRun(
    path: string,
    against: { reference?: string; baseline?: string; modelChecks?: ModelPick["count"] } = {},
  ): Promise<VerifyReport> {
    const dir = this.runDir(path);
    let reference: string | undefined;
    if (against.reference !== undefined) {
      reference = resolve(this.ws.dir, against.reference);
      if (!inside(this.ws.dir, reference))
        throw new Refusal(`reference ${against.reference}: the path leaves the workspace ${this.ws.dir}`);
    }
    const baseline = against.baseline === undefined ? undefined : this.runDir(against.baseline);
    const problem = againstProblem(dir, reference, baseline);
    if (problem) throw new Refusal(problem);
    const modelChecks = against.modelChecks ?? 1;
    if (modelChecks !== "all" && !(Number.isInteger(modelChecks) && modelChecks >= 1))
      throw new Refusal(`model_checks ${modelChecks}: expected a count >= 1 or "all"`);
    const report = await verifyRunWithModel(dir, this.skills(), onnxGridRunner, {
      ...(reference ? { reference } : {}),
      ...(baseline ? { baseline } : {}),
      modelChecks,
    });
    writeReport(report);
    return report;
  }

  private summary(runDir: string): RunSummary {
    const run = JSON.parse(readFileSync(join(runDir, "run.json"), "utf8")) as { status: string };
    const evidence = readEvidence(runDir);
    const stages = Object.values(evidence?.stages ?? {}).map((s) => ({
      id: s.stage,
      status: s.status,
      reason: s.reason,
    }));
    let output: Record<string, unknown> | null = null;
    const only = stages.length === 1 ? stages[0] : undefined;
    const outPath = only ? join(runDir, "stages", only.id, "output.json") : "";
    if (only && existsSync(outPath))
      output = JSON.parse(readFileSync(outPath, "utf8")) as Record<string, unknown>;
    return { run_dir: relative(this.ws.runsDir, runDir), status: run.status, stages, output };
  }

  /** For tests and get_run listings: the runs of a pipeline. */
  runs(pipeline: string): string[] {
    const d = join(this.ws.runsDir, pipeline);
    return existsSync(d) ? readdirSync(d).sort() : [];
  }
}
