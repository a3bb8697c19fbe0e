// inferCase against an independent Python pipeline. Python builds the model package's network
// (seeded, a few training steps on two other fixture cases so that the classes really compete),
// exports it with medpipe.export_onnx and saves its weights; the reference then reloads the
// weights into torch and predicts with nibabel as_closest_canonical + scipy zoom (order 1,
// grid_mode, mode nearest) + the plan's normalization + medpipe.sliding_window (torch) + the
// inverse zoom of the probabilities + argmax + keep-largest-component (scipy.ndimage.label) +
// the inverse reorientation. Our written NIfTI files are read back by nibabel: shape and affine
// must be the image's exactly; labels must agree on >= 99.9% of voxels (argmax near-ties only).
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, it } from "vitest";
import { TINY_UNET } from "../../tests/support/models.js";
import { describeWithOracle, oracleHas, python } from "../../tests/support/oracle.js";
import { writeNifti } from "../imaging/index.js";
import { loadModel, type OnnxModel } from "../inference/index.js";
import { examplePlan } from "../preprocess/example-plan.js";
import { normalizationFor, type PlanNormalization } from "../preprocess/index.js";
import { inferCase } from "./case.js";
import { InferError } from "./errors.js";
import { caseFailure, checkImageCase, findImageCases, scanImageCases } from "./images.js";
import { type ModelPackage, readModelPackage } from "./package.js";
import { writePrediction } from "./write.js";

const describeOracle = describeWithOracle("nibabel", "scipy");

