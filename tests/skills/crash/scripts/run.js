import { fileURLToPath } from "node:url";
import { runSkill } from "../../../../dist/skill-kit/index.js";

await runSkill(fileURLToPath(new URL("../skill_manifest.yaml", import.meta.url)), async (ctx) => {
  process.stderr.write(`crashing on purpose with exit code ${ctx.inputs.code}\n`);
  process.exit(ctx.inputs.code);
});
