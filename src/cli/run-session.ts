// What `run` and `run-script` share around a run: the progress view, Ctrl-C, and the ending.
import { UsageError } from "../manifest/diagnostics.js";
import type { Reporter } from "../run/events.js";
import { killStoppingNow } from "../run/process.js";
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
  const graceMs = killGraceMs(process.env.MEDPIPE_KILL_GRACE_MS);
  // A terminal that reports no width (some serial consoles say 0) would get the live view
  // wrapped a character a line: plain lines there.
  const reporter = json
    ? jsonReporter()
    : process.stderr.isTTY && !process.env.CI && (process.stderr.columns ?? 0) >= 20
      ? await ttyReporter()
      : plainReporter();
  const controller = new AbortController();
  // The first Ctrl-C (or SIGTERM) stops the stages with their grace period; the next kills them.
  const stop = (): void => {
    if (controller.signal.aborted) killStoppingNow();
    else controller.abort();
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  return {
    reporter,
    signal: controller.signal,
    graceMs,
    argv: process.argv.slice(2),
  };
}

/**
 * MEDPIPE_KILL_GRACE_MS, checked before anything runs: Number("abc") is NaN, which setTimeout
 * takes as 0, so a typo would SIGKILL every stopped stage at once, with no time to clean up;
 * above 2^31-1 setTimeout also fires at once.
 */
export function killGraceMs(text: string | undefined): number {
  if (text === undefined || text.trim() === "") return 5000;
  const n = /^\s*\d+\s*$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n) || n > 2_147_483_647)
    throw new UsageError(
      `MEDPIPE_KILL_GRACE_MS=${text}: expected whole milliseconds in 0..2147483647 (default 5000)`,
    );
  return n;
}

/** The run folder as the last line (not with --json, whose last event carries it), and the exit code. */
export async function endSession(s: Session, result: RunResult, json: boolean | undefined): Promise<number> {
  await s.reporter.close();
  if (!json) process.stdout.write(`${result.runDir}\n`);
  if (result.status === "succeeded") return EXIT.ok;
  return result.status === "interrupted" ? EXIT.interrupted : EXIT.failed;
}
