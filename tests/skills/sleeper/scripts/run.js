import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runSkill } from "../../../../dist/skill-kit/index.js";

await runSkill(fileURLToPath(new URL("../skill_manifest.yaml", import.meta.url)), async (ctx) => {
  const { pid_dir: dir, sleep_ms: ms, ignore_sigterm: stubborn } = ctx.inputs;
  if (stubborn) process.on("SIGTERM", () => {});
  // A grandchild that would outlive its parent unless the whole process group is ended.
  const child = spawn(
    process.execPath,
    ["-e", `process.on("SIGTERM", () => {}); setTimeout(() => {}, ${ms * 2})`],
    {
      stdio: "ignore",
    },
  );
  writeFileSync(join(dir, `${ctx.stage.replace(/[^a-z0-9]/gi, "_")}.pids`), `${process.pid} ${child.pid}\n`);
  ctx.progress({ event: "sleeping", ms });
  await new Promise((r) => setTimeout(r, ms));
  child.kill("SIGKILL");
  return { payload: { slept_ms: ms } };
});
