// Benchmark: sliding-window inference of the plan's default 3D UNet (channels
// 16-32-64-128-256, strides 2, two residual units, instance norm, PReLU, 2 classes) over one
// seeded volume, hann weights: medpipe's onnxruntime-node path (src/inference) on the network's
// ONNX exports against medpipe.sliding_window on the torch network itself (Debian's torch on
// the CPU), with the same thread count on both sides, in one run; the outputs are compared.
//
//   npm run build && node eval/bench/infer.bench.mjs [options]
//
//   --shape C,X,Y,Z    volume (default 1,320,320,110)      --patch X,Y,Z  (default 160,160,80)
//   --overlap O        (default 0.5)                       --mode M       (default hann)
//   --threads N        torch.set_num_threads(N) and intraOpNumThreads N (default: all cores)
//   --repeats R        rounds (default 3)                  --sw B         windows per call (default 1)
//   --exports LIST     ONNX exports to time: fast (medpipe.export_onnx's default, rewritten for
//                      onnxruntime) and/or plain (fast=False) (default fast,plain)
//   --tta              8-flip test-time augmentation
//   --gc               children run with --expose-gc and collect garbage after every window
//                      (dry run and real run alike): the RSS then shows the memory the code
//                      holds, without V8's lazy freeing of onnxruntime's per-window outputs
//   --all-classes      both classes' probabilities; by default, as the infer skill does for a
//                      two-class model, the foreground probability alone (omitBackground, which
//                      fetches the export's "foreground" output; torch's class 1 is compared)
//
// Every timed run is a fresh process (torch: eval/bench/infer_torch.py run; node: this script
// with --child), and the rounds interleave the sides (torch, then each export), so a burst of
// load from elsewhere hits all of them alike. Each process runs one warm-up window first,
// then the whole volume once; the time is that whole-volume call only (volume already read).
// Peak RSS is each process's own maxRSS; for the node side also the peak after loading the
// model and running the warm-up window (the model's share), so the difference is what the
// volume costs. MEDPIPE_DIST: another build output (default ./dist); ORACLE_PYTHON: the
// interpreter with torch + numpy (default /usr/bin/python3).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = new URL("../../", import.meta.url);
const dist = process.env.MEDPIPE_DIST ?? fileURLToPath(new URL("dist/", root));
const inference = await import(pathToFileURL(join(dist, "inference/index.js")).href);
const imaging = await import(pathToFileURL(join(dist, "imaging/index.js")).href);
const python = process.env.ORACLE_PYTHON ?? "/usr/bin/python3";
const helper = fileURLToPath(new URL("infer_torch.py", import.meta.url));
const MB = 1024 * 1024;

/** After a window: a full garbage collection with --gc (the child then has --expose-gc), else nothing. */
const collect = () => globalThis.gc?.();

/** One node-side round (or dry run) in a fresh process; with --gc that process can collect. */
function runChild(dir, name, cfg, env) {
  const flags = cfg.gc ? ["--expose-gc"] : [];
  const args = [...flags, fileURLToPath(import.meta.url), "--child", dir, name, JSON.stringify(cfg)];
  return runJson(process.execPath, args, env);
}

/** The node side of one round, in this (fresh) process. */
async function child(dir, name, cfg) {
  const { channelsFirst, loadModel, slidingWindowInference } = inference;
  const model = await loadModel(join(dir, `${name}.onnx`), { intraOpThreads: cfg.threads });
  const patchVoxels = cfg.patch.reduce((a, b) => a * b, 1);
  const window = new Float32Array(cfg.shape[0] * patchVoxels);
  // The output the sliding window will fetch: the foreground probability when the export has it.
  const call = cfg.omitBackground && model.runForeground ? model.runForeground : model.run;
  await call(window, [1, cfg.shape[0], ...cfg.patch]);
  const modelRss = process.resourceUsage().maxRSS * 1024;
  if (cfg.dry) {
    // The model's share without the volume: as many windows as the volume takes, on zeros.
    for (let w = 1; w < cfg.dry; w++) {
      await call(window, [1, cfg.shape[0], ...cfg.patch]);
      collect();
    }
    return { dry_rss: process.resourceUsage().maxRSS * 1024, model_rss: modelRss };
  }
  const npy = await imaging.readNpy(join(dir, "image.npy"));
  const volume = channelsFirst(npy.data, npy.shape, cfg.patch.length);
  const cpu = process.cpuUsage();
  const t = performance.now();
  const probs = await slidingWindowInference(model, volume, {
    patch: cfg.patch,
    overlap: cfg.overlap,
    mode: cfg.mode,
    swBatchSize: cfg.sw,
    tta: cfg.tta,
    omitBackground: cfg.omitBackground,
    onProgress: collect,
  });
  const seconds = (performance.now() - t) / 1000;
  const used = process.cpuUsage(cpu);
  const peakRss = process.resourceUsage().maxRSS * 1024;
  await model.release();
  if (cfg.save)
    await imaging.writeNpy(join(dir, `${name}.npy`), {
      ...inference.channelsLast(probs),
      dtype: "float32",
      fortranOrder: true,
    });
  return { seconds, cpu_seconds: (used.user + used.system) / 1e6, peak_rss: peakRss, model_rss: modelRss };
}