const PY_SRC = fileURLToPath(new URL("../py", import.meta.url));
const FIXTURES = fileURLToPath(new URL("../../fixtures/heart_micro", import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), "medpipe-infer-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const NETWORK = TINY_UNET;

// Trains 40 steps on la_004/la_005 (never predicted here), writes model.onnx and
// weights.safetensors, and returns the pooled foreground mean/std of those two cases (the
// dataset statistics a plan would record).
const MAKE_MODEL = `
import os, sys, json
sys.path.insert(0, INPUT["py"])
import numpy as np, torch, nibabel as nib
torch.set_num_threads(2)
from medpipe.nets import build_network
from medpipe.export_onnx import export_onnx
from medpipe.safetensors_io import save_file
net = build_network(INPUT["network"], seed=7)
xs, ys, fg = [], [], []
for cid in ("la_004", "la_005"):
    x = nib.as_closest_canonical(nib.load(f"{INPUT['fixtures']}/imagesTr/{cid}.nii.gz")).get_fdata(dtype=np.float32)
    y = np.asanyarray(nib.as_closest_canonical(nib.load(f"{INPUT['fixtures']}/labelsTr/{cid}.nii.gz")).dataobj).astype(np.int64)
    fg.append(x[y > 0])
    xs.append(x); ys.append(y)
fg = np.concatenate(fg).astype(np.float64)
mean, std = float(fg.mean()), float(fg.std())
opt = torch.optim.Adam(net.parameters(), lr=3e-3)
rng = np.random.default_rng(0)
net.train()
for it in range(40):
    x, y = xs[it % 2], ys[it % 2]
    where = np.argwhere(y > 0)
    c = where[rng.integers(len(where))] if rng.random() < 0.7 else np.array([rng.integers(s) for s in x.shape])
    sl = tuple(slice(int(np.clip(c[a] - 16, 0, x.shape[a] - 32)), None) for a in range(3))
    sl = tuple(slice(s.start, s.start + 32) for s in sl)
    xb = torch.from_numpy(np.ascontiguousarray((x[sl] - mean) / std))[None, None]
    yb = torch.from_numpy(np.ascontiguousarray(y[sl]))[None]
    loss = torch.nn.functional.cross_entropy(net(xb), yb)
    opt.zero_grad(); loss.backward(); opt.step()
net.eval()
os.makedirs(INPUT["pkg"], exist_ok=True)
export_onnx(net, os.path.join(INPUT["pkg"], "model.onnx"), 1, 3)
save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()},
          os.path.join(INPUT["pkg"], "weights.safetensors"), metadata={"network": json.dumps(INPUT["network"])})
OUTPUT = {"mean": mean, "std": std}
`;

// The independent pipeline, one process for all cases of one package.
const REFERENCE = `
import os, sys, json
sys.path.insert(0, INPUT["py"])
import numpy as np, torch, nibabel as nib

from scipy import ndimage
from nibabel.orientations import io_orientation, ornt_transform, apply_orientation
torch.set_num_threads(2)
from medpipe.nets import build_network
from medpipe.safetensors_io import load_file
from medpipe.sliding_window import sliding_window_inference
pkg = INPUT["pkg"]
plan = json.load(open(os.path.join(pkg, "plan.json")))
net = build_network(plan["network"])
tensors, _ = load_file(os.path.join(pkg, "weights.safetensors"))
net.load_state_dict(tensors)
net.eval()
def resample(x, out, near):
    f = [o / i for o, i in zip(out, x.shape)]
    y = ndimage.zoom(x, [1.0 if a == near else f[a] for a in range(x.ndim)], order=1, mode="nearest", grid_mode=True)
    if near is not None:
        n, m = x.shape[near], out[near]
        y = np.take(y, np.minimum(n - 1, np.floor((np.arange(m) + 0.5) * n / m).astype(int)), axis=near)
    assert list(y.shape) == list(out), (y.shape, out)
    return y
def near_axis(spacing, target):
    for s in (spacing, target):
        s = np.array(s, float)
        if s.max() / s.min() > 3:
            w = np.flatnonzero(s == s.max())
            return int(w[0]) if len(w) == 1 else None
    return None
norm, inf, target = plan["normalization"], plan["inference"], plan["target_spacing"]
RAS = np.array([[0, 1], [1, 1], [2, 1]])
OUTPUT = []
for c in INPUT["cases"]:
    img = nib.load(c["image"])
    ornt = io_orientation(img.affine)
    back_ornt = ornt_transform(RAS, ornt)
    can = nib.as_closest_canonical(img)
    x = can.get_fdata(dtype=np.float64)
    assert np.array_equal(apply_orientation(x, back_ornt), img.get_fdata(dtype=np.float64))
    spacing = [float(v) for v in can.header.get_zooms()[:3]]
    out = [max(1, int(v)) for v in np.round(np.array(x.shape) * np.array(spacing) / np.array(target))]
    near = near_axis(spacing, target)
    xr = resample(x, out, near)
    if "mean" in norm and "std" in norm:  # the plan's dataset statistics
        xn = (xr - norm["mean"]) / max(norm["std"], 1e-8)
        if norm.get("over") == "nonzero":
            xn[xr == 0] = 0
    else:  # the image's own foreground: its voxels above its mean give mean and std, every voxel mapped
        assert norm["over"] == "above_mean"
        sel = xr > xr.mean()
        xn = (xr - xr[sel].mean()) / max(xr[sel].std(), 1e-8)
    p = sliding_window_inference(torch.from_numpy(xn[None].astype(np.float32)), net, plan["patch_size"],
                                 overlap=inf["overlap"], mode=inf["mode"], sw_batch_size=inf.get("sw_batch_size", 1),
                                 tta=inf["tta"], device="cpu", amp=False).numpy().astype(np.float64)
    probs = np.stack([resample(p[k], list(x.shape), near) for k in range(p.shape[0])])
    thr = inf.get("threshold")
    # threshold: the most probable foreground class where its probability exceeds it, else 0
    lab = probs.argmax(0) if thr is None else np.where(probs[1:].max(0) > thr, probs[1:].argmax(0) + 1, 0)
    if inf["keep_largest_component"]:
        for k in range(1, p.shape[0]):
            comp, n = ndimage.label(lab == k, structure=np.ones((3, 3, 3)))
            if n > 1:
                sizes = np.bincount(comp.ravel())
                sizes[0] = 0
                lab[(comp > 0) & (comp != sizes.argmax())] = 0
    ref = apply_orientation(lab, back_ornt)
    ref_probs = np.stack([apply_orientation(q, back_ornt) for q in probs], axis=-1)
    pred = nib.load(c["prediction"])
    ours = np.asanyarray(pred.dataobj)
    row = {
        "id": c["id"], "codes": "".join(nib.aff2axcodes(img.affine)),
        "shape_equal": list(pred.shape) == list(img.shape[:3]),
        "affine_equal": bool(np.array_equal(pred.affine, img.affine)),
        "codes_equal": [int(pred.header["qform_code"]), int(pred.header["sform_code"])] == [int(img.header["qform_code"]), int(img.header["sform_code"])],
        "dtype": str(ours.dtype),
        "voxels": int(ref.size), "agree": int((ours == ref).sum()),
        "ref_classes": sorted(int(v) for v in np.unique(ref)),
        "ref_foreground": int((ref > 0).sum()),
    }
    # where the labels differ, how close to a tie the reference was (pre-KLC margin)
    sorted_p = np.sort(ref_probs, axis=-1)
    margin = sorted_p[..., -1] - sorted_p[..., -2]
    diff = ours != ref
    row["max_margin_at_diff"] = float(margin[diff].max()) if diff.any() else 0.0
    if c.get("probabilities"):
        pimg = nib.load(c["probabilities"])
        row["prob_shape"] = list(pimg.shape)
        row["max_prob_diff"] = float(np.abs(np.asanyarray(pimg.dataobj).astype(np.float64) - ref_probs).max())
        row["prob_affine_equal"] = bool(np.array_equal(pimg.affine, img.affine))
    OUTPUT.append(row)
`;

interface RefRow {
  id: string;
  codes: string;
  shape_equal: boolean;
  affine_equal: boolean;
  codes_equal: boolean;
  dtype: string;
  voxels: number;
  agree: number;
  ref_classes: number[];
  ref_foreground: number;
  max_margin_at_diff: number;
  prob_shape?: number[];
  max_prob_diff?: number;
  prob_affine_equal?: boolean;
}

const CASES = ["la_001", "la_002", "la_003"]; // RAS, LPS, LAS
const image = (id: string) => join(FIXTURES, "imagesTr", `${id}.nii.gz`);

/** A package folder: the shared model.onnx/weights plus a plan with these settings. */
function makePackage(
  name: string,
  normalization: PlanNormalization,
  inference: Record<string, unknown>,
): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (const f of ["model.onnx", "weights.safetensors"]) copyFileSync(join(tmp, "model", f), join(dir, f));
  const plan = {
    ...examplePlan({
      cases: [{ id: "la_004", image: ["imagesTr/la_004.nii.gz"], label: "labelsTr/la_004.nii.gz" }],
      targetSpacing: [1.5, 1.5, 1.6], // coarser than the images: a real resampling both ways
      normalization,
      labels: { "0": "background", "1": "left atrium" },
    }),
    patch_size: [32, 32, 32],
    network: NETWORK,
    inference,
  };
  writeFileSync(join(dir, "plan.json"), `${JSON.stringify(plan, null, 2)}\n`);
  writeFileSync(join(dir, "model_card.json"), `${JSON.stringify({ purpose: "test" })}\n`);
  return dir;
}

