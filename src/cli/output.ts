// How the CLI ends: results on stdout, problems on stderr (or as JSON with --json), exit codes
// 0 ok · 1 a stage or check failed · 2 usage or manifest error · 130 interrupted.
import { readFileSync } from "node:fs";
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
