// The infer skill: a model package + images → predictions/<case>.nii.gz in each image's native
// space (and optionally probabilities/<case>.nii.gz); one progress event per case. The network
// runs on onnxruntime-node (model.onnx, CPU) or on torch (weights.safetensors, one Python worker
// for all cases, CUDA when there is a GPU); everything around it is the same TS code. A bad
// model package (no model.onnx, a plan that does not validate or does not match the network's
// channel, dimension or class counts) fails the stage with one line. A bad image fails only its
// case: it is listed in output.json `failed` ({case, file, reason}) and the others still run;
// the stage fails (one line) only when no case succeeded. Every image header is checked before
// the first window runs, so a bad file is reported in seconds.
import { mkdir, rm } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { sha256File } from "../../../dist/evidence/hash.js";
import {
  caseFailure,
  checkImageCase,
  InferError,
  inferCase,
  openBackend,
  readModelPackage,
  selectCases,
  writePrediction,
} from "../../../dist/infer/index.js";
import { runSkill } from "../../../dist/skill-kit/index.js";

const round = (x, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;
const peakRssMb = () => round(process.resourceUsage().maxRSS / 1024, 1);

await runSkill(fileURLToPath(new URL("../skill_manifest.yaml", import.meta.url)), async (ctx) => {
  const started = performance.now();
  const { model: modelDir, cases: only, save_probabilities: saveProbabilities, threads } = ctx.inputs;
  const sources = Array.isArray(ctx.inputs.images) ? ctx.inputs.images : [ctx.inputs.images];
  // The package first: when it is bad, nothing can run, whatever the images are.
  const read = await readModelPackage(modelDir);
  // `tta` overrides the plan's setting for this run only; every other setting is the plan's.
  const tta = ctx.inputs.tta ?? read.plan.inference.tta;
  const pkg = { ...read, plan: { ...read.plan, inference: { ...read.plan.inference, tta } } };
  const { plan } = pkg;
  const channels = plan.dataset.channels.length;
  const dims = plan.spatial_dims;
  const backend = await openBackend(pkg, {
    backend: ctx.inputs.backend,
    ...(threads === undefined ? {} : { threads }),
  });
  const isPackageError = (err) =>
    err instanceof InferError && [backend.source, pkg.modelPath, pkg.planPath].includes(err.file);
  let cases = [];
  let failed = [];
  let requested = 0;
  const roles = {};
  const results = [];
  try {
    if (backend.inputChannels !== null && backend.inputChannels !== channels)
      throw new InferError(
        backend.source,
        `the model takes ${backend.inputChannels} input channel(s), its plan.json declares ${channels}`,
      );
    if (backend.spatialDims !== null && backend.spatialDims !== dims)
      throw new InferError(
        backend.source,
        `the model is ${backend.spatialDims}D, its plan.json says ${dims}D`,
      );
    if (backend.outputChannels !== null && backend.outputChannels !== pkg.classes)
      throw new InferError(
        backend.source,
        `the model outputs ${backend.outputChannels} classes, its plan.json declares ${pkg.classes} (labels ${Object.keys(plan.dataset.labels).join(", ")})`,
      );

    // Which cases; a problem of one case fails that case only.
    ({ cases, failed } = await selectCases(sources, dims, only));
    requested = cases.length + failed.length;
    const fail = (id, err, file) => {
      const f = caseFailure(id, err, file);
      failed.push(f);
      ctx.progress({ event: "case_failed", id, file: f.file, reason: f.reason });
    };
    // Header-only pass over every case first (3D NIfTI; 2D slices are checked as they are read).
    const headers = new Map();
    if (dims === 3) {
      const readable = [];
      for (const c of cases) {
        try {
          headers.set(c.id, await checkImageCase(c, channels));
          readable.push(c);
        } catch (err) {
          fail(c.id, err, c.files[0]);
        }
      }
      cases = readable;
    }

    const ext = dims === 3 ? ".nii.gz" : ".npy";
    await mkdir(join(ctx.outputDir, "predictions"), { recursive: true });
    if (saveProbabilities) await mkdir(join(ctx.outputDir, "probabilities"), { recursive: true });
    let done = 0;
    for (const c of cases) {
      const output = `predictions/${c.id}${ext}`;
      let pred;
      let probabilities = null;
      const tw = performance.now();
      try {
        pred = await inferCase(backend.model, plan, c.files, { probabilities: saveProbabilities });
        await writePrediction(join(ctx.outputDir, output), pred.label, headers.get(c.id) ?? null);
        if (pred.probabilities) {
          probabilities = `probabilities/${c.id}${ext}`;
          await writePrediction(
            join(ctx.outputDir, probabilities),
            pred.probabilities,
            headers.get(c.id) ?? null,
          );
        }
      } catch (err) {
        // The model's own faults (e.g. its class count) are the package's: no case can succeed.
        if (isPackageError(err)) throw err;
        await rm(join(ctx.outputDir, output), { force: true });
        await rm(join(ctx.outputDir, "probabilities", `${c.id}${ext}`), { force: true });
        fail(c.id, err, c.files[0]);
        continue;
      }
      roles[output] = "prediction";
      if (probabilities) roles[probabilities] = "probabilities";
      const write = Math.max(0, (performance.now() - tw) / 1000 - pred.seconds.total);
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
    await backend.release();
  }
  if (results.length === 0) {
    const first = failed[0];
    const why = first ? `; first: ${first.file}: ${first.reason}` : "";
    throw new InferError(
      failed.length === 1 && first
        ? first.file
        : sources.length === 1
          ? resolve(sources[0])
          : `images (${sources.length} paths)`,
      failed.length === 1 && first
        ? first.reason
        : `all ${failed.length} case(s) failed, none predicted${why}`,
    );
  }

  return {
    payload: {
      model: {
        path: pkg.dir,
        digest: pkg.digest.package,
        files: {
          "model.onnx": pkg.digest.model_onnx,
          "plan.json": pkg.digest.plan_json,
          // The torch backend's network: its file digest, as evidence of what predicted.
          ...(backend.name === "torch" ? { "weights.safetensors": await sha256File(pkg.weightsPath) } : {}),
        },
        spatial_dims: dims,
        channels: plan.dataset.channels,
        labels: plan.dataset.labels,
      },
      backend: backend.name,
      device: backend.runtime.device,
      torch: backend.runtime.torch,
      worker: backend.worker(),
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
      failed,
      totals: {
        requested,
        cases: results.length,
        failed: failed.length,
        seconds: round((performance.now() - started) / 1000),
        peak_rss_mb: peakRssMb(),
      },
    },
    roles,
  };
});
