// The project's GridModelRunner: onnxruntime-node on the CPU through src/inference, the same
// sliding-window code the infer skill uses. Kept out of index.ts's imports on purpose: the
// native addon cannot load in a process under Node's permission model (the sandboxed verifier),
// so only callers that may load addons pass it to verifyRunWithModel.

import { inferCase } from "../infer/case.js";
import { readModelPackage } from "../infer/package.js";
import { argmax, channelsFirst, loadModel, slidingWindowInference } from "../inference/index.js";
import type { WeightMode } from "../inference/windows.js";
import type { GridModelRunner } from "./model.js";

export const onnxGridRunner: GridModelRunner = {
  async predict(modelPath, image, spatialDims, settings, classes) {
    const model = await loadModel(modelPath);
    try {
      // A two-class export also gives its class-1 probability: fetched alone, half the work. The
      // argmax of [1 − p, p] is 1 exactly where p > 0.5 (a tie goes to class 0 either way).
      const binary = classes === 2 && model.runForeground !== undefined;
      const probs = await slidingWindowInference(model, channelsFirst(image.data, image.shape, spatialDims), {
        patch: settings.patch,
        overlap: settings.overlap,
        mode: settings.mode as WeightMode,
        swBatchSize: settings.swBatchSize,
        tta: settings.tta,
        omitBackground: binary,
      });
      if (!binary) return { label: argmax(probs), probabilities: probs.data };
      const n = probs.data.length;
      const both = new Float32Array(2 * n);
      for (let i = 0; i < n; i++) {
        const p = probs.data[i] as number;
        both[i] = 1 - p;
        both[n + i] = p;
      }
      return { label: Uint8Array.from(probs.data, (p) => (p > 0.5 ? 1 : 0)), probabilities: both };
    } finally {
      await model.release();
    }
  },
  async predictCase(packagePath, images, tta) {
    const pkg = await readModelPackage(packagePath);
    const plan = tta === undefined ? pkg.plan : { ...pkg.plan, inference: { ...pkg.plan.inference, tta } };
    const model = await loadModel(pkg.modelPath);
    try {
      return (await inferCase(model, plan, images)).label.data;
    } finally {
      await model.release();
    }
  },
};