function options() {
  const arg = (name, fallback) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : fallback;
  };
  const list = (s) => s.split(",").map(Number);
  const threads = Number(arg("threads", availableParallelism()));
  return {
    shape: list(arg("shape", "1,320,320,110")),
    patch: list(arg("patch", "160,160,80")),
    overlap: Number(arg("overlap", "0.5")),
    mode: arg("mode", "hann"),
    sw: Number(arg("sw", "1")),
    tta: process.argv.includes("--tta"),
    omitBackground: !process.argv.includes("--all-classes"),
    gc: process.argv.includes("--gc"),
    threads,
    repeats: Number(arg("repeats", "3")),
    exports: arg("exports", "fast,plain").split(","),
    network: { spatial_dims: 3, in_channels: 1, out_channels: 2 },
  };
}

function threadEnv(n) {
  const t = String(n);
  return { ...process.env, OMP_NUM_THREADS: t, OPENBLAS_NUM_THREADS: t, MKL_NUM_THREADS: t };
}

function runJson(cmd, args, env) {
  const out = execFileSync(cmd, args, { env, encoding: "utf8", maxBuffer: 1 << 26 });
  return JSON.parse(out.trim().split("\n").at(-1));
}

async function readProbs(path, dims) {
  const npy = await imaging.readNpy(path);
  return inference.channelsFirst(npy.data, npy.shape, dims);
}

/** ours against torch's; ours lacks the background channel unless --all-classes. */
function compare(a, b) {
  const skip = b.data.length - a.data.length; // torch's background values, when ours has none
  let maxDiff = 0;
  for (let i = 0; i < a.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a.data[i] - b.data[skip + i]));
  const la = skip === 0 ? inference.argmax(a) : foregroundLabels(a);
  const lb =
    skip === 0 ? inference.argmax(b) : foregroundLabels({ data: b.data.subarray(skip), shape: a.shape });
  let differ = 0;
  for (let i = 0; i < la.length; i++) if (la[i] !== lb[i]) differ++;
  return { maxDiff, differ, voxels: la.length };
}

/** The argmax of a two-class result given as its class-1 probability alone: p > 1 − p. */
function foregroundLabels(a) {
  if (a.shape[0] !== 1) throw new Error("without --all-classes only two-class models are compared");
  return Uint8Array.from(a.data, (p) => (p > 1 - p ? 1 : 0));
}

const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (xs) => xs.map((x) => x.toFixed(2)).join(", ");

