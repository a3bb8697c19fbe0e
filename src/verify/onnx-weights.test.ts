// checkpoint.onnx-weights on real exports: networks built and exported by medpipe's Python
// (Debian's torch), their state dicts saved as the trainer saves them. The ONNX reader is
// checked against the Python test suite's own protobuf reader (tests/test_export_onnx.py) and
// the torch parameters; the comparison must find every parameter in every export, fast
// (rewritten) and plain, and must notice a graph from other weights or one value changed.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { python } from "../../tests/support/oracle.js";
import { parseOnnx } from "../evidence/onnx.js";
import { readSafetensors } from "../evidence/safetensors.js";
import { compareOnnxWeights } from "./onnx-weights.js";

const PY_SRC = fileURLToPath(new URL("../py", import.meta.url));

interface Exported {
  name: string;
  /** Per export kind: the op of every node and the initializer names, by the Python reader. */
  fast: { ops: string[]; initializers: string[] };
  plain: { ops: string[]; initializers: string[] };
}

const GENERATE = `
import os, sys
sys.path.insert(0, INPUT["py"])
import torch
torch.set_num_threads(1)
from medpipe.nets import build_network
from medpipe.export_onnx import export_onnx
from medpipe.safetensors_io import save_file
from medpipe.train import state_tensors
from tests.test_export_onnx import parse_model
cases = {
    # the reference UNet: two classes (the export adds the foreground output), PReLU, stride-2 up-convs
    "unet3d": ({"spatial_dims": 3, "in_channels": 1, "out_channels": 2, "channels": [8, 16, 32],
                "strides": [2, 2]}, 0),
    # three classes, a stride-1 level kept as ConvTranspose
    "unet3d-stride1": ({"spatial_dims": 3, "in_channels": 1, "out_channels": 3, "channels": [4, 8, 16],
                        "strides": [2, 1]}, 1),
    # BasicUNet 2D: kernel-2 up-convs, fixed LeakyReLU, affine instance norm
    "basic2d": ({"family": "basic_unet", "spatial_dims": 2, "in_channels": 1, "out_channels": 4,
                 "features": [4, 4, 8, 8, 16, 4]}, 2),
    # a masked class: the export holds the class mask (0 and -1e4), which is not a weight
    "unet2d-masked": ({"spatial_dims": 2, "in_channels": 1, "out_channels": 5, "channels": [8, 16],
                       "strides": [2], "masked_classes": [3]}, 3),
}
out = []
for name, (cfg, seed) in cases.items():
    model = build_network(cfg, seed=seed)
    # Trained weights are not the init's round numbers: perturb every parameter a little.
    g = torch.Generator().manual_seed(100 + seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.01)
    model.eval()
    save_file(state_tensors(model), os.path.join(INPUT["dir"], f"{name}.safetensors"))
    row = {"name": name}
    for kind in ("fast", "plain"):
        path = os.path.join(INPUT["dir"], f"{name}.{kind}.onnx")
        export_onnx(model, path, cfg["in_channels"], cfg["spatial_dims"], fast=kind == "fast")
        m = parse_model(path)
        row[kind] = {"ops": m["ops"], "initializers": sorted(m["initializers"])}
    out.append(row)
OUTPUT = out
`;

let dir = "";
let cases: Exported[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "medpipe-onnx-weights-"));
  cases = python<Exported[]>(GENERATE, { dir, py: PY_SRC });
}, 180_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const onnxOf = (name: string, kind: string) => readFileSync(join(dir, `${name}.${kind}.onnx`));
const weightsOf = (name: string) => readSafetensors(join(dir, `${name}.safetensors`));
const NAMES = ["unet3d", "unet3d-stride1", "basic2d", "unet2d-masked"];

