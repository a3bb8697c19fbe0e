/** A file could not be read as an image: bad magic, truncated, unsupported type... One line, names the file. */
export class ImageReadError extends Error {
  readonly file: string;
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = "ImageReadError";
    this.file = file;
  }
}

/** An image could not be written: unsupported data or a failed write. One line, names the file. */
export class ImageWriteError extends Error {
  readonly file: string;
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = "ImageWriteError";
    this.file = file;
  }
}

/** First line of an unknown thrown value, so wrapped errors stay one line. */
export function reason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split("\n")[0] ?? text;
}
