// One error type for the infer library: a bad model package or a bad image, one line naming
// the file, so the skill can print it as its exit reason without a stack.

export class InferError extends Error {
  readonly file: string;
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = "InferError";
    this.file = file;
  }
}
