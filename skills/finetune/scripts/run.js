// The finetune skill: src/finetune does the work; this script maps the inputs and, on a CUDA
// out-of-memory, leaves a failed output.json that says so (runtime.oom, no checkpoint) before
// the stage exits non-zero with the one-line hint.
import { fileURLToPath } from "node:url";
import { FinetuneOomError, runFinetune, writeFailedOutput } from "../../../dist/finetune/index.js";
import { runSkill } from "../../../dist/skill-kit/index.js";

const manifest = fileURLToPath(new URL("../skill_manifest.yaml", import.meta.url));
const started = performance.now();

await runSkill(manifest, async (ctx) => {
  const i = ctx.inputs;
  try {
    const r = await runFinetune({
      pretrained: i.pretrained,
      datasetDir: i.dataset_dir,
      datalist: i.datalist,
      labelMapping: i.label_mapping,
      targetAnatomy: i.target_anatomy,
      epochs: i.epochs,
      learningRate: i.learning_rate,
      patchSize: i.patch_size,
      valAtStart: i.val_at_start,
      skipFormalEval: i.skip_formal_eval,
      device: i.device,
      formalBackend: i.formal_backend,
      seed: i.seed,
      samplesPerVolume: i.samples_per_volume,
      nprocPerNode: process.env.NPROC_PER_NODE,
      outputDir: ctx.outputDir,
      progress: ctx.progress,
    });
    return { payload: r.payload, roles: r.roles, runtime: { peak_gpu_mb: r.peakGpuMb } };
  } catch (err) {
    if (err instanceof FinetuneOomError) writeFailedOutput(manifest, ctx, err, started);
    throw err;
  }
});
