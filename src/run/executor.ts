// Where a stage's process runs. The scheduler decides what runs when; an executor only runs one
// stage command and reports how it ended. `local` runs it here; a cluster executor (Slurm)
// implements the same contract.

import type { Resources } from "../skills/types.js";
import type { ProcessOutcome, ProcessSpec } from "./process.js";
import { runProcess } from "./process.js";

export interface StageJob extends ProcessSpec {
  /** Stage instance id, for names and messages. */
  stage: string;
  /** The manifest stage it is an instance of: instances ready together may go as one batch. */
  group: string;
  runId: string;
  runDir: string;
  /** Where the stage writes (its output.json lands here). */
  outputDir: string;
  resources: Resources;
  /** GPUs to ask the cluster for (0 for a CPU stage); only for executors that manage devices. */
  gpus: number;
  /** Wait for this already submitted job instead of starting one (a resumed run). */
  attach?: Attachment;
}

/** A job of an earlier engine process that a resumed run can wait for. */
export interface Attachment {
  jobId: string;
  rcFile: string;
  outputDir: string;
}

export interface Executor {
  readonly name: string;
  /** Whether devices come from the executor (a cluster) rather than the engine's local pool. */
  readonly managesDevices: boolean;
  run(job: StageJob): Promise<ProcessOutcome>;
  /** For a resumed run: a job of this stage still queued or running (or finished well), if any. */
  reattach?(stage: string, runDir: string): Attachment | null;
}

export const localExecutor: Executor = {
  name: "local",
  managesDevices: false,
  run: (job) => runProcess(job),
};
