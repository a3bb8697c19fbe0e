// Bad finetune input (unknown anatomy, a mapping to a class the model lacks, no validation case,
// labels absent from every volume...): found before any training, reported in one line, and a
// usage error for the skill kit (exit 2), like any other input that fails its schema.
import { SkillInputError } from "../skill-kit/index.js";

export class FinetuneInputError extends SkillInputError {}

/** A CUDA out-of-memory of the trainer: the stage fails with runtime.oom recorded. */
export class FinetuneOomError extends Error {
  constructor(
    message: string,
    readonly hint: string,
    readonly peakGpuMb: number | null,
  ) {
    super(`${message} (${hint})`);
  }
}
