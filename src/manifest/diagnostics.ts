/** A problem in a file the user wrote, located precisely enough to fix. */
export interface Diagnostic {
  file: string;
  line: number; // 1-based
  col: number; // 1-based
  message: string;
  expected?: string;
}

/** A user error (bad manifest, bad flag): exit code 2, no stack trace. */
export class UsageError extends Error {
  readonly exitCode = 2;
  readonly diagnostics: Diagnostic[];
  constructor(message: string, diagnostics: Diagnostic[] = []) {
    super(message);
    this.name = "UsageError";
    this.diagnostics = diagnostics;
  }
}

export class ManifestError extends UsageError {
  constructor(diagnostics: Diagnostic[]) {
    const first = diagnostics[0];
    super(
      first ? `${first.file}:${first.line}:${first.col}: ${first.message}` : "invalid manifest",
      diagnostics,
    );
    this.name = "ManifestError";
  }
}

/** `file:line:col: message`, the expectation, then the offending lines with a caret. */
export function formatDiagnostic(d: Diagnostic, sourceText?: string): string {
  const out = [`${d.file}:${d.line}:${d.col}: error: ${d.message}`];
  if (d.expected) out.push(`  expected: ${d.expected}`);
  if (sourceText !== undefined) out.push(...codeFrame(sourceText, d.line, d.col));
  return out.join("\n");
}

function codeFrame(text: string, line: number, col: number): string[] {
  const lines = text.split(/\r?\n/);
  const first = Math.max(1, line - 1);
  const last = Math.min(lines.length, line + 1);
  const width = String(last).length;
  const frame: string[] = [];
  for (let n = first; n <= last; n++) {
    const marker = n === line ? ">" : " ";
    frame.push(`  ${marker} ${String(n).padStart(width)} | ${lines[n - 1] ?? ""}`);
    if (n === line) frame.push(`    ${" ".repeat(width)} | ${" ".repeat(Math.max(0, col - 1))}^`);
  }
  return frame;
}