describe("parseOnnx", () => {
  it.each(NAMES)("%s: the nodes and initializers the Python reader sees, the parameters' values", (name) => {
    const c = cases.find((x) => x.name === name) as Exported;
    const weights = weightsOf(name);
    for (const kind of ["fast", "plain"] as const) {
      const g = parseOnnx(onnxOf(name, kind), `${name}.${kind}.onnx`);
      expect(g.nodes.map((n) => n.op)).toEqual(c[kind].ops);
      expect(g.initializers.map((t) => t.name).sort()).toEqual(c[kind].initializers);
      // The plain export keeps a parameter under its own name (behind the two-class wrapper's
      // "net."), with its shape and bytes, unless it deduplicated it against an equal one.
      let seen = 0;
      for (const t of weights.tensors) {
        const init = g.initializers.find((i) => i.name === t.name || i.name === `net.${t.name}`);
        if (!init) continue;
        seen++;
        if (kind === "plain") {
          expect(
            init.dims.reduce((a, b) => a * b, 1),
            t.name,
          ).toBe(t.shape.reduce((a, b) => a * b, 1));
          expect(init.float32?.equals(weights.data.subarray(t.begin, t.end)), t.name).toBe(true);
        }
      }
      expect(seen).toBeGreaterThan(weights.tensors.length / 2);
    }
  });

  it("refuses bytes that are not a model, in one line naming the file", () => {
    expect(() => parseOnnx(Buffer.from("this is not a protobuf\n".repeat(4)), "bad.onnx")).toThrow(
      /^bad\.onnx: not an ONNX model \(/,
    );
    expect(() => parseOnnx(Buffer.alloc(0), "empty.onnx")).toThrow(
      "empty.onnx: not an ONNX model (no graph)",
    );
  });
});

describe("compareOnnxWeights", () => {
  it.each(NAMES)("%s: every parameter is in the fast and the plain graph, and nothing else", (name) => {
    for (const kind of ["fast", "plain"])
      expect(compareOnnxWeights(weightsOf(name), onnxOf(name, kind), `${name}.${kind}.onnx`)).toEqual([]);
  });

  it("a graph of other weights: nothing of the checkpoint in it, its own tensors foreign", () => {
    // unet3d's and unet3d-stride1's weights differ in values (and partly in shapes)
    const problems = compareOnnxWeights(weightsOf("unet3d"), onnxOf("unet3d-stride1", "fast"), "other.onnx");
    const n = weightsOf("unet3d").tensors.length;
    expect(problems).toHaveLength(2);
    expect(problems[0]).toMatch(
      new RegExp(`^${n} of ${n} tensors of the weights are not in other\\.onnx, e\\.g\\. `),
    );
    expect(problems[1]).toMatch(/^other\.onnx computes with \d+ tensor\(s\) not in the weights, e\.g\. /);
  });

  it("one value changed: in a verbatim convolution, in a rewritten transposed one, in a slope", () => {
    const weights = weightsOf("unet3d");
    const edit = (pick: (g: ReturnType<typeof parseOnnx>, bytes: Buffer) => void) => {
      const bytes = Buffer.from(onnxOf("unet3d", "fast"));
      pick(parseOnnx(bytes, "edited.onnx"), bytes); // the parsed tensors are views of `bytes`
      return compareOnnxWeights(weights, bytes, "edited.onnx");
    };
    const nudge = (b: Buffer, i: number) => b.writeFloatLE(b.readFloatLE(4 * i) + 0.5, 4 * i);
    // A down-path convolution, exported verbatim.
    const conv = edit((g) => {
      const t = g.initializers.find((i) => i.name === "net.down.1.convs.0.conv.weight");
      nudge(t?.float32 as Buffer, 7);
    });
    expect(conv).toEqual([
      `1 of ${weights.tensors.length} tensors of the weights are not in edited.onnx, e.g. down.1.convs.0.conv.weight [16,8,3,3,3]`,
      "edited.onnx computes with 1 tensor(s) not in the weights, e.g. net.down.1.convs.0.conv.weight [16,8,3,3,3]",
    ]);
    // The top level's transposed convolution, exported as a sub-pixel convolution: a nonzero tap.
    const up = edit((g) => {
      const t = g.initializers.find((i) => i.name === "net.up.1.0.conv.weight") as { float32: Buffer };
      let i = 0;
      while (t.float32.readFloatLE(4 * i) === 0) i++;
      nudge(t.float32, i);
    });
    expect(up[0]).toMatch(
      /^1 of \d+ tensors of the weights are not in edited\.onnx, e\.g\. up\.1\.0\.conv\.weight \[/,
    );
    // A PReLU slope, exported as a LeakyRelu alpha: not in the graph any more.
    const slope = edit((g, bytes) => {
      const alpha = g.nodes.find((n) => n.op === "LeakyRelu")?.floats.alpha as number;
      const at = bytes.indexOf(Buffer.from(new Float32Array([alpha]).buffer));
      bytes.writeFloatLE(alpha + 0.5, at);
    });
    expect(slope).toHaveLength(1);
    expect(slope[0]).toMatch(
      /^1 of \d+ tensors of the weights are not in edited\.onnx, e\.g\. [a-z0-9.]+\.act\.weight \[1\]$/,
    );
  });
});
