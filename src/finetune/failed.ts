// A failed finetune's output.json: written only for a CUDA out-of-memory, so that the run's
// record says oom (with the peak memory) instead of only an exit code. status "failed", no
// checkpoint, no artifact: nothing in it can pass for a result.
import { join } from "node:path";
import { writeJsonAtomic } from "../evidence/atomic.js";
import { nodeEnvironment } from "../skill-kit/environment.js";
import type { SkillContext } from "../skill-kit/index.js";
import { loadSkill } from "../skills/registry.js";
import type { FinetuneOomError } from "./errors.js";

export function writeFailedOutput(
  manifestPath: string,
  ctx: SkillContext,
  err: FinetuneOomError,
  startedMs: number,
): void {
  const m = loadSkill(manifestPath).manifest;
  writeJsonAtomic(join(ctx.outputDir, "output.json"), {
    skill: m.id,
    skill_version: m.version,
    stage: ctx.stage,
    mode: ctx.mode,
    status: "failed",
    inputs: { values: ctx.inputs, hashes: {} },
    environment: nodeEnvironment(),
    runtime: {
      wall_s: (performance.now() - startedMs) / 1000,
      exit_code: 1,
      oom: true,
      peak_rss_mb: process.resourceUsage().maxRSS / 1024,
      peak_gpu_mb: err.peakGpuMb,
    },
    artifacts: [],
    error: err.message,
    hint: err.hint,
    finetuned_ckpt: null,
    recommended_ckpt: null,
  });
}
