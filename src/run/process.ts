// Runs one stage process: never through a shell, in its own process group, so that a timeout or
// an interrupt ends it and everything it started (SIGTERM, then SIGKILL after a grace period).
import { createWriteStream, readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { execa } from "execa";

export interface ProcessSpec {
  command: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  stdoutLog: string;
  stderrLog: string;
  timeoutMs: number | null;
  signal: AbortSignal;
  graceMs: number;
  onStdoutLine(line: string): void;
}

export interface ProcessOutcome {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  interrupted: boolean;
  wallS: number;
  peakRssMb: number | null;
  stderrTail: string;
  spawnError: string | null;
  /** Why the executor ended it, when that is more than an exit code (a cluster's job state). */
  reason?: string | null;
}

// The SIGKILLs of stages being stopped that still wait out their grace period: a second Ctrl-C
// sends them at once (killStoppingNow), for a user who will not wait for a stuck stage.
const pendingKills = new Set<() => void>();

export function killStoppingNow(): void {
  for (const kill of [...pendingKills]) kill();
}

export async function runProcess(spec: ProcessSpec): Promise<ProcessOutcome> {
  const started = performance.now();
  const child = execa(spec.command, spec.args, {
    cwd: spec.cwd,
    env: spec.env,
    extendEnv: false,
    detached: true,
    stdin: "ignore",
    buffer: false,
    reject: false,
    cleanup: false,
  });
  const pid = child.pid;
  let timedOut = false;
  let interrupted = false;
  let peakKb = 0;
  let stderrTail = "";

  const stdoutFile = createWriteStream(spec.stdoutLog);
  const stderrFile = createWriteStream(spec.stderrLog);
  child.stdout?.pipe(stdoutFile);
  child.stderr?.pipe(stderrFile);
  child.stderr?.on("data", (chunk: Buffer) => {
    stderrTail = (stderrTail + chunk.toString("utf8")).slice(-4000);
  });
  if (child.stdout) createInterface({ input: child.stdout }).on("line", spec.onStdoutLine);

  const killGroup = (sig: NodeJS.Signals): void => {
    if (pid === undefined) return;
    try {
      process.kill(-pid, sig);
    } catch {
      // the group is already gone
    }
  };
  let killTimer: NodeJS.Timeout | undefined;
  const killNow = (): void => killGroup("SIGKILL");
  const terminate = (): void => {
    killGroup("SIGTERM");
    killTimer ??= setTimeout(killNow, spec.graceMs);
    pendingKills.add(killNow);
  };
  const timer = spec.timeoutMs
    ? setTimeout(() => {
        timedOut = true;
        terminate();
      }, spec.timeoutMs)
    : undefined;
  const onAbort = (): void => {
    interrupted = true;
    terminate();
  };
  if (spec.signal.aborted) onAbort();
  else spec.signal.addEventListener("abort", onAbort, { once: true });
  // Peak memory is sampled from /proc (Linux): the high-water mark of the stage's main process.
  const sampler = setInterval(() => {
    peakKb = Math.max(peakKb, readHighWater(pid));
  }, 200);

  const result = await child;
  clearInterval(sampler);
  if (timer) clearTimeout(timer);
  spec.signal.removeEventListener("abort", onAbort);
  // Whatever the stage left behind in its group goes with it.
  killGroup("SIGKILL");
  if (killTimer) clearTimeout(killTimer);
  pendingKills.delete(killNow);
  await Promise.all([finished(stdoutFile), finished(stderrFile)]);
  const spawnError =
    result.exitCode === undefined && !result.signal ? (result.shortMessage ?? "could not start") : null;
  return {
    exitCode: result.exitCode ?? null,
    signal: result.signal ?? null,
    timedOut,
    interrupted,
    wallS: (performance.now() - started) / 1000,
    peakRssMb: peakKb ? peakKb / 1024 : null,
    stderrTail,
    spawnError,
  };
}

function readHighWater(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

function finished(stream: NodeJS.WritableStream & { writableFinished?: boolean }): Promise<void> {
  if (stream.writableFinished) return Promise.resolve();
  return new Promise((res) => {
    stream.on("finish", () => res());
    stream.on("error", () => res());
  });
}
