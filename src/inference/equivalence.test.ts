// The TypeScript/onnxruntime sliding window against the Python/torch one (the shared
// specification's reference implementation): the same seeded networks, exported to ONNX by
// medpipe.export_onnx, the same random volumes; probabilities must agree within 1e-4 and the
// argmax everywhere except where Python's top two classes are within 1e-4.
//
// Python writes volumes and probabilities as Fortran (x, y[, z], C) .npy, the image.npy
// layout; read back they are exactly our ChannelVolume bytes, so any axis mix-up between our
// first-axis-fastest volumes and the C-order network tensors shows up here.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { python } from "../../tests/support/oracle.js";
import { readNpy } from "../imaging/index.js";
import { InferenceError } from "./errors.js";
import { argmax, type ChannelVolume, channelsFirst } from "./layout.js";
import { loadModel, type OnnxModel } from "./session.js";
import { slidingWindowInference } from "./sliding-window.js";
import type { WeightMode } from "./windows.js";

interface Case {
  name: string;
  model: "unet3d" | "unet3d2" | "basic2d";
  volume: string;
  patch: number[];
  overlap: number;
  mode: WeightMode;
  tta: boolean;
  sw: number;
}

const PY_SRC = fileURLToPath(new URL("../py", import.meta.url));

const GENERATE = `
import os, sys
sys.path.insert(0, INPUT["py"])
import numpy as np, torch
torch.set_num_threads(1)
from medpipe.nets import build_network
from medpipe.export_onnx import export_onnx
from medpipe.sliding_window import sliding_window_inference
d = INPUT["dir"]
def fortran_last(a):  # (C, *spatial) -> Fortran (*spatial, C), the image.npy layout
    return np.asfortranarray(np.moveaxis(a, 0, -1))
nets = {
    "unet3d": ({"spatial_dims": 3, "in_channels": 1, "out_channels": 3, "channels": [8, 16, 32],
                "strides": [2, 2], "num_res_units": 2}, 0),
    # two classes: the unrolled softmax and accumulation paths
    "unet3d2": ({"spatial_dims": 3, "in_channels": 1, "out_channels": 2, "channels": [8, 16, 32],
                 "strides": [2, 2], "num_res_units": 2}, 3),
    "basic2d": ({"family": "basic_unet", "spatial_dims": 2, "in_channels": 2, "out_channels": 3,
                 "features": [4, 4, 8, 8, 16, 4]}, 1),
}
models = {}
for name, (cfg, seed) in nets.items():
    m = build_network(cfg, seed=seed).eval()
    export_onnx(m, os.path.join(d, name + ".onnx"), cfg["in_channels"], cfg["spatial_dims"])
    models[name] = m
rng = np.random.default_rng(42)
vols = {
    "v3": rng.standard_normal((1, 40, 36, 20)).astype(np.float32),
    "v3pad": rng.standard_normal((1, 11, 30, 9)).astype(np.float32),  # x and z smaller than the patch
    "v2": rng.standard_normal((2, 50, 20)).astype(np.float32),        # two channels; y padded
}
for k, v in vols.items():
    np.save(os.path.join(d, k + ".npy"), fortran_last(v))
cases = []
for mode in ("constant", "gaussian", "hann"):
    for tta in (False, True):
        cases.append(dict(name=f"3d-{mode}-{'tta' if tta else 'plain'}", model="unet3d", volume="v3",
                          patch=[16, 16, 16], overlap=0.5, mode=mode, tta=tta, sw=4))
cases.append(dict(name="3d-padded-gaussian-tta", model="unet3d", volume="v3pad", patch=[16, 16, 16],
                  overlap=0.25, mode="gaussian", tta=True, sw=3))
cases.append(dict(name="3d-2class-hann-plain", model="unet3d2", volume="v3", patch=[16, 16, 16],
                  overlap=0.5, mode="hann", tta=False, sw=2))
cases.append(dict(name="3d-2class-padded-gaussian-tta", model="unet3d2", volume="v3pad", patch=[16, 16, 16],
                  overlap=0.25, mode="gaussian", tta=True, sw=1))
cases.append(dict(name="2d-hann-tta", model="basic2d", volume="v2", patch=[32, 32], overlap=0.5,
                  mode="hann", tta=True, sw=2))
cases.append(dict(name="2d-gaussian-plain", model="basic2d", volume="v2", patch=[32, 32], overlap=0.6,
                  mode="gaussian", tta=False, sw=3))
for c in cases:
    p = sliding_window_inference(vols[c["volume"]], models[c["model"]], c["patch"], overlap=c["overlap"],
                                 mode=c["mode"], sw_batch_size=c["sw"], tta=c["tta"], device="cpu", amp=False)
    np.save(os.path.join(d, c["name"] + ".probs.npy"), fortran_last(p.numpy()))
OUTPUT = cases
`;

