// The Slurm executor: each ready stage becomes an sbatch job (instances of one stage that are
// ready together become one job array), tracked by polling squeue with backoff. Timeouts and
// interrupts end jobs with scancel. The scheduler above it is the same as for local runs, so
// output.json and evidence rules do not change.
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  appendFileSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { execa } from "execa";
import type { Attachment, Executor, StageJob } from "../executor.js";
import type { ProcessOutcome } from "../process.js";
import type { ClusterConfig } from "./config.js";
import { jobScript, slurmTime } from "./script.js";

/** Pending reasons that mean the job will never start as submitted. */
const NEVER = new Set([
  "PartitionConfig",
  "PartitionNodeLimit",
  "PartitionTimeLimit",
  "BadConstraints",
  "InvalidAccount",
  "InvalidQOS",
  "QOSMaxCpuPerJobLimit",
  "QOSMaxGRESPerJob",
  "AssocMaxCpuPerJobLimit",
]);

const TERMINAL = new Set([
  "COMPLETED",
  "FAILED",
  "CANCELLED",
  "TIMEOUT",
  "OUT_OF_MEMORY",
  "NODE_FAIL",
  "PREEMPTED",
  "BOOT_FAIL",
  "DEADLINE",
]);

interface JobRecord {
  stage: string;
  job_id: string;
  script: string;
  rc_file: string;
  output_dir: string;
  submitted: string;
}

interface Tracked {
  job: StageJob;
  /** squeue id: `123` for a single job, `123_4` for an array task. */
  id: string;
  rcFile: string;
  resolve: (o: ProcessOutcome) => void;
  submittedAt: number;
  startedAt: number | null;
  state: string;
  missingPolls: number;
  stdoutOffset: number;
  timedOut: boolean;
  interrupted: boolean;
  /** Set when Slurm says the job can never start. */
  impossible?: string;
  timer: NodeJS.Timeout | undefined;
}

export class SlurmExecutor implements Executor {
  readonly name = "slurm";
  readonly managesDevices = true;
  private pending: { job: StageJob; resolve: (o: ProcessOutcome) => void }[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private readonly tracked = new Map<string, Tracked>();
  private polling = false;
  private interval: number;

  constructor(
    readonly config: ClusterConfig,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.interval = config.poll_interval_s * 1000;
  }

  run(job: StageJob): Promise<ProcessOutcome> {
    const attach = job.attach;
    if (attach)
      return new Promise((resolve) => {
        this.track(job, attach.jobId, attach.rcFile, resolve);
        this.ensurePolling();
      });
    return new Promise((resolve) => {
      this.pending.push({ job, resolve });
      if (!this.flushTimer)
        this.flushTimer = setTimeout(() => {
          this.flushTimer = undefined;
          void this.flush();
        }, this.config.batch_window_ms);
    });
  }

  private async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = [];
    const groups = new Map<string, typeof batch>();
    for (const p of batch) {
      const key = `${p.job.group}|${JSON.stringify(p.job.resources)}|${p.job.gpus}|${p.job.timeoutMs}`;
      groups.set(key, [...(groups.get(key) ?? []), p]);
    }
    for (const items of groups.values()) await this.submit(items);
    this.ensurePolling();
  }

  private sbatchArgs(job: StageJob, n: number, dir: string): string[] {
    const c = this.config;
    const args = ["--parsable", `--job-name=${job.runId}:${job.group}`, `--chdir=${job.cwd}`];
    args.push(`--output=${join(dir, "%x-%A_%a.out")}`);
    if (n > 1) args.push(`--array=0-${n - 1}`);
    if (c.partition) args.push(`--partition=${c.partition}`);
    if (c.account) args.push(`--account=${c.account}`);
    if (c.qos) args.push(`--qos=${c.qos}`);
    const time = job.timeoutMs ? slurmTime(job.timeoutMs) : c.time;
    if (time) args.push(`--time=${time}`);
    const wanted = job.resources.cpus ?? c.cpus;
    const cpus = wanted && c.max_cpus_per_task ? Math.min(wanted, c.max_cpus_per_task) : wanted;
    if (cpus) args.push(`--cpus-per-task=${cpus}`);
    const mem = job.resources.memory ?? c.mem;
    if (mem) args.push(`--mem=${mem.replace(/i?B$/, "")}`);
    if (job.gpus > 0) args.push(c.gpu_request === "gpus" ? `--gpus=${job.gpus}` : `--gres=gpu:${job.gpus}`);
    args.push(...c.extra_sbatch);
    return args;
  }