let stats = { mean: 0, std: 1 };
let model: OnnxModel;

beforeAll(async () => {
  if (!oracleHas("nibabel", "scipy")) return;
  stats = python<{ mean: number; std: number }>(MAKE_MODEL, {
    py: PY_SRC,
    fixtures: FIXTURES,
    pkg: join(tmp, "model"),
    network: NETWORK,
  });
  model = await loadModel(join(tmp, "model", "model.onnx"), { intraOpThreads: 2 });
});
afterAll(async () => {
  await model?.release();
});

/** Predicts with inferCase, writes the NIfTI files, runs the reference; returns its rows. */
async function predictAndCompare(pkg: ModelPackage, ids: string[], probabilities: boolean) {
  const out = join(tmp, `out-${ids.join("-")}-${pkg.digest.package.slice(0, 8)}`);
  mkdirSync(out, { recursive: true });
  const cases = [];
  const preds = [];
  for (const id of ids) {
    const c = { id, files: [image(id)] };
    const header = await checkImageCase(c, 1);
    const pred = await inferCase(model, pkg.plan, c.files, { probabilities });
    const prediction = join(out, `${id}.nii.gz`);
    await writePrediction(prediction, pred.label, header);
    const row: Record<string, string> = { id, image: image(id), prediction };
    if (pred.probabilities) {
      row.probabilities = join(out, `${id}_probs.nii.gz`);
      await writePrediction(row.probabilities, pred.probabilities, header);
    }
    cases.push(row);
    preds.push(pred);
  }
  const rows = python<RefRow[]>(REFERENCE, { py: PY_SRC, pkg: pkg.dir, cases });
  return { rows, preds };
}

function checkRows(rows: RefRow[], label: string): void {
  for (const r of rows) {
    expect(r.shape_equal, `${r.id} shape`).toBe(true);
    expect(r.affine_equal, `${r.id} affine`).toBe(true);
    expect(r.codes_equal, `${r.id} qform/sform codes`).toBe(true);
    expect(r.dtype).toBe("uint8");
    // Not vacuous: the reference finds a real foreground.
    expect(r.ref_classes).toEqual([0, 1]);
    expect(r.ref_foreground).toBeGreaterThan(200);
    const agreement = r.agree / r.voxels;
    expect(agreement, `${r.id} voxel agreement`).toBeGreaterThanOrEqual(0.999);
    if (r.max_prob_diff !== undefined) {
      expect(r.max_prob_diff).toBeLessThan(1e-3);
      expect(r.prob_affine_equal).toBe(true);
      expect(r.prob_shape).toHaveLength(4);
    }
    console.log(
      `${label} ${r.id} (${r.codes}): ${r.voxels - r.agree} of ${r.voxels} voxels differ (agreement ${(100 * agreement).toFixed(4)}%, largest reference margin there ${r.max_margin_at_diff.toExponential(2)})${r.max_prob_diff === undefined ? "" : `, max |Δp| ${r.max_prob_diff.toExponential(2)}`}`,
    );
  }
}

