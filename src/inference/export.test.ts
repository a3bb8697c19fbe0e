// The ONNX graph medpipe.export_onnx writes computes the torch network's function: the
// rewritten ("fast") export, with its sub-pixel convolutions, voxel shuffles and LeakyRelu in
// place of ConvTranspose and PRelu, and the plain one, run in onnxruntime-node against the
// torch model itself (Debian's torch) on the same seeded inputs. Logits must agree within
// 1e-4. Cases: the residual UNet (the reference architecture too) and BasicUNet, 3D and 2D,
// batch 1 and 2, inner levels of odd and even size, and a stride-1 level (its transposed
// conv is left alone).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { python } from "../../tests/support/oracle.js";
import { readNpy } from "../imaging/index.js";
import { loadModel } from "./session.js";

interface Exported {
  name: string;
  input: number[];
  classes: number;
  fast: { ops: string[] };
  plain: { ops: string[] };
}

const PY_SRC = fileURLToPath(new URL("../py", import.meta.url));

// Each case: (network config, seed, input shape (B, C, *spatial)). The residual UNet's sizes are
// multiples of its total stride (its own constraint); BasicUNet takes any size, and the odd ones
// run through a graph exported at another size. The comments give the bottom level's size.
const GENERATE = `
import os, sys
sys.path.insert(0, INPUT["py"])
import numpy as np, torch
torch.set_num_threads(1)
from medpipe.nets import build_network
from medpipe.export_onnx import export_onnx
from tests.test_export_onnx import parse_model
cases = {
    # the reference UNet (16-32-64-128-256, strides 2, 2 residual units); bottom 3x2x1
    "unet3d-reference": ({"spatial_dims": 3, "in_channels": 1, "out_channels": 2}, 0, (1, 1, 48, 32, 16)),
    # 4 levels, batch 2, 3 classes; bottom 3x5x2 (odd and even)
    "unet3d-b2": ({"spatial_dims": 3, "in_channels": 1, "out_channels": 3, "channels": [8, 16, 24, 32],
                   "strides": [2, 2, 2]}, 1, (2, 1, 24, 40, 16)),
    # no residual units: the top transposed conv is bare (no norm, no activation); bottom 5x3x7
    "unet3d-nores": ({"spatial_dims": 3, "in_channels": 2, "out_channels": 2, "channels": [6, 12, 24],
                      "strides": [2, 2], "num_res_units": 0}, 2, (1, 2, 20, 12, 28)),
    # a stride-1 level (kept as ConvTranspose) after a stride-2 one; odd sizes below the top
    "unet3d-stride1": ({"spatial_dims": 3, "in_channels": 1, "out_channels": 2, "channels": [4, 8, 16],
                        "strides": [2, 1]}, 3, (1, 1, 10, 14, 6)),
    "unet2d": ({"spatial_dims": 2, "in_channels": 2, "out_channels": 3, "channels": [8, 16, 32, 64],
                "strides": [2, 2, 2]}, 4, (2, 2, 40, 24)),
    # BasicUNet: kernel-2 stride-2 transposed convs, LeakyReLU, affine instance norm; bottom 1x3x2
    "basic3d": ({"family": "basic_unet", "spatial_dims": 3, "in_channels": 1, "out_channels": 2,
                 "features": [4, 4, 8, 8, 16, 4]}, 5, (1, 1, 16, 48, 32)),
    "basic2d": ({"family": "basic_unet", "spatial_dims": 2, "in_channels": 2, "out_channels": 3,
                 "features": [8, 8, 16, 16, 32, 8]}, 6, (2, 2, 48, 80)),
    # BasicUNet takes any size: 36 -> 18 -> 9 -> 4 -> 2 (padded back to 9 on the way up), 20 -> ... -> 1,
    # 26 -> 13 -> 6 -> 3 -> 1; exported at the 32-cube example, run at these
    "basic3d-odd": ({"family": "basic_unet", "spatial_dims": 3, "in_channels": 1, "out_channels": 2,
                     "features": [4, 4, 8, 8, 16, 4]}, 7, (1, 1, 36, 20, 26)),
    # the 2D tissue reference's 200x200 window: 200 -> 100 -> 50 -> 25 -> 12
    "basic2d-tissue-window": ({"family": "basic_unet", "spatial_dims": 2, "in_channels": 1, "out_channels": 4,
                               "features": [4, 4, 8, 8, 16, 4]}, 8, (2, 1, 200, 200)),
    # label values 0, 1, 2, 4: class 3 stands for no value and its logits are masked
    "unet2d-masked": ({"spatial_dims": 2, "in_channels": 1, "out_channels": 5, "channels": [8, 16],
                       "strides": [2], "masked_classes": [3]}, 9, (1, 1, 24, 16)),
}
out = []
for i, (name, (cfg, seed, shape)) in enumerate(cases.items()):
    model = build_network(cfg, seed=seed).eval()
    ops = {}
    for kind in ("fast", "plain"):
        path = os.path.join(INPUT["dir"], f"{name}.{kind}.onnx")
        export_onnx(model, path, cfg["in_channels"], cfg["spatial_dims"], fast=kind == "fast")
        ops[kind] = {"ops": sorted(set(parse_model(path)["ops"]))}
    x = np.random.default_rng(100 + i).standard_normal(shape).astype(np.float32)
    with torch.no_grad():
        y = model(torch.from_numpy(x)).numpy()
    np.save(os.path.join(INPUT["dir"], f"{name}.x.npy"), x)
    np.save(os.path.join(INPUT["dir"], f"{name}.y.npy"), y)
    out.append({"name": name, "input": list(shape), "classes": int(y.shape[1]), **ops})
OUTPUT = out
`;

