// Runs the real `pipeline` command (the built dist/) as a child process.
import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const BIN = fileURLToPath(new URL("../../bin/pipeline.js", import.meta.url));
export const TEST_SKILLS = fileURLToPath(new URL("../skills/", import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export function cli(
  args: string[],
  opts: { cwd: string; env?: Record<string, string>; timeoutMs?: number },
): CliResult {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: opts.cwd,
    env: { ...process.env, CI: "1", ...opts.env },
    encoding: "utf8",
    timeout: opts.timeoutMs ?? 120_000,
  });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** Starts `pipeline` without waiting, for tests that signal it mid-run. */
export function cliAsync(args: string[], opts: { cwd: string; env?: Record<string, string> }) {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: opts.cwd,
    env: { ...process.env, CI: "1", ...opts.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const done = new Promise<CliResult>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { child, done, output: () => ({ stdout, stderr }) };
}

/** 1-based line and column of the first occurrence of `marker` in `text` (a hand-checkable oracle). */
export function positionOf(text: string, marker: string): { line: number; col: number } {
  const i = text.indexOf(marker);
  if (i < 0) throw new Error(`marker ${marker} not in text`);
  const before = text.slice(0, i).split("\n");
  return { line: before.length, col: (before[before.length - 1] as string).length + 1 };
}