describeOracle("inferCase vs an independent nibabel/scipy/torch pipeline", () => {
  it("dataset statistics, hann, TTA, keep-largest-component: RAS, LPS and LAS images", async () => {
    const dir = makePackage(
      "pkg-dataset",
      { scheme: "zscore", over: "all", mean: stats.mean, std: stats.std },
      {
        overlap: 0.5,
        mode: "hann",
        tta: true,
        sw_batch_size: 2,
        keep_largest_component: true,
        threshold: null,
      },
    );
    const pkg = await readModelPackage(dir);
    const { rows, preds } = await predictAndCompare(pkg, CASES, true);
    expect(rows.map((r) => r.codes)).toEqual(["RAS", "LPS", "LAS"]);
    checkRows(rows, "dataset-stats");
    console.log(`keep-largest-component removed: ${preds.map((p) => JSON.stringify(p.removed)).join(" ")}`);
    for (const p of preds) {
      expect(p.normalization).toEqual({
        scheme: "zscore",
        statistics: "dataset",
        over: "all",
      });
      expect(Object.keys(p.voxels)).toEqual(["0", "1"]);
    }
  });

  it("the image's own statistics over its voxels above its mean, gaussian, no TTA, no post-processing", async () => {
    const dir = makePackage(
      "pkg-above-mean",
      { scheme: "zscore", over: "above_mean" },
      { overlap: 0.25, mode: "gaussian", tta: false, keep_largest_component: false },
    );
    const pkg = await readModelPackage(dir);
    const { rows, preds } = await predictAndCompare(pkg, ["la_002"], false);
    checkRows(rows, "above-mean");
    expect(preds[0]!.normalization).toEqual({ scheme: "zscore", statistics: "case", over: "above_mean" });
    // Not vacuous: the statistics are over part of the image, the part above its mean.
    const { count } = preds[0]!.properties.normalization.channels[0]!;
    expect(count).toBeGreaterThan(0);
    expect(count).toBeLessThan(preds[0]!.properties.resampled_shape.reduce((a, b) => a * b, 1));
  });

  it("a threshold, from the foreground probability alone and from both classes' probabilities", async () => {
    const dir = makePackage(
      "pkg-threshold",
      { scheme: "zscore", over: "nonzero", mean: stats.mean, std: stats.std },
      { overlap: 0.5, mode: "hann", tta: false, keep_largest_component: false, threshold: 0.51 },
    );
    const pkg = await readModelPackage(dir);
    // Without saved probabilities a two-class case is carried as its foreground probability.
    for (const probabilities of [false, true]) {
      const { rows, preds } = await predictAndCompare(pkg, ["la_003"], probabilities);
      checkRows(rows, `threshold 0.51${probabilities ? " (probabilities saved)" : ""}`);
      // Not vacuous: 0.51 labels fewer voxels than the argmax (0.5) of the same probabilities.
      const argmax = await inferCase(
        model,
        { ...pkg.plan, inference: { ...pkg.plan.inference, threshold: null } },
        [image("la_003")],
      );
      expect(preds[0]!.voxels["1"]!).toBeLessThan(argmax.voxels["1"]!);
    }
  });
});

describeOracle("the normalization rule shared with preprocess", () => {
  it("dataset statistics when the plan has them, else the image's own; never a label", () => {
    expect(normalizationFor({ scheme: "zscore", over: "nonzero", mean: 1, std: 2 })).toEqual({
      scheme: "zscore",
      statistics: "dataset",
      over: "nonzero",
    });
    expect(normalizationFor({ scheme: "zscore", over: "above_mean" })).toEqual({
      scheme: "zscore",
      statistics: "case",
      over: "above_mean",
    });
    expect(normalizationFor({ scheme: "zscore" }).over).toBe("all");
    expect(normalizationFor({ scheme: "ct", clip: [0, 1], mean: 0, std: 1 }).statistics).toBe("dataset");
    expect(normalizationFor({ scheme: "none" }).statistics).toBe("none");
  });
});

