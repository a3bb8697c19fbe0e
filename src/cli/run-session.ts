// What `run` and `run-script` share around a run: the progress view, Ctrl-C, and the ending.
import type { Reporter } from "../run/events.js";
import { jsonReporter, plainReporter, ttyReporter } from "../run/report.js";
import type { RunResult } from "../run/run.js";
import { EXIT } from "./output.js";

export interface Session {
  reporter: Reporter;
  signal: AbortSignal;
  graceMs: number;
  argv: string[];
}

/** NDJSON with --json, live tasks on a terminal, plain lines otherwise; Ctrl-C stops the run. */
export async function startSession(json: boolean | undefined): Promise<Session> {
  const reporter = json
    ? jsonReporter()
    : process.stderr.isTTY && !process.env.CI
      ? await ttyReporter()
      : plainReporter();
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  return {
    reporter,
    signal: controller.signal,
    graceMs: Number(process.env.MEDPIPE_KILL_GRACE_MS ?? 5000),
    argv: process.argv.slice(2),
  };
}

/** The run folder as the last line (not with --json, whose last event carries it), and the exit code. */
export async function endSession(s: Session, result: RunResult, json: boolean | undefined): Promise<number> {
  await s.reporter.close();
  if (!json) process.stdout.write(`${result.runDir}\n`);
  if (result.status === "succeeded") return EXIT.ok;
  return result.status === "interrupted" ? EXIT.interrupted : EXIT.failed;
}
