import { resolve } from "node:path";
import { runScript } from "../agent/run-script.js";
import { UsageError } from "../manifest/diagnostics.js";
import { jsonReporter, plainReporter } from "../run/report.js";
import { EXIT } from "./output.js";

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
  const reporter = o.json ? jsonReporter() : plainReporter();
  const controller = new AbortController();
  process.on("SIGINT", () => controller.abort());
  process.on("SIGTERM", () => controller.abort());
  const result = await runScript({
    script,
    args,
    mode: o.smoke ? "smoke" : "full",
    ...(timeoutS ? { timeoutS } : {}),
    workspace,
    env: process.env as Record<string, string | undefined>,
    skillsDirs: o.skillsDir,
    runsDir: resolve(workspace, o.runsDir ?? "runs"),
    jobs: 1,
    resume: false,
    reporter,
    signal: controller.signal,
    graceMs: Number(process.env.MEDPIPE_KILL_GRACE_MS ?? 5000),
    argv: process.argv.slice(2),
  });
  await reporter.close();
  if (!o.json) process.stdout.write(`${result.runDir}\n`);
  return result.status === "succeeded"
    ? EXIT.ok
    : result.status === "interrupted"
      ? EXIT.interrupted
      : EXIT.failed;
}
