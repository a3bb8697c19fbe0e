import { fileURLToPath } from "node:url";
import { runSkill } from "../../../../dist/skill-kit/index.js";

await runSkill(fileURLToPath(new URL("../skill_manifest.yaml", import.meta.url)), async (ctx) => ({
  payload: { metrics: { dice: ctx.inputs.dice } },
}));