async function readChannelVolume(path: string, spatialDims: number): Promise<ChannelVolume> {
  const npy = await readNpy(path);
  if (!(npy.data instanceof Float32Array) || !npy.fortranOrder)
    throw new Error(`${path}: expected Fortran float32`);
  return channelsFirst(npy.data, npy.shape, spatialDims);
}

let dir = "";
let cases: Case[] = [];
const models = new Map<string, OnnxModel>();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "medpipe-sw-"));
  cases = python<Case[]>(GENERATE, { dir, py: PY_SRC });
  for (const name of ["unet3d", "unet3d2", "basic2d"])
    models.set(name, await loadModel(join(dir, `${name}.onnx`), { intraOpThreads: 1 }));
});

afterAll(async () => {
  for (const m of models.values()) await m.release();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("onnxruntime sliding window equals medpipe.sliding_window (torch)", () => {
  const names = [
    "3d-constant-plain",
    "3d-constant-tta",
    "3d-gaussian-plain",
    "3d-gaussian-tta",
    "3d-hann-plain",
    "3d-hann-tta",
    "3d-padded-gaussian-tta",
    "3d-2class-hann-plain",
    "3d-2class-padded-gaussian-tta",
    "2d-hann-tta",
    "2d-gaussian-plain",
  ];
  it.each(names)("%s", async (name) => {
    const c = cases.find((x) => x.name === name);
    expect(c, `python produced case ${name}`).toBeDefined();
    const { model, volume, patch, overlap, mode, tta, sw } = c!;
    const dims = patch.length;
    const image = await readChannelVolume(join(dir, `${volume}.npy`), dims);
    const expected = await readChannelVolume(join(dir, `${name}.probs.npy`), dims);
    const got = await slidingWindowInference(models.get(model)!, image, {
      patch,
      overlap,
      mode,
      tta,
      swBatchSize: sw,
    });
    expect(got.shape).toEqual(expected.shape);
    let maxDiff = 0;
    for (let i = 0; i < got.data.length; i++)
      maxDiff = Math.max(maxDiff, Math.abs(got.data[i]! - expected.data[i]!));
    expect(maxDiff).toBeLessThan(1e-4);

    // argmax: identical wherever Python's winner is clear by more than 1e-4.
    const ours = argmax(got);
    const theirs = argmax(expected);
    const [k = 0, ...spatial] = expected.shape;
    const n = spatial.reduce((a, b) => a * b, 1);
    let mismatches = 0;
    let near = 0;
    for (let v = 0; v < n; v++) {
      if (ours[v] === theirs[v]) continue;
      near++;
      const sorted = Array.from({ length: k }, (_, ci) => expected.data[ci * n + v]!).sort((a, b) => b - a);
      if (sorted[0]! - sorted[1]! > 1e-4) mismatches++;
    }
    expect(mismatches).toBe(0);
    // Not a vacuous test: the classes really compete across the volume.
    expect(new Set(theirs).size).toBeGreaterThan(1);
    console.log(
      `${name}: max |ts - torch| = ${maxDiff.toExponential(2)}, argmax differs at ${near} of ${n} (near-ties)`,
    );
  });
});

describe("the two-class model's own foreground output (omitBackground) equals torch's class 1", () => {
  it.each(["3d-2class-hann-plain", "3d-2class-padded-gaussian-tta"])("%s", async (name) => {
    const c = cases.find((x) => x.name === name)!;
    const image = await readChannelVolume(join(dir, `${c.volume}.npy`), 3);
    const expected = await readChannelVolume(join(dir, `${name}.probs.npy`), 3);
    const model = models.get(c.model)!;
    expect(model.foregroundName).toBe("foreground");
    const got = await slidingWindowInference(model, image, {
      patch: c.patch,
      overlap: c.overlap,
      mode: c.mode,
      tta: c.tta,
      swBatchSize: c.sw,
      omitBackground: true,
    });
    const n = got.data.length;
    expect(got.shape).toEqual([1, ...expected.shape.slice(1)]);
    let maxDiff = 0;
    let labelled = 0;
    for (let v = 0; v < n; v++) {
      const theirs = expected.data[n + v]!;
      maxDiff = Math.max(maxDiff, Math.abs(got.data[v]! - theirs));
      // The label p > 0.5 is torch's argmax wherever its two classes differ by more than 1e-4.
      if (Math.abs(theirs - expected.data[v]!) > 1e-4)
        expect(got.data[v]! > 0.5).toBe(theirs > expected.data[v]!);
      if (got.data[v]! > 0.5) labelled++;
    }
    expect(maxDiff).toBeLessThan(1e-4);
    expect(labelled > 0 && labelled < n).toBe(true);
    console.log(`${name} (foreground output): max |ts - torch| = ${maxDiff.toExponential(2)}`);
  });
});

describe("loadModel", () => {
  it("reads names and the declared channels from the graph", () => {
    const m = models.get("unet3d")!;
    expect([m.inputName, m.outputName, m.inputChannels, m.outputChannels, m.spatialDims]).toEqual([
      "image",
      "logits",
      1,
      3,
      3,
    ]);
    expect(models.get("basic2d")!.spatialDims).toBe(2);
    // Only a two-class export has the class-1 probability as a second output.
    expect(m.foregroundName).toBeNull();
    expect(models.get("unet3d2")!.foregroundName).toBe("foreground");
  });

  it("accepts a model package folder (model.onnx inside)", async () => {
    const pkg = join(dir, "pkg");
    python(
      `import os, shutil
os.makedirs(INPUT["pkg"], exist_ok=True)
shutil.copy(INPUT["src"], os.path.join(INPUT["pkg"], "model.onnx"))`,
      { pkg, src: join(dir, "basic2d.onnx") },
    );
    const m = await loadModel(pkg);
    expect(m.source).toBe(join(pkg, "model.onnx"));
    await m.release();
  });

  it("one-line errors naming the file: missing, not ONNX, package without a model", async () => {
    const missing = join(dir, "nope.onnx");
    await expect(loadModel(missing)).rejects.toThrow(
      new InferenceError(missing, "no such model file or model package"),
    );
    const bad = join(dir, "bad.onnx");
    writeFileSync(bad, "this is not a protobuf\n".repeat(10));
    const err = await loadModel(bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InferenceError);
    expect((err as Error).message.startsWith(`${bad}: not a loadable ONNX model`)).toBe(true);
    expect((err as Error).message).not.toContain("\n");
    await expect(loadModel(dir)).rejects.toThrow(`${join(dir, "model.onnx")}: no such model file`);
  });

  it("rejects a volume whose channels or dimensionality do not match the model", async () => {
    const m = models.get("unet3d")!;
    const two = { data: new Float32Array(2 * 16 ** 3), shape: [2, 16, 16, 16] };
    const opts = { patch: [16, 16, 16], overlap: 0.5, mode: "hann" as const };
    await expect(slidingWindowInference(m, two, opts)).rejects.toThrow(
      `${m.source}: the model takes 1 input channel(s), the volume has 2`,
    );
    const flat = { data: new Float32Array(16 * 16), shape: [1, 16, 16] };
    await expect(slidingWindowInference(m, flat, { ...opts, patch: [16, 16] })).rejects.toThrow(
      `${m.source}: the model takes 3D images, the volume is 2D`,
    );
  });
});
