// Which network runs the sliding window for the infer skill: onnxruntime-node on the package's
// model.onnx (CPU, no Python), or torch on its weights.safetensors (medpipe.infer_worker, CUDA
// when there is a GPU). Everything else (preprocessing, native space, labels, post-processing)
// is the same TS code for both, in inferCase.
import { loadModel, type WindowModel } from "../inference/index.js";
import type { VolumePredictor } from "./case.js";
import type { ModelPackage } from "./package.js";
import { windowSettings } from "./package.js";
import { type TorchDevice, TorchVolumeModel } from "./torch-backend.js";

export const BACKENDS = ["onnxruntime", "torch"] as const;
export type BackendName = (typeof BACKENDS)[number];

export interface BackendOptions {
  backend?: BackendName;
  /** onnxruntime intra-op / torch intra-op threads; default the runtime's own. */
  threads?: number;
  /** torch only: auto (default), cpu or cuda. */
  device?: TorchDevice;
}

export interface InferBackend {
  readonly name: BackendName;
  /** What inferCase runs. */
  readonly model: WindowModel | VolumePredictor;
  /** The file the network came from (model.onnx or weights.safetensors). */
  readonly source: string;
  /** What the network declares (null: the graph leaves it symbolic). */
  readonly inputChannels: number | null;
  readonly spatialDims: number | null;
  readonly outputChannels: number | null;
  /** Where it runs: "cpu", or torch's device ("cuda:0"); torch's version and Python (torch only). */
  readonly runtime: { device: string; torch: string | null; python: string | null };
  /** The torch worker's process: its Python and peak memory so far (MiB); null for onnxruntime. */
  worker(): { python: string; peak_rss_mb: number | null; peak_gpu_mb: number | null } | null;
  release(): Promise<void>;
}

export async function openBackend(pkg: ModelPackage, options: BackendOptions = {}): Promise<InferBackend> {
  const threads = options.threads;
  if ((options.backend ?? "onnxruntime") === "onnxruntime") {
    const model = await loadModel(pkg.modelPath, threads === undefined ? {} : { intraOpThreads: threads });
    return {
      name: "onnxruntime",
      model,
      source: model.source,
      inputChannels: model.inputChannels,
      spatialDims: model.spatialDims,
      outputChannels: model.outputChannels,
      runtime: { device: "cpu", torch: null, python: null },
      worker: () => null,
      release: () => model.release(),
    };
  }
  const { model, info } = await TorchVolumeModel.start(pkg.weightsPath, windowSettings(pkg.plan), {
    ...(threads === undefined ? {} : { threads }),
    ...(options.device ? { device: options.device } : {}),
  });
  return {
    name: "torch",
    model,
    source: model.source,
    inputChannels: info.inChannels,
    spatialDims: info.spatialDims,
    outputChannels: info.outChannels,
    runtime: { device: info.device, torch: info.torch, python: info.python },
    worker: () => ({ python: info.python, peak_rss_mb: model.peak.rssMb, peak_gpu_mb: model.peak.gpuMb }),
    release: () => model.release(),
  };
}
