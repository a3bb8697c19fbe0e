// The project's GridModelRunner: onnxruntime-node on the CPU through src/inference, the same
// sliding-window code the infer skill uses. Kept out of index.ts's imports on purpose: the
// native addon cannot load in a process under Node's permission model (the sandboxed verifier),
// so only callers that may load addons pass it to verifyRunWithModel.
import { argmax, channelsFirst, loadModel, slidingWindowInference } from "../inference/index.js";
import type { WeightMode } from "../inference/windows.js";
import type { GridModelRunner } from "./model.js";

export const onnxGridRunner: GridModelRunner = {
  async predict(modelPath, image, spatialDims, settings) {
    const model = await loadModel(modelPath);
    try {
      const probs = await slidingWindowInference(model, channelsFirst(image.data, image.shape, spatialDims), {
        patch: settings.patch,
        overlap: settings.overlap,
        mode: settings.mode as WeightMode,
        swBatchSize: settings.swBatchSize,
        tta: settings.tta,
      });
      return argmax(probs);
    } finally {
      await model.release();
    }
  },
};
