import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runSkill } from "../../../../dist/skill-kit/index.js";

const size = (p) =>
  statSync(p).isDirectory()
    ? readdirSync(p).reduce((n, f) => n + size(join(p, f)), 0)
    : readFileSync(p).length;

await runSkill(fileURLToPath(new URL("../skill_manifest.yaml", import.meta.url)), async (ctx) => {
  for (let i = 1; i <= ctx.inputs.count; i++)
    ctx.progress({ event: "step", epoch: i, of: ctx.inputs.count, loss: 1 / i });
  if (ctx.inputs.sleep_ms) await new Promise((r) => setTimeout(r, ctx.inputs.sleep_ms));
  const sourceBytes = ctx.inputs.source ? size(ctx.inputs.source) : null;
  writeFileSync(join(ctx.outputDir, "out.txt"), `${JSON.stringify(ctx.inputs.value)}\n`);
  return { payload: { value: ctx.inputs.value, source_bytes: sourceBytes }, roles: { "out.txt": "text" } };
});