  private async submit(items: { job: StageJob; resolve: (o: ProcessOutcome) => void }[]): Promise<void> {
    const first = items[0]?.job as StageJob;
    const dir = join(first.runDir, "slurm");
    mkdirSync(dir, { recursive: true });
    const name = `${first.group}-${randomBytes(3).toString("hex")}`;
    const rcFiles = items.map((_, i) => join(dir, `${name}.${i}.rc`));
    const script = join(dir, `${name}.sh`);
    writeFileSync(
      script,
      jobScript(
        items.map((i) => i.job),
        rcFiles,
        this.env,
      ),
      { mode: 0o755 },
    );
    const r = await execa("sbatch", [...this.sbatchArgs(first, items.length, dir), script], {
      reject: false,
      env: this.env,
      extendEnv: false,
    });
    if (r.exitCode !== 0) {
      const why = `sbatch failed: ${String(r.stderr).trim().split("\n").pop() ?? `exit ${r.exitCode}`}`;
      for (const it of items) it.resolve(outcome({ spawnError: why }));
      return;
    }
    const jobId = String(r.stdout).trim().split(";")[0] as string;
    items.forEach((it, i) => {
      const id = items.length > 1 ? `${jobId}_${i}` : jobId;
      const record: JobRecord = {
        stage: it.job.stage,
        job_id: id,
        script,
        rc_file: rcFiles[i] as string,
        output_dir: it.job.outputDir,
        submitted: new Date().toISOString(),
      };
      appendFileSync(join(dir, "jobs.ndjson"), `${JSON.stringify(record)}\n`);
      this.track(it.job, id, record.rc_file, it.resolve);
    });
  }

  private track(job: StageJob, id: string, rcFile: string, resolve: (o: ProcessOutcome) => void): void {
    const t: Tracked = {
      job,
      id,
      rcFile,
      resolve,
      submittedAt: Date.now(),
      startedAt: null,
      state: "PENDING",
      missingPolls: 0,
      stdoutOffset: 0,
      timedOut: false,
      interrupted: false,
      timer: undefined,
    };
    if (job.timeoutMs)
      t.timer = setTimeout(() => {
        t.timedOut = true;
        void this.cancel(t);
      }, job.timeoutMs);
    const onAbort = () => {
      t.interrupted = true;
      void this.cancel(t);
    };
    if (job.signal.aborted) onAbort();
    else job.signal.addEventListener("abort", onAbort, { once: true });
    this.tracked.set(id, t);
  }

