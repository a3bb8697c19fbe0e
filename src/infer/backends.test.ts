// The two backends of the infer skill agree. One model package (a seeded UNet trained a few
// steps so that the classes really compete; model.onnx exported from the very weights in
// weights.safetensors), the same images, the real skill through `pipeline run-script` twice:
// onnxruntime-node, then the torch worker (a real Python subprocess). nibabel reads every
// written file: probabilities within 1e-3 (max |Δp| in native space), Dice of the two masks
// ≥ 0.999, and the torch predictions overlay their images (shape, affine) in RAS, LPS and LAS
// orientation and for a strongly anisotropic image.
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ensureBuilt } from "../../tests/support/build.js";
import { cli, ROOT } from "../../tests/support/cli.js";
import { TINY_UNET } from "../../tests/support/models.js";
import { describeWithOracle, oracleHas, python } from "../../tests/support/oracle.js";
import { ajv } from "../manifest/schema.js";
import { examplePlan } from "../preprocess/example-plan.js";
import { windowSettings } from "./package.js";
import { TorchVolumeModel } from "./torch-backend.js";

const describeOracle = describeWithOracle("nibabel");

const FIXTURES = join(ROOT, "fixtures", "heart_micro");
const ws = mkdtempSync(join(tmpdir(), "medpipe-infer-backends-"));
afterAll(() => rmSync(ws, { recursive: true, force: true }));

const NETWORK = TINY_UNET;
const CASES = ["la_001", "la_002", "la_003", "aniso"]; // RAS, LPS, LAS, 1 × 1 × 3.5 mm

// 25 Adam steps on la_004/la_005 (never predicted here), then the package's two network files
// from the same tensors; the architecture goes in the safetensors metadata, as train.py writes it.
const MAKE_PACKAGE = `
import os, sys, json
sys.path.insert(0, INPUT["py"])
import numpy as np, torch, nibabel as nib
torch.set_num_threads(1)
from medpipe.nets import build_network
from medpipe.export_onnx import export_onnx
from medpipe.safetensors_io import save_file
net = build_network(INPUT["network"], seed=11)
xs, ys = [], []
for cid in ("la_004", "la_005"):
    x = nib.as_closest_canonical(nib.load(f"{INPUT['fixtures']}/imagesTr/{cid}.nii.gz")).get_fdata(dtype=np.float32)
    y = np.asanyarray(nib.as_closest_canonical(nib.load(f"{INPUT['fixtures']}/labelsTr/{cid}.nii.gz")).dataobj)
    xs.append((x - 160.0) / 35.0); ys.append(y.astype(np.int64))
opt = torch.optim.Adam(net.parameters(), lr=3e-3)
rng = np.random.default_rng(0)
net.train()
for it in range(25):
    x, y = xs[it % 2], ys[it % 2]
    where = np.argwhere(y > 0)
    c = where[rng.integers(len(where))]
    sl = tuple(slice(int(np.clip(c[a] - 16, 0, x.shape[a] - 32)), None) for a in range(3))
    sl = tuple(slice(s.start, s.start + 32) for s in sl)
    loss = torch.nn.functional.cross_entropy(net(torch.from_numpy(np.ascontiguousarray(x[sl]))[None, None]),
                                             torch.from_numpy(np.ascontiguousarray(y[sl]))[None])
    opt.zero_grad(); loss.backward(); opt.step()
net.eval()
os.makedirs(INPUT["pkg"], exist_ok=True)
save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()},
          os.path.join(INPUT["pkg"], "weights.safetensors"),
          metadata={"architecture": json.dumps(net.config, sort_keys=True)})
export_onnx(net, os.path.join(INPUT["pkg"], "model.onnx"), 1, 3)
# An anisotropic LPS image: la_004's voxels on a 1 x 1 x 3.5 mm grid (strongly anisotropic:
# the nearest-neighbour axis of the resampling rule), the intensities kept.
img = nib.load(f"{INPUT['fixtures']}/imagesTr/la_004.nii.gz")
data = np.asanyarray(img.dataobj)[:, :, ::3]
aff = np.diag([-1.0, -1.0, 3.5, 1.0]); aff[:3, 3] = [30.0, 20.0, -40.0]
nib.save(nib.Nifti1Image(data, aff), INPUT["aniso"])
OUTPUT = {"torch": torch.__version__, "cuda": torch.cuda.is_available()}
`;

