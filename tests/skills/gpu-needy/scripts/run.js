import { fileURLToPath } from "node:url";
import { runSkill } from "../../../../dist/skill-kit/index.js";

await runSkill(fileURLToPath(new URL("../skill_manifest.yaml", import.meta.url)), async () => ({
  payload: {
    value: process.env.CUDA_VISIBLE_DEVICES ?? null,
    source_bytes: null,
    stages_per_gpu: process.env.MEDPIPE_STAGES_PER_GPU ?? null,
  },
}));
