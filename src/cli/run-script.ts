import { resolve } from "node:path";
import { runScript } from "../agent/run-script.js";
import { UsageError } from "../manifest/diagnostics.js";
import { checkFolderFlag } from "./output.js";
import { endSession, startSession } from "./run-session.js";

export async function runScriptCommand(
  script: string,
  args: string[],
  o: {
    smoke?: boolean;
    timeout?: string;
    workdir?: string;
    runsDir?: string;
    skillsDir: string[];
    json?: boolean;
  },
): Promise<number> {
  const timeoutS = o.timeout === undefined ? undefined : Number(o.timeout);
  if (timeoutS !== undefined && !(timeoutS > 0))
    throw new UsageError(`--timeout ${o.timeout}: expected seconds > 0`);
  const workspace = resolve(o.workdir ?? process.cwd());
  const runsDir = resolve(workspace, o.runsDir ?? "runs");
  checkFolderFlag("--runs-dir", runsDir);
  const session = await startSession(o.json);
  const result = await runScript({
    script,
    args,
    mode: o.smoke ? "smoke" : "full",
    ...(timeoutS ? { timeoutS } : {}),
    workspace,
    env: process.env as Record<string, string | undefined>,
    skillsDirs: o.skillsDir,
    runsDir,
    jobs: 1,
    resume: false,
    ...session,
  });
  return endSession(session, result, o.json);
}