// For every case, the two runs' files as nibabel reads them.
const COMPARE = `
import nibabel as nib, numpy as np
OUTPUT = []
for c in INPUT["cases"]:
    img = nib.load(c["image"])
    row = {"id": c["id"], "codes": "".join(nib.aff2axcodes(img.affine)),
           "zooms": [float(z) for z in img.header.get_zooms()[:3]]}
    labels = {}
    for b in ("onnxruntime", "torch"):
        pred = nib.load(c[b]["pred"])
        labels[b] = np.asanyarray(pred.dataobj)
        row[b] = {"shape": list(pred.shape) == list(img.shape[:3]),
                  "affine": bool(np.array_equal(pred.affine, img.affine)),
                  "dtype": str(labels[b].dtype), "foreground": int((labels[b] > 0).sum())}
    a, b = labels["onnxruntime"] > 0, labels["torch"] > 0
    row["dice"] = float(2 * (a & b).sum() / (a.sum() + b.sum()))
    if c["onnxruntime"].get("prob"):
        p = [np.asanyarray(nib.load(c[b]["prob"]).dataobj).astype(np.float64) for b in ("onnxruntime", "torch")]
        row["max_dp"] = float(np.abs(p[0] - p[1]).max())
        row["prob_shape"] = list(p[1].shape)
        row["prob_range"] = [float(p[1].min()), float(p[1].max())]
    OUTPUT.append(row)
`;

interface Side {
  shape: boolean;
  affine: boolean;
  dtype: string;
  foreground: number;
}
interface Row {
  id: string;
  codes: string;
  zooms: number[];
  onnxruntime: Side;
  torch: Side;
  dice: number;
  max_dp?: number;
  prob_shape?: number[];
  prob_range?: number[];
}
interface InferOutput {
  backend: string;
  device: string;
  torch: string | null;
  worker: { python: string; peak_rss_mb: number | null; peak_gpu_mb: number | null } | null;
  model: { files: Record<string, string> };
  cases: Array<{ id: string; output: string; probabilities: string | null; orientation: string[] }>;
}

let oracle = { torch: "", cuda: false };

function writePackage(name: string, inference: Record<string, unknown>): void {
  const dir = join(ws, name);
  mkdirSync(dir, { recursive: true });
  for (const f of ["model.onnx", "weights.safetensors"]) copyFileSync(join(ws, "net", f), join(dir, f));
  const plan = {
    ...examplePlan({
      cases: [{ id: "la_004", image: ["imagesTr/la_004.nii.gz"], label: "labelsTr/la_004.nii.gz" }],
      targetSpacing: [1.5, 1.5, 1.6],
      normalization: { scheme: "zscore", over: "all", mean: 160, std: 35 },
      labels: { "0": "background", "1": "left atrium" },
    }),
    patch_size: [32, 32, 32],
    network: NETWORK,
    inference,
  };
  writeFileSync(join(dir, "plan.json"), `${JSON.stringify(plan, null, 2)}\n`);
  writeFileSync(join(dir, "model_card.json"), "{}\n");
}

beforeAll(() => {
  ensureBuilt("infer/index.js");
  if (!oracleHas("nibabel")) return;
  mkdirSync(join(ws, "images"));
  for (const id of CASES.slice(0, 3))
    copyFileSync(join(FIXTURES, "imagesTr", `${id}.nii.gz`), join(ws, "images", `${id}.nii.gz`));
  oracle = python<{ torch: string; cuda: boolean }>(MAKE_PACKAGE, {
    py: join(ROOT, "src", "py"),
    fixtures: FIXTURES,
    pkg: join(ws, "net"),
    network: NETWORK,
    aniso: join(ws, "images", "aniso.nii.gz"),
  });
  writePackage("tta", {
    overlap: 0.5,
    mode: "hann",
    tta: true,
    sw_batch_size: 2,
    keep_largest_component: true,
  });
  writePackage("plain", { overlap: 0.25, mode: "gaussian", tta: false, keep_largest_component: false });
}, 120_000);

function runScript(args: string[]) {
  const r = cli(["run-script", "--workdir", ws, "infer", ...args], { cwd: ws, timeoutMs: 240_000 });
  const runDir = r.stdout.trim().split("\n").pop() ?? "";
  return { ...r, runDir, stage: join(runDir, "stages", "infer") };
}

