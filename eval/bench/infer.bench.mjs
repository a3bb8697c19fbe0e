// Benchmark: sliding-window inference of a 3D UNet (channels 16-32-64-128-256, strides 2,
// two residual units: the plan's default network) over a 1×128×128×64 volume, patch 64³,
// overlap 0.5, hann weights, no TTA. medpipe's onnxruntime-node path (src/inference) on the
// network exported by medpipe.export_onnx, against medpipe.sliding_window on the torch
// network itself, both on the CPU with one thread, in the same run; the outputs are compared.
//
//   npm run build && node eval/bench/infer.bench.mjs [--repeats 3] [--tta]
//
// MEDPIPE_DIST points at another build output (default: ./dist at the repo root).
// ORACLE_PYTHON picks the interpreter with torch + numpy (default /usr/bin/python3).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const root = new URL("../../", import.meta.url);
const dist = process.env.MEDPIPE_DIST ?? new URL("dist/", root).pathname;
const { argmax, channelsFirst, loadModel, slidingWindowInference } = await import(
  pathToFileURL(join(dist, "inference/index.js")).href
);
const { readNpy } = await import(pathToFileURL(join(dist, "imaging/index.js")).href);
const python = process.env.ORACLE_PYTHON ?? "/usr/bin/python3";
const arg = (name) => process.argv.indexOf(name);
const repeats = arg("--repeats") > 0 ? Number(process.argv[arg("--repeats") + 1]) : 3;
const tta = arg("--tta") > 0;

const shape = [1, 128, 128, 64];
const patch = [64, 64, 64];
const overlap = 0.5;
const mode = "hann";
const swBatchSize = 1;

const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// Builds and exports the network, writes the volume, then times torch (one warm-up window
// first, so one-off allocations are not counted) and saves its probabilities.
const script = `
import json, os, sys, time
sys.path.insert(0, sys.argv[2])
import numpy as np, torch
torch.set_num_threads(1)
from medpipe.nets import build_network
from medpipe.export_onnx import export_onnx
from medpipe.sliding_window import sliding_window_inference
d, cfg = sys.argv[1], json.loads(sys.argv[3])
model = build_network({"spatial_dims": 3, "in_channels": 1, "out_channels": 2}, seed=0).eval()
info = export_onnx(model, os.path.join(d, "model.onnx"), 1, 3)
vol = np.random.default_rng(0).standard_normal(cfg["shape"]).astype(np.float32)
np.save(os.path.join(d, "image.npy"), np.asfortranarray(np.moveaxis(vol, 0, -1)))
with torch.no_grad():
    model(torch.zeros((1, 1) + tuple(cfg["patch"])))
times = []
for _ in range(cfg["repeats"]):
    t = time.perf_counter()
    p = sliding_window_inference(vol, model, cfg["patch"], overlap=cfg["overlap"], mode=cfg["mode"],
                                 sw_batch_size=cfg["sw"], tta=cfg["tta"], device="cpu", amp=False)
    times.append(time.perf_counter() - t)
np.save(os.path.join(d, "torch.npy"), np.asfortranarray(np.moveaxis(p.numpy(), 0, -1)))
print(json.dumps({"times": times, "opset": info["opset"], "torch": torch.__version__, "numpy": np.__version__,
                  "threads": torch.get_num_threads()}))
`;

const dir = mkdtempSync(join(tmpdir(), "medpipe-infer-bench-"));
try {
  const env = { ...process.env, OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: "1", MKL_NUM_THREADS: "1" };
  const cfg = { shape, patch, overlap, mode, sw: swBatchSize, tta, repeats };
  const py = JSON.parse(
    execFileSync(python, ["-c", script, dir, new URL("src/py", root).pathname, JSON.stringify(cfg)], {
      env,
      encoding: "utf8",
      maxBuffer: 1 << 26,
    }),
  );

  const model = await loadModel(join(dir, "model.onnx"), { intraOpThreads: 1 });
  const npy = await readNpy(join(dir, "image.npy"));
  const volume = channelsFirst(npy.data, npy.shape, 3);
  // Warm-up window, as on the torch side (session initialisation, first allocations).
  await model.run(new Float32Array(patch.reduce((a, b) => a * b, 1)), [1, 1, ...patch]);
  const times = [];
  let probs;
  for (let k = 0; k < repeats; k++) {
    const t = performance.now();
    probs = await slidingWindowInference(model, volume, { patch, overlap, mode, swBatchSize, tta });
    times.push((performance.now() - t) / 1000);
  }
  await model.release();

  const ref = await readNpy(join(dir, "torch.npy"));
  let maxDiff = 0;
  for (let i = 0; i < ref.data.length; i++)
    maxDiff = Math.max(maxDiff, Math.abs(probs.data[i] - ref.data[i]));
  const a = argmax(probs);
  const b = argmax(channelsFirst(ref.data, ref.shape, 3));
  let differ = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) differ++;

  const ours = median(times);
  const theirs = median(py.times);
  const windows = 3 * 3 * 1 * (tta ? 8 : 1);
  console.log(
    `sliding window ${shape.join("×")}, patch ${patch.join("×")}, overlap ${overlap}, ${mode}, ` +
      `${tta ? "TTA (8 flips)" : "no TTA"}, ${windows} forward passes, 1 thread each, median of ${repeats}`,
  );
  console.log(
    `  medpipe onnxruntime-node  ${ours.toFixed(2)} s  (runs: ${times.map((t) => t.toFixed(2)).join(", ")})`,
  );
  console.log(
    `  torch CPU                 ${theirs.toFixed(2)} s  (runs: ${py.times.map((t) => t.toFixed(2)).join(", ")})`,
  );
  console.log(`  ratio torch / onnxruntime ${(theirs / ours).toFixed(2)}× (> 1: onnxruntime faster)`);
  console.log(
    `  max |ort - torch| prob    ${maxDiff.toExponential(2)}; argmax differs at ${differ} of ${a.length} voxels`,
  );
  console.log(
    `  node ${process.version}, onnxruntime-node (opset ${py.opset}), torch ${py.torch}, numpy ${py.numpy}, ` +
      `peak RSS node ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MB`,
  );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
