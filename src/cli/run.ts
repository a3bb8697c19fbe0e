import { availableParallelism } from "node:os";
import { resolve } from "node:path";
import { UsageError } from "../manifest/diagnostics.js";
import type { Executor } from "../run/executor.js";
import { runPipeline } from "../run/run.js";
import { loadClusterConfig } from "../run/slurm/config.js";
import { SlurmExecutor } from "../run/slurm/executor.js";
import { checkFolderFlag } from "./output.js";
import { loadRequest, type PipelineOpts } from "./pipeline-options.js";
import { endSession, startSession } from "./run-session.js";

export interface RunOpts extends PipelineOpts {
  resume?: boolean;
  jobs?: string;
  stagesPerGpu?: string;
  runsDir?: string;
  executor?: string;
  cluster?: string;
}

function chooseExecutor(o: RunOpts): Executor | undefined {
  const name = o.executor ?? (o.cluster ? "slurm" : "local");
  if (name === "local") return undefined;
  if (name !== "slurm") throw new UsageError(`--executor ${name}: expected local or slurm`);
  return new SlurmExecutor(loadClusterConfig(o.cluster ? resolve(o.cluster) : null));
}

export async function runCommand(manifest: string, o: RunOpts): Promise<number> {
  const req = loadRequest(manifest, o);
  const executor = chooseExecutor(o);
  const jobs = Number(o.jobs ?? (executor ? 256 : availableParallelism()));
  if (!Number.isInteger(jobs) || jobs < 1)
    throw new UsageError(`--jobs ${o.jobs}: expected a positive integer`);
  const stagesPerGpu = o.stagesPerGpu === undefined ? undefined : Number(o.stagesPerGpu);
  if (stagesPerGpu !== undefined && (!Number.isInteger(stagesPerGpu) || stagesPerGpu < 1))
    throw new UsageError(`--stages-per-gpu ${o.stagesPerGpu}: expected a positive integer`);
  const runsDir = resolve(req.workspace, o.runsDir ?? "runs");
  checkFolderFlag("--runs-dir", runsDir);
  const session = await startSession(o.json);
  const result = await runPipeline({
    ...req,
    ...session,
    ...(executor ? { executor } : {}),
    runsDir,
    jobs,
    ...(stagesPerGpu ? { stagesPerGpu } : {}),
    resume: Boolean(o.resume),
  });
  return endSession(session, result, o.json);
}
