// The infer skill: a model package + images → predictions/<case>.nii.gz in each image's native
// space (and optionally probabilities/<case>.nii.gz); one progress event per case. Every image
// header is checked before the first window runs, so a bad input fails fast with one line.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { sha256File } from "../../../dist/evidence/hash.js";
import {
  checkImageCase,
  findImageCases,
  InferError,
  inferCase,
  readModelPackage,
  writePrediction,
} from "../../../dist/infer/index.js";
import { loadModel } from "../../../dist/inference/index.js";
import { runSkill } from "../../../dist/skill-kit/index.js";

const round = (x, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;
const peakRssMb = () => round(process.resourceUsage().maxRSS / 1024, 1);

await runSkill(fileURLToPath(new URL("../skill_manifest.yaml", import.meta.url)), async (ctx) => {
  const started = performance.now();
  const { model: modelDir, images, save_probabilities: saveProbabilities, threads } = ctx.inputs;
  const pkg = await readModelPackage(modelDir);
  const { plan } = pkg;
  const channels = plan.dataset.channels.length;
  const dims = plan.spatial_dims;

  const cases = await findImageCases(images, dims);
  const seen = new Set();
  for (const c of cases) {
    if (seen.has(c.id))
      throw new InferError(c.files[0], `case ${c.id} appears twice (two files with one name)`);
    seen.add(c.id);
  }
  // Header-only pass over every case first (3D NIfTI; 2D slices are checked as they are read).
  const headers = new Map();
  if (dims === 3) for (const c of cases) headers.set(c.id, await checkImageCase(c, channels));

  const model = await loadModel(pkg.modelPath, threads === undefined ? {} : { intraOpThreads: threads });
  if (model.inputChannels !== null && model.inputChannels !== channels)
    throw new InferError(
      pkg.modelPath,
      `the model takes ${model.inputChannels} input channel(s), its plan.json declares ${channels}`,
    );
  if (model.spatialDims !== null && model.spatialDims !== dims)
    throw new InferError(pkg.modelPath, `the model is ${model.spatialDims}D, its plan.json says ${dims}D`);

  const ext = dims === 3 ? ".nii.gz" : ".npy";
  await mkdir(join(ctx.outputDir, "predictions"), { recursive: true });
  if (saveProbabilities) await mkdir(join(ctx.outputDir, "probabilities"), { recursive: true });
  const roles = {};
  const results = [];
  let done = 0;
  try {
    for (const c of cases) {
      const pred = await inferCase(model, plan, c.files, { probabilities: saveProbabilities });
      const tw = performance.now();
      const output = `predictions/${c.id}${ext}`;
      await writePrediction(join(ctx.outputDir, output), pred.label, headers.get(c.id) ?? null);
      roles[output] = "prediction";
      let probabilities = null;
      if (pred.probabilities) {
        probabilities = `probabilities/${c.id}${ext}`;
        await writePrediction(
          join(ctx.outputDir, probabilities),
          pred.probabilities,
          headers.get(c.id) ?? null,
        );
        roles[probabilities] = "probabilities";
      }
      const write = (performance.now() - tw) / 1000;
      const p = pred.properties;
      const voxelMl = p.original_spacing.slice(0, dims).reduce((a, b) => a * b, 1) / 1000;
      const volumes = Object.fromEntries(
        Object.entries(pred.voxels).map(([k, n]) => [k, round(n * voxelMl, 4)]),
      );
      const inputs = [];
      for (const f of c.files) inputs.push({ path: f, sha256: await sha256File(f) });
      const seconds = {
        preprocess: round(pred.seconds.preprocess),
        inference: round(pred.seconds.inference),
        native: round(pred.seconds.native),
        postprocess: round(pred.seconds.postprocess),
        write: round(write),
        total: round(pred.seconds.total + write),
      };
      results.push({
        id: c.id,
        images: inputs,
        output,
        output_sha256: await sha256File(join(ctx.outputDir, output)),
        probabilities,
        shape: pred.label.shape,
        spacing: p.original_spacing.slice(0, dims),
        affine: pred.label.affine,
        orientation: pred.orientation,
        resampled_shape: p.resampled_shape,
        label_voxels: pred.voxels,
        label_ml: volumes,
        removed_by_largest_component: pred.removed,
        normalization: pred.normalization,
        seconds,
        peak_rss_mb: peakRssMb(),
      });
      done++;
      ctx.progress({
        event: "case",
        id: c.id,
        done,
        of: cases.length,
        shape: pred.label.shape,
        foreground_voxels: Object.entries(pred.voxels).reduce((a, [k, n]) => (k === "0" ? a : a + n), 0),
        seconds: seconds.total,
      });
    }
  } finally {
    await model.release();
  }

  return {
    payload: {
      model: {
        path: pkg.dir,
        digest: pkg.digest.package,
        files: { "model.onnx": pkg.digest.model_onnx, "plan.json": pkg.digest.plan_json },
        spatial_dims: dims,
        channels: plan.dataset.channels,
        labels: plan.dataset.labels,
      },
      backend: "onnxruntime-cpu",
      threads: threads ?? null,
      settings: {
        target_spacing: plan.target_spacing,
        patch_size: plan.patch_size,
        normalization: plan.normalization,
        overlap: plan.inference.overlap,
        mode: plan.inference.mode,
        tta: plan.inference.tta,
        sw_batch_size: plan.inference.sw_batch_size ?? 1,
        keep_largest_component: plan.inference.keep_largest_component,
        threshold: plan.inference.threshold ?? null,
      },
      predictions: "predictions/",
      cases: results,
      totals: {
        cases: results.length,
        seconds: round((performance.now() - started) / 1000),
        peak_rss_mb: peakRssMb(),
      },
    },
    roles,
  };
});