describeOracle("images and packages: grouping and one-line errors", () => {
  it("groups nnU-Net channel files per case, in channel order; single files are their own case", async () => {
    const dir = join(tmp, "nnunet");
    mkdirSync(dir, { recursive: true });
    for (const name of ["b_0001.nii.gz", "a_0000.nii.gz", "b_0000.nii.gz", "a_0001.nii.gz", "notes.txt"])
      writeFileSync(join(dir, name), "");
    expect(await findImageCases(dir, 3)).toEqual([
      { id: "a", files: [join(dir, "a_0000.nii.gz"), join(dir, "a_0001.nii.gz")] },
      { id: "b", files: [join(dir, "b_0000.nii.gz"), join(dir, "b_0001.nii.gz")] },
    ]);
    writeFileSync(join(dir, "c_0001.nii.gz"), "");
    await expect(findImageCases(dir, 3)).rejects.toThrow(
      `${join(dir, "c_0000")}: missing: case c has channels 1`,
    );
    expect(await findImageCases(join(FIXTURES, "imagesTr"), 3)).toHaveLength(8);
    expect(await findImageCases(join(dir, "a_0000.nii.gz"), 3)).toEqual([
      { id: "a", files: [join(dir, "a_0000.nii.gz")] },
    ]);
    await expect(findImageCases(join(dir, "notes.txt"), 3)).rejects.toThrow(/notes\.txt: not a NIfTI/);
  });

  it("scanImageCases fails only the broken cases of a folder, with one line each", async () => {
    const dir = join(tmp, "nnunet-scan");
    mkdirSync(dir, { recursive: true });
    for (const name of [
      "a_0000.nii.gz",
      "a_0001.nii.gz",
      "c_0001.nii.gz",
      "d_0000.nii",
      "d_0000.nii.gz",
      "e.nii.gz",
    ])
      writeFileSync(join(dir, name), "");
    const { cases, failed } = await scanImageCases(dir, 3);
    expect(cases).toEqual([{ id: "a", files: [join(dir, "a_0000.nii.gz"), join(dir, "a_0001.nii.gz")] }]);
    expect(failed).toEqual([
      { case: "d", file: join(dir, "d_0000.nii.gz"), reason: "channel 0000 of case d appears twice" },
      {
        case: "e",
        file: join(dir, "e.nii.gz"),
        reason: "has no _NNNN channel suffix, but this folder holds nnU-Net channel files (<case>_0000...)",
      },
      { case: "c", file: join(dir, "c_0000"), reason: "missing: case c has channels 1" },
    ]);
    // caseFailure: the error's own file, the reason without it, one line
    const f = caseFailure("x", new InferError("/a/x.nii.gz", "bad\nthing"), "/fallback");
    expect(f).toEqual({ case: "x", file: "/a/x.nii.gz", reason: "bad thing" });
    expect(caseFailure("y", new Error("boom"), "/y.nii.gz")).toEqual({
      case: "y",
      file: "/y.nii.gz",
      reason: "boom",
    });
  });

  it("header checks: unreadable file, channel count mismatch", async () => {
    const bad = join(tmp, "bad.nii.gz");
    writeFileSync(bad, "not an image at all");
    const err = await checkImageCase({ id: "bad", files: [bad] }, 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InferError);
    expect((err as Error).message).toMatch(new RegExp(`^${bad.replace(/[.]/g, "\\.")}: unreadable image`));
    expect((err as Error).message).not.toContain("\n");
    const two = join(tmp, "two.nii.gz");
    await writeNifti(two, {
      data: new Float32Array(4 * 4 * 4 * 2),
      shape: [4, 4, 4, 2],
      affine: [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1],
    });
    await expect(checkImageCase({ id: "two", files: [two] }, 1)).rejects.toThrow(
      `${two}: 2 image channel(s) for case two, the model takes 1 (plan.json dataset.channels)`,
    );
  });

  it("a package without model.onnx or plan.json, or with a bad plan", async () => {
    const dir = join(tmp, "broken");
    mkdirSync(dir, { recursive: true });
    await expect(readModelPackage(dir)).rejects.toThrow(
      `${join(dir, "model.onnx")}: missing: the model package has no model.onnx`,
    );
    writeFileSync(join(dir, "model.onnx"), "x");
    await expect(readModelPackage(dir)).rejects.toThrow(
      `${join(dir, "plan.json")}: missing: the model package has no plan.json`,
    );
    writeFileSync(join(dir, "plan.json"), "{}");
    await expect(readModelPackage(dir)).rejects.toThrow(
      new RegExp(`^${join(dir, "plan.json")}: plan must have`),
    );
  });
});