const readOutput = (stage: string) =>
  JSON.parse(readFileSync(join(stage, "output.json"), "utf8")) as InferOutput;

/** Runs both backends on the same inputs and compares what they wrote. */
function bothBackends(args: string[], probabilities: boolean) {
  const stages: Record<string, string> = {};
  const outputs: Record<string, InferOutput> = {};
  for (const backend of ["onnxruntime", "torch"]) {
    const extra = probabilities ? ["--save_probabilities", "true"] : [];
    const r = runScript([...args, ...extra, "--backend", backend, "--threads", "1"]);
    expect(r.code, `${backend}: ${r.stderr}`).toBe(0);
    stages[backend] = r.stage;
    outputs[backend] = readOutput(r.stage);
  }
  const ids = outputs.torch!.cases.map((c) => c.id);
  expect(outputs.onnxruntime!.cases.map((c) => c.id)).toEqual(ids);
  const files = (backend: string, i: number) => {
    const c = outputs[backend]!.cases[i]!;
    return {
      pred: join(stages[backend]!, c.output),
      ...(c.probabilities ? { prob: join(stages[backend]!, c.probabilities) } : {}),
    };
  };
  const rows = python<Row[]>(COMPARE, {
    cases: ids.map((id, i) => ({
      id,
      image: join(ws, "images", `${id}.nii.gz`),
      onnxruntime: files("onnxruntime", i),
      torch: files("torch", i),
    })),
  });
  return { rows, outputs };
}

function checkAgreement(rows: Row[], label: string): void {
  for (const r of rows) {
    for (const side of [r.onnxruntime, r.torch])
      expect(side, `${r.id}`).toMatchObject({ shape: true, affine: true, dtype: "uint8" });
    // Not vacuous: both found a real foreground.
    expect(r.torch.foreground, `${r.id} foreground`).toBeGreaterThan(100);
    expect(r.dice, `${r.id} Dice`).toBeGreaterThanOrEqual(0.999);
    if (r.max_dp !== undefined) {
      expect(r.max_dp, `${r.id} max |Δp|`).toBeLessThan(1e-3);
      expect(r.prob_shape).toHaveLength(4);
      expect(r.prob_range![0]).toBeGreaterThanOrEqual(0);
      expect(r.prob_range![1]).toBeLessThanOrEqual(1.000001);
    }
    console.log(
      `${label} ${r.id} (${r.codes}, ${r.zooms.map((z) => z.toFixed(2)).join("×")} mm): Dice ${r.dice.toFixed(6)}, foreground ${r.onnxruntime.foreground} vs ${r.torch.foreground}${r.max_dp === undefined ? "" : `, max |Δp| ${r.max_dp.toExponential(2)}`}`,
    );
  }
}

const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

describeOracle("infer: onnxruntime and torch backends agree", () => {
  it("no TTA, gaussian: RAS, LPS, LAS and anisotropic images (a list of files); output.json records the backend", () => {
    const list = JSON.stringify(CASES.map((id) => `images/${id}.nii.gz`));
    const { rows, outputs } = bothBackends(["--model", "plain", "--images", list], true);
    expect(rows.map((r) => r.id)).toEqual(CASES);
    expect(rows.map((r) => r.codes)).toEqual(["RAS", "LPS", "LAS", "LPS"]);
    checkAgreement(rows, "plain");

    const torch = outputs.torch!;
    const schema = ajv().compile(
      JSON.parse(readFileSync(join(ROOT, "schemas", "skills", "infer.output.schema.json"), "utf8")) as object,
    );
    expect(schema(torch), JSON.stringify(schema.errors)).toBe(true);
    expect(torch.backend).toBe("torch");
    expect(torch.torch).toBe(oracle.torch);
    // The engine hands the stage a GPU when there is one (resources.gpu: preferred).
    expect(torch.device).toMatch(oracle.cuda ? /^(cpu|cuda:\d+)$/ : /^cpu$/);
    expect(torch.model.files["weights.safetensors"]).toBe(sha256(join(ws, "plain", "weights.safetensors")));
    expect(torch.worker!.peak_rss_mb).toBeGreaterThan(50); // a process that imported torch
    if (torch.device === "cpu") expect(torch.worker!.peak_gpu_mb).toBeNull();
    expect(outputs.onnxruntime).toMatchObject({
      backend: "onnxruntime",
      device: "cpu",
      torch: null,
      worker: null,
    });
    expect(outputs.onnxruntime!.model.files["weights.safetensors"]).toBeUndefined();
  });

  it("TTA, hann, keep-largest-component", () => {
    const { rows } = bothBackends(["--model", "tta", "--images", "images/la_003.nii.gz"], true);
    expect(rows.map((r) => r.id)).toEqual(["la_003"]);
    checkAgreement(rows, "tta");
  });
});