  /**
   * A job this run submitted before the engine stopped, still queued, running, or finished
   * well: a resumed run waits for it instead of submitting the stage again.
   */
  reattach(stage: string, runDir: string): Attachment | null {
    const file = join(runDir, "slurm", "jobs.ndjson");
    if (!existsSync(file)) return null;
    const records = readFileSync(file, "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as JobRecord)
      .filter((r) => r.stage === stage);
    const last = records[records.length - 1];
    if (!last || !existsSync(last.output_dir)) return null;
    const q = spawnSync(
      "squeue",
      ["-h", "--states=all", "-o", "%i %T", "-j", last.job_id.split("_")[0] as string],
      {
        encoding: "utf8",
        env: this.env,
      },
    );
    const line = q.stdout
      ?.split("\n")
      .map((l) => l.trim().split(/\s+/))
      .find(([id]) => id === last.job_id || id?.startsWith(`${last.job_id.split("_")[0]}_[`));
    const state = line?.[1];
    const rc = existsSync(last.rc_file) ? readRc(last.rc_file) : null;
    const alive = state !== undefined && !TERMINAL.has(state);
    const done = rc === 0 && existsSync(join(last.output_dir, "output.json"));
    return alive || done ? { jobId: last.job_id, rcFile: last.rc_file, outputDir: last.output_dir } : null;
  }

  private async cancel(t: Tracked): Promise<void> {
    await execa("scancel", [t.id], { reject: false, env: this.env, extendEnv: false });
  }

  private ensurePolling(): void {
    if (this.polling || this.tracked.size === 0) return;
    this.polling = true;
    const tick = async (): Promise<void> => {
      await this.poll();
      if (this.tracked.size === 0) {
        this.polling = false;
        this.interval = this.config.poll_interval_s * 1000;
        return;
      }
      this.interval = Math.min(this.interval * 1.5, this.config.max_poll_interval_s * 1000);
      setTimeout(() => void tick(), this.interval);
    };
    setTimeout(() => void tick(), this.interval);
  }

  private async poll(): Promise<void> {
    const parents = [...new Set([...this.tracked.keys()].map((id) => id.split("_")[0] as string))];
    const r = await execa("squeue", ["-h", "--states=all", "-o", "%i %T %r", "-j", parents.join(",")], {
      reject: false,
      env: this.env,
      extendEnv: false,
    });
    const states = new Map<string, string>();
    const reasons = new Map<string, string>();
    for (const line of String(r.stdout).split("\n")) {
      const [id, state, reason] = line.trim().split(/\s+/);
      if (id && state) states.set(id, state);
      if (id && reason) reasons.set(id, reason);
    }
    for (const t of [...this.tracked.values()]) {
      const state = states.get(t.id);
      // A pending array shows as one line, `123_[2-5]`, until its tasks start.
      const pendingArray = [...states.keys()].some((k) => k.startsWith(`${t.id.split("_")[0]}_[`));
      if (state) {
        t.missingPolls = 0;
        if (t.state !== state) {
          t.state = state;
          if (state === "RUNNING" && t.startedAt === null) t.startedAt = Date.now();
          // Progress changes the pace: poll sooner after a change.
          this.interval = this.config.poll_interval_s * 1000;
        }
      } else if (!pendingArray) {
        t.missingPolls++;
      }
      this.tail(t);
      // A job the cluster can never start (more CPUs than a node has, a bad partition or QOS)
      // would wait forever: end it with Slurm's reason.
      const why = reasons.get(t.id) ?? reasons.get(`${t.id.split("_")[0]}_[`) ?? "";
      if (state === "PENDING" && NEVER.has(why)) {
        t.impossible = why;
        await this.cancel(t);
        await this.finish(t, "PENDING");
        continue;
      }
      const rcKnown = existsSync(t.rcFile);
      if ((state && TERMINAL.has(state)) || (!state && !pendingArray && (rcKnown || t.missingPolls >= 5))) {
        await this.finish(
          t,
          state ?? (rcKnown ? (readRc(t.rcFile) === 0 ? "COMPLETED" : "FAILED") : "VANISHED"),
        );
      }
    }
  }

  /** Progress lines from the stage's stdout log while it runs. */
  private tail(t: Tracked): void {
    if (!existsSync(t.job.stdoutLog)) return;
    const size = statSync(t.job.stdoutLog).size;
    if (size <= t.stdoutOffset) return;
    const fd = openSync(t.job.stdoutLog, "r");
    const buf = Buffer.alloc(size - t.stdoutOffset);
    readSync(fd, buf, 0, buf.length, t.stdoutOffset);
    closeSync(fd);
    const text = buf.toString("utf8");
    const end = text.lastIndexOf("\n");
    if (end < 0) return;
    t.stdoutOffset += Buffer.byteLength(text.slice(0, end + 1));
    for (const line of text.slice(0, end).split("\n")) t.job.onStdoutLine(line);
  }

  private async finish(t: Tracked, state: string): Promise<void> {
    this.tracked.delete(t.id);
    if (t.timer) clearTimeout(t.timer);
    // A slow shared filesystem may show the files a little after the job ended.
    const deadline = Date.now() + this.config.fs_wait_s * 1000;
    while (
      state === "COMPLETED" &&
      Date.now() < deadline &&
      !existsSync(join(t.job.outputDir, "output.json"))
    )
      await new Promise((r) => setTimeout(r, 250));
    while (!existsSync(t.rcFile) && Date.now() < deadline && state !== "CANCELLED" && state !== "TIMEOUT")
      await new Promise((r) => setTimeout(r, 250));
    this.tail(t);
    const rc = existsSync(t.rcFile) ? readRc(t.rcFile) : null;
    const stderrTail = existsSync(t.job.stderrLog) ? readFileSync(t.job.stderrLog, "utf8").slice(-4000) : "";
    const wallS = (Date.now() - (t.startedAt ?? t.submittedAt)) / 1000;
    const base = { wallS, stderrTail, exitCode: rc };
    if (t.interrupted) return t.resolve(outcome({ ...base, interrupted: true }));
    if (t.timedOut || state === "TIMEOUT") return t.resolve(outcome({ ...base, timedOut: true }));
    if (state === "COMPLETED" && rc === 0) return t.resolve(outcome(base));
    const last = stderrTail.trim().split("\n").pop()?.trim();
    const code = rc !== null ? ` with exit code ${rc}` : "";
    const reason = t.impossible
      ? `Slurm cannot start job ${t.id} (pending: ${t.impossible}); the stage asks for more than the cluster offers (cpus, memory, GPUs or time)`
      : state === "VANISHED"
        ? `Slurm job ${t.id} left squeue without a recorded exit code`
        : `Slurm job ${t.id} ended ${state}${code}${last ? `: ${last}` : ""}`;
    t.resolve(outcome({ ...base, reason }));
  }
}

function readRc(file: string): number | null {
  const n = Number(readFileSync(file, "utf8").trim());
  return Number.isInteger(n) ? n : null;
}

function outcome(o: Partial<ProcessOutcome>): ProcessOutcome {
  return {
    exitCode: null,
    signal: null,
    timedOut: false,
    interrupted: false,
    wallS: 0,
    peakRssMb: null,
    stderrTail: "",
    spawnError: null,
    reason: null,
    ...o,
  };
}