async function main() {
  const cfg = options();
  const dir = mkdtempSync(join(tmpdir(), "medpipe-infer-bench-"));
  try {
    const env = threadEnv(cfg.threads);
    const prep = runJson(python, [helper, "prepare", dir, JSON.stringify(cfg)], env);
    const windows = cfg.shape
      .slice(1)
      .map((n, a) => {
        const p = cfg.patch[a];
        if (n <= p) return 1;
        const step = Math.max(1, Math.trunc(p * (1 - cfg.overlap)));
        return Math.ceil((n - p) / step) + 1;
      })
      .reduce((a, b) => a * b, 1);
    const passes = windows * (cfg.tta ? 8 : 1);
    const dry = {};
    for (const name of cfg.exports) dry[name] = runChild(dir, name, { ...cfg, dry: passes }, env);
    const sides = ["torch", ...cfg.exports];
    const runs = Object.fromEntries(sides.map((s) => [s, []]));
    const loads = [];
    let meta = {};
    for (let r = 0; r < cfg.repeats; r++) {
      const save = r === 0;
      loads.push(loadavg()[0]);
      const py = runJson(python, [helper, "run", dir, JSON.stringify({ ...cfg, save })], env);
      meta = py;
      runs.torch.push(py);
      for (const name of cfg.exports) runs[name].push(runChild(dir, name, { ...cfg, save }, env));
      loads.push(loadavg()[0]);
    }

    const dims = cfg.patch.length;
    const volumeBytes = cfg.shape.reduce((a, b) => a * b, 1) * 4;
    const torchMedian = median(runs.torch.map((x) => x.seconds));
    console.log(
      `sliding window ${cfg.shape.join("×")}, patch ${cfg.patch.join("×")}, overlap ${cfg.overlap}, ${cfg.mode}, ` +
        `${cfg.tta ? "TTA (8 flips)" : "no TTA"}, ${passes} forward passes, ` +
        `${cfg.omitBackground ? "foreground probability" : "all classes"}, ` +
        `${cfg.gc ? "gc() after every window, " : ""}` +
        `${cfg.threads} thread(s) each side, sw batch ${cfg.sw}, ${cfg.repeats} rounds (median)`,
    );
    console.log(
      `  torch CPU                 ${torchMedian.toFixed(2)} s  (runs: ${fmt(runs.torch.map((x) => x.seconds))}; ` +
        `CPU time ${fmt(runs.torch.map((x) => x.cpu_seconds))} s) peak RSS ${(median(runs.torch.map((x) => x.peak_rss)) / MB).toFixed(0)} MiB`,
    );
    const torchProbs = await readProbs(join(dir, "torch.npy"), dims);
    const probs = {};
    for (const name of cfg.exports) {
      const times = runs[name].map((x) => x.seconds);
      const ours = median(times);
      const peak = Math.max(...runs[name].map((x) => x.peak_rss));
      const base = Math.max(...runs[name].map((x) => x.model_rss));
      const model = dry[name].dry_rss;
      probs[name] = await readProbs(join(dir, `${name}.npy`), dims);
      const c = compare(probs[name], torchProbs);
      console.log(
        `  onnxruntime-node ${name.padEnd(8)} ${ours.toFixed(2)} s  (runs: ${fmt(times)}; CPU time ` +
          `${fmt(runs[name].map((x) => x.cpu_seconds))} s)  torch / this ${(torchMedian / ours).toFixed(2)}×`,
      );
      console.log(
        `    peak RSS ${(peak / MB).toFixed(0)} MiB (after loading the model and one window: ${(base / MB).toFixed(0)} MiB; ` +
          `model alone over all ${passes} windows, no volume: ${(model / MB).toFixed(0)} MiB); ` +
          `peak − model alone = ${((peak - model) / MB).toFixed(0)} MiB = ${((peak - model) / volumeBytes).toFixed(2)}× ` +
          `the volume's ${(volumeBytes / MB).toFixed(1)} MiB float32`,
      );
      console.log(
        `    vs torch: max |Δp| ${c.maxDiff.toExponential(2)}, argmax differs at ${c.differ} of ${c.voxels} voxels`,
      );
    }
    if (probs.fast && probs.plain) {
      const c = compare(probs.fast, probs.plain);
      console.log(
        `  fast vs plain export: max |Δp| ${c.maxDiff.toExponential(2)}, argmax differs at ${c.differ} voxels`,
      );
    }
    console.log(
      `  node ${process.version}, onnxruntime-node ${onnxruntimeVersion()}, opset ${prep.opset}, ` +
        `torch ${meta.torch} (${meta.threads} threads), numpy ${meta.numpy}, ${prep.parameters} parameters, ` +
        `load average (1 min) ${fmt(loads)} at round starts/ends`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function onnxruntimeVersion() {
  const pkg = new URL("node_modules/onnxruntime-node/package.json", root);
  return JSON.parse(readFileSync(pkg, "utf8")).version;
}

if (process.argv[2] === "--child") {
  const [dir, name, cfg] = process.argv.slice(3);
  console.log(JSON.stringify(await child(dir, name, JSON.parse(cfg))));
} else {
  await main();
}
