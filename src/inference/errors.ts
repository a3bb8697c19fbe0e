/**
 * Inference could not run: a missing or invalid model, or a model that does not fit
 * the volume (channels, dimensionality, output shape). One line, names the file, so
 * a batch job can report it per case and move on.
 */
export class InferenceError extends Error {
  readonly file: string;
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = "InferenceError";
    this.file = file;
  }
}

/** First line of an unknown thrown value: onnxruntime's messages span lines, ours must not. */
export function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return (text.split("\n")[0] ?? text).trim();
}
