import { spawnSync } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { availableParallelism, userInfo } from "node:os";
import { delimiter, join, resolve } from "node:path";
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
  // Up front: without these the run would only fail at its first stage, after the local ones.
  const missing = ["sbatch", "squeue", "scancel"].filter((cmd) => !onPath(cmd));
  if (missing.length)
    throw new UsageError(
      `--executor slurm: ${missing.join(", ")} not found on PATH; expected a machine that can submit Slurm jobs`,
    );
  // Our own jobs: the smallest question that needs the controller to answer.
  const ping = spawnSync("squeue", ["-h", "-o", "%i", "-u", userInfo().username], {
    encoding: "utf8",
    timeout: 20_000,
  });
  if (ping.error || ping.status !== 0) {
    const why = ping.error?.message ?? ping.stderr.trim().split("\n").pop() ?? `exit ${ping.status}`;
    throw new UsageError(`--executor slurm: the Slurm controller does not answer: ${why}`);
  }
  return new SlurmExecutor(loadClusterConfig(o.cluster ? resolve(o.cluster) : null));
}

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? "").split(delimiter).some((dir) => {
    try {
      accessSync(join(dir || ".", cmd), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
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
