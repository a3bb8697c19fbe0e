// Running one module of the Python package (src/py/medpipe) as a child process: NDJSON events on
// its stdout become progress, its stderr passes through to ours (the stage log), and a failure
// becomes an error carrying the child's last stderr line (its one-line reason).
import { spawn } from "node:child_process";
import { rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { PROJECT_ROOT } from "../paths.js";
import { findPython, pythonProblem } from "../run/python.js";

/** The folder that holds the `medpipe` Python package. */
export const PY_ROOT = join(PROJECT_ROOT, "src", "py");

export type PyEvent = Record<string, unknown> & { event: string };

export class PythonError extends Error {
  constructor(
    message: string,
    readonly code: number | null,
    readonly events: PyEvent[],
  ) {
    super(message);
  }
}

export interface PythonRun {
  code: number;
  events: PyEvent[];
}

/** The interpreter: PIPELINE_PYTHON when set, else the first of python3, /usr/bin/python3, python with torch + numpy. */
export function pythonCommand(): string {
  const { runtime, probes } = findPython();
  if (!runtime)
    throw new Error(`${pythonProblem(probes)}${process.env.PIPELINE_PYTHON ? "" : "; set PIPELINE_PYTHON"}`);
  return runtime.command;
}

/**
 * `python -m <module> ...args`. Every stdout line that is a JSON object with an `event` goes to
 * `onEvent`; any other stdout line is copied to stderr (it must not corrupt our own NDJSON).
 * Resolves with the exit code and events on success; rejects with PythonError otherwise.
 */
export function runPythonModule(
  module: string,
  args: string[],
  onEvent: (e: PyEvent) => void,
  opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<PythonRun> {
  const command = pythonCommand();
  const env = {
    ...process.env,
    ...opts.env,
    PYTHONPATH: [PY_ROOT, process.env.PYTHONPATH].filter(Boolean).join(":"),
    PYTHONDONTWRITEBYTECODE: "1",
    PYTHONUNBUFFERED: "1",
  };
  return new Promise((resolve, reject) => {
    const child = spawn(command, ["-m", module, ...args], {
      cwd: opts.cwd,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const events: PyEvent[] = [];
    let lastErr = "";
    createInterface({ input: child.stdout }).on("line", (line) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        parsed = null;
      }
      if (parsed && typeof parsed === "object" && typeof (parsed as PyEvent).event === "string") {
        events.push(parsed as PyEvent);
        onEvent(parsed as PyEvent);
      } else process.stderr.write(`${line}\n`);
    });
    child.stderr.on("data", (d: Buffer) => {
      process.stderr.write(d);
      const lines = d.toString().trim().split("\n").filter(Boolean);
      if (lines.length) lastErr = lines[lines.length - 1] as string;
    });
    // No signal handling here: the engine signals the stage's whole process group, and Ctrl-C
    // in a shell reaches the foreground group, so the child is stopped with us either way.
    child.on("error", (err) => {
      reject(new PythonError(`${command} -m ${module}: ${err.message}`, null, events));
    });
    child.on("close", (code, signal) => {
      if (code === 0) resolve({ code, events });
      else
        reject(
          new PythonError(
            lastErr || `${command} -m ${module} ended with ${ending(code, signal)}`,
            code,
            events,
          ),
        );
    });
  });
}

function ending(code: number | null, signal: NodeJS.Signals | null): string {
  if (signal === null) return `exit code ${code}`;
  // The engine stops a stage with SIGTERM first; a bare SIGKILL is most often Linux's
  // out-of-memory killer, which leaves the process no chance to say so itself.
  return signal === "SIGKILL"
    ? "signal SIGKILL (likely the system ran out of memory: try a smaller patch_size or batch_size)"
    : `signal ${signal}`;
}

/**
 * `python -m medpipe.package`: the model package of `checkpoint` with `plan` in `outDir`, with
 * `card` merged into its model card. The card goes through a temporary file next to the package
 * (removed afterwards, also on failure).
 */
export async function packageModel(
  checkpoint: string,
  plan: string,
  outDir: string,
  card: Record<string, unknown>,
  onEvent: (e: PyEvent) => void,
): Promise<void> {
  const cardPath = join(dirname(outDir), ".card.json");
  await writeFile(cardPath, JSON.stringify(card));
  try {
    await runPythonModule(
      "medpipe.package",
      ["--checkpoint", checkpoint, "--plan", plan, "--output-dir", outDir, "--card-json", cardPath],
      onEvent,
    );
  } finally {
    await rm(cardPath, { force: true });
  }
}
