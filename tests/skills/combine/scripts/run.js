import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runSkill } from "../../../../dist/skill-kit/index.js";

await runSkill(fileURLToPath(new URL("../skill_manifest.yaml", import.meta.url)), async (ctx) => {
  const { values, files } = ctx.inputs;
  writeFileSync(join(ctx.outputDir, "joined.txt"), files.map((f) => readFileSync(f, "utf8")).join(""));
  return { payload: { sum: values.reduce((a, b) => a + b, 0), count: values.length } };
});
