// How the CLI ends: results on stdout, problems on stderr (or as JSON with --json), exit codes
// 0 ok · 1 a stage or check failed · 2 usage or manifest error · 130 interrupted.
import { readFileSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { formatDiagnostic, UsageError } from "../manifest/diagnostics.js";

export const EXIT = { ok: 0, failed: 1, usage: 2, interrupted: 130 } as const;

export function printError(err: unknown, json: boolean): number {
  if (err instanceof UsageError) {
    if (json) {
      process.stdout.write(
        `${JSON.stringify({ ok: false, error: { kind: "usage", message: err.message, diagnostics: err.diagnostics } })}\n`,
      );
    } else if (err.diagnostics.length) {
      const texts = new Map<string, string | undefined>();
      for (const d of err.diagnostics) {
        if (!texts.has(d.file)) texts.set(d.file, readMaybe(d.file));
        process.stderr.write(`${formatDiagnostic(d, texts.get(d.file))}\n`);
      }
    } else {
      process.stderr.write(`error: ${err.message}\n`);
    }
    return EXIT.usage;
  }
  const message = err instanceof Error ? err.message : String(err);
  if (json) process.stdout.write(`${JSON.stringify({ ok: false, error: { kind: "internal", message } })}\n`);
  else process.stderr.write(`error: ${message}\n`);
  if (process.env.MEDPIPE_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
  return EXIT.failed;
}

function readMaybe(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return undefined;
  }
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/**
 * Refuses a folder flag (--out, --runs-dir) whose path is a file or lies under one, before any
 * work: mkdir would otherwise fail with a bare ENOTDIR/EEXIST once the work is done.
 */
export function checkFolderFlag(flag: string, path: string): void {
  const target = resolve(path);
  const kind = (p: string) => {
    try {
      return statSync(p).isDirectory() ? "folder" : "file";
    } catch {
      return null;
    }
  };
  const own = kind(target);
  if (own === "file")
    throw new UsageError(`${flag} ${target}: is a file; expected a folder (new or existing)`);
  if (own === "folder") return;
  for (let parent = dirname(target); ; parent = dirname(parent)) {
    const k = kind(parent);
    if (k === "file")
      throw new UsageError(`${flag} ${target}: ${parent} is a file, so no folder can be made there`);
    if (k === "folder" || dirname(parent) === parent) return;
  }
}
