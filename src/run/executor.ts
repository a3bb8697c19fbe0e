// Where a stage's process runs. The scheduler decides what runs when; an executor only runs one
// stage command and reports how it ended. `local` runs it here; a cluster executor (Slurm)
// implements the same contract.
import type { ProcessOutcome, ProcessSpec } from "./process.js";
import { runProcess } from "./process.js";

export interface StageJob extends ProcessSpec {
  /** Stage instance id, for names and messages. */
  stage: string;
}

export interface Executor {
  readonly name: string;
  run(job: StageJob): Promise<ProcessOutcome>;
}

export const localExecutor: Executor = {
  name: "local",
  run: (job) => runProcess(job),
};