let dir = "";
let cases: Exported[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "medpipe-export-"));
  cases = python<Exported[]>(GENERATE, { dir, py: PY_SRC });
}, 120_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function maxDiff(name: string, kind: "fast" | "plain"): Promise<number> {
  const c = cases.find((x) => x.name === name)!;
  const x = await readNpy(join(dir, `${name}.x.npy`));
  const y = await readNpy(join(dir, `${name}.y.npy`));
  const model = await loadModel(join(dir, `${name}.${kind}.onnx`), { intraOpThreads: 1 });
  try {
    expect(model.outputChannels).toBe(c.classes); // the declared output shape, not a symbol
    const out = await model.run(x.data as Float32Array, c.input);
    expect(Array.from(out.dims)).toEqual(y.shape);
    let worst = 0;
    for (let i = 0; i < out.data.length; i++)
      worst = Math.max(worst, Math.abs(out.data[i]! - (y.data as Float32Array)[i]!));
    // Not vacuous: the logits vary (a broken graph often returns constants or zeros).
    expect(
      Math.max(...(y.data as Float32Array).slice(0, 1000)) -
        Math.min(...(y.data as Float32Array).slice(0, 1000)),
    ).toBeGreaterThan(1e-3);
    return worst;
  } finally {
    await model.release();
  }
}

describe("export_onnx: onnxruntime-node logits equal the torch model's", () => {
  const names = [
    "unet3d-reference",
    "unet3d-b2",
    "unet3d-nores",
    "unet3d-stride1",
    "unet2d",
    "basic3d",
    "basic2d",
    "basic3d-odd",
    "basic2d-tissue-window",
  ];
  it.each(names)("%s (fast and plain export)", async (name) => {
    const fast = await maxDiff(name, "fast");
    const plain = await maxDiff(name, "plain");
    console.log(
      `${name}: max |onnxruntime - torch| fast ${fast.toExponential(2)}, plain ${plain.toExponential(2)}`,
    );
    expect(fast).toBeLessThanOrEqual(1e-4);
    expect(plain).toBeLessThanOrEqual(1e-4);
  });

  it("a masked class keeps its mask in the graph: logits 1e4 below, the others as torch's", async () => {
    const x = await readNpy(join(dir, "unet2d-masked.x.npy"));
    const y = (await readNpy(join(dir, "unet2d-masked.y.npy"))).data as Float32Array;
    const n = 24 * 16;
    for (const kind of ["fast", "plain"]) {
      const model = await loadModel(join(dir, `unet2d-masked.${kind}.onnx`), { intraOpThreads: 1 });
      try {
        const out = (await model.run(x.data as Float32Array, [1, 1, 24, 16])).data;
        for (let k = 0; k < 5; k++)
          for (let v = 0; v < n; v++) {
            const i = k * n + v;
            // float32 spacing near 1e4 is 1e-3: the masked logits agree to that, the others to 1e-4
            expect(Math.abs(out[i]! - y[i]!), `${kind} class ${k}`).toBeLessThanOrEqual(
              k === 3 ? 2e-3 : 1e-4,
            );
            if (k === 3) expect(out[i]!).toBeLessThan(-9900);
            else expect(Math.abs(out[i]!)).toBeLessThan(100);
          }
      } finally {
        await model.release();
      }
    }
  });

  it("the fast graphs are rewritten: no PRelu, and ConvTranspose only where a stride is 1", () => {
    for (const c of cases) {
      expect(c.fast.ops, c.name).not.toContain("PRelu");
      expect(c.fast.ops.includes("ConvTranspose"), c.name).toBe(c.name === "unet3d-stride1");
      expect(c.plain.ops, c.name).toContain("ConvTranspose");
      if (c.name.startsWith("unet")) expect(c.plain.ops, c.name).toContain("PRelu");
    }
  });
});