describeOracle("the torch backend's failures", () => {
  it("one worker process for many volumes; a bad volume fails alone; a dead worker fails the rest", async () => {
    const plan = JSON.parse(readFileSync(join(ws, "plain", "plan.json"), "utf8"));
    const { model, info } = await TorchVolumeModel.start(
      join(ws, "plain", "weights.safetensors"),
      windowSettings(plan),
      { device: "cpu", threads: 1 },
    );
    try {
      expect(info).toMatchObject({ device: "cpu", torch: oracle.torch, inChannels: 1, outChannels: 2 });
      const pid = model.pid;
      // Two channels for a one-channel network: that volume fails, with one line.
      const two = { data: new Float32Array(2 * 20 * 20 * 20), shape: [2, 20, 20, 20] };
      await expect(model.predictVolume(two)).rejects.toThrow(
        /^backend torch: 2 image channel\(s\), the network takes 1$/,
      );
      // The same process then predicts a good volume (smaller than the patch: padded).
      const one = { data: new Float32Array(20 * 18 * 16).fill(0.5), shape: [1, 20, 18, 16] };
      const probs = await model.predictVolume(one);
      expect(probs.shape).toEqual([2, 20, 18, 16]);
      for (let v = 0; v < 20 * 18 * 16; v += 97)
        expect(probs.data[v]! + probs.data[v + 20 * 18 * 16]!).toBeCloseTo(1, 5);
      expect(model.pid).toBe(pid);
      // A worker that dies: every later volume fails with one line saying so; release still works.
      process.kill(pid!, "SIGKILL");
      await expect(model.predictVolume(one)).rejects.toThrow(/^the torch worker ended \(signal SIGKILL\)$/);
    } finally {
      await model.release();
    }
  });

  it("exit 1 with one line: no weights.safetensors, weights without an architecture", async () => {
    mkdirSync(join(ws, "noweights"));
    for (const f of ["model.onnx", "plan.json", "model_card.json"])
      copyFileSync(join(ws, "plain", f), join(ws, "noweights", f));
    let r = runScript(["--model", "noweights", "--images", "images", "--backend", "torch"]);
    expect(r.code).toBe(1);
    const failure = (runDir: string) =>
      readFileSync(join(runDir, "failed", "infer", "attempt-1", "logs", "stderr.log"), "utf8").trim();
    expect(failure(r.runDir)).toBe(
      `error: ${join(ws, "noweights", "weights.safetensors")}: missing: backend torch needs the package's weights.safetensors`,
    );
    // Weights without an architecture: the worker cannot build the network.
    python(
      `
import sys
sys.path.insert(0, INPUT["py"])
from medpipe.safetensors_io import load_file, save_file
tensors, _ = load_file(INPUT["src"])
save_file(tensors, INPUT["dst"], metadata={"format": "something else"})
`,
      {
        py: join(ROOT, "src", "py"),
        src: join(ws, "plain", "weights.safetensors"),
        dst: join(ws, "noweights", "weights.safetensors"),
      },
    );
    const weights = join(ws, "noweights", "weights.safetensors");
    const plan = JSON.parse(readFileSync(join(ws, "plain", "plan.json"), "utf8"));
    await expect(TorchVolumeModel.start(weights, windowSettings(plan), { device: "cpu" })).rejects.toThrow(
      `${weights}: backend torch could not load the network: ${weights}: no 'architecture' metadata; not a medpipe checkpoint`,
    );
    // An unknown backend is a usage error.
    r = runScript(["--model", "plain", "--images", "images", "--backend", "tensorflow"]);
    expect(r.code).toBe(2);
  });
});
