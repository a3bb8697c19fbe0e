// The written data/ against an independent Python reference: nibabel as_closest_canonical,
// scipy.ndimage.zoom(order=1, mode="nearest", grid_mode=True) for images, one-hot zoom + argmax
// for labels (nearest cell along an anisotropic axis), numpy z-score / CT clipping. Python reads
// our .npy files itself, so dtype, Fortran order and shape are checked by numpy too.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, it } from "vitest";
import { describeWithOracle, python } from "../../tests/support/oracle.js";
import { readNifti } from "../imaging/nifti-read.js";
import { writeNifti } from "../imaging/nifti-write.js";
import { npyToVolume, readNpy } from "../imaging/npy.js";
import { examplePlan } from "./example-plan.js";
import { preprocessDataset } from "./preprocess.js";
import type { CaseProperties, PlanCase, PlanNormalization } from "./types.js";

const describeOracle = describeWithOracle("nibabel", "scipy");

const FIXTURES = join(import.meta.dirname, "../../fixtures");
const tmp = mkdtempSync(join(tmpdir(), "medpipe-preprocess-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function msdCase(dataset: string, id: string): PlanCase {
  return {
    id,
    image: [join(FIXTURES, dataset, "imagesTr", `${id}.nii.gz`)],
    label: join(FIXTURES, dataset, "labelsTr", `${id}.nii.gz`),
  };
}

function tissueCase(id: string, split = "train"): PlanCase {
  return {
    id,
    image: [join(FIXTURES, "tissue2d_micro", split, `${id}_T1w.npy`)],
    label: join(FIXTURES, "tissue2d_micro", split, `${id}_T1w_tissue_segmentation.npy`),
  };
}

interface Setup {
  name: string;
  cases: PlanCase[];
  targetSpacing: number[];
  normalization: PlanNormalization;
  labels?: Record<string, string>;
}

async function run(s: Setup) {
  const dir = join(tmp, s.name);
  const planPath = join(tmp, `${s.name}.plan.json`);
  writeFileSync(planPath, JSON.stringify(examplePlan({ ...s, ...(s.labels ? { labels: s.labels } : {}) })));
  const result = await preprocessDataset({ plan: planPath, outDir: dir, workers: 0 });
  return { dir, result };
}

interface OracleCase {
  id: string;
  shape: number[];
  dtype: string;
  fortran: boolean;
  image_max_abs: number;
  label_dtype: string | null;
  label_mismatches: number;
  label_voxels: number;
  affine_max_abs: number;
  canonical_affine_max_abs: number;
  near: number | null;
}

// One Python process per setup: load with nibabel (or numpy for 2D), reorient, resample,
// normalize, and compare with our files.
const ORACLE = `
import json, numpy as np, nibabel as nib

from scipy import ndimage
def resample(x, out, near):
    f = [o / i for o, i in zip(out, x.shape)]
    y = ndimage.zoom(x, [1.0 if a == near else f[a] for a in range(x.ndim)], order=1, mode="nearest", grid_mode=True)
    if near is not None:
        n, m = x.shape[near], out[near]
        y = np.take(y, np.minimum(n - 1, np.floor((np.arange(m) + 0.5) * n / m).astype(int)), axis=near)
    assert list(y.shape) == list(out), (y.shape, out)
    return y
def out_shape(shape, spacing, target):
    return [max(1, int(v)) for v in np.round(np.array(shape) * np.array(spacing) / np.array(target))]
def near_axis(spacing, target):
    for s in (spacing, target):
        s = np.array(s, float)
        if s.max() / s.min() > 3:
            w = np.flatnonzero(s == s.max())
            return int(w[0]) if len(w) == 1 else None
    return None
norm = INPUT["normalization"]
target = INPUT["target"]
OUTPUT = []
for c in INPUT["cases"]:
    if INPUT["dims"] == 3:
        img = nib.load(c["image"]); lab = nib.load(c["label"])
        cimg = nib.as_closest_canonical(img); clab = nib.as_closest_canonical(lab)
        x = cimg.get_fdata(dtype=np.float64)
        l = np.asanyarray(clab.dataobj).astype(np.int64)
        spacing = [float(v) for v in cimg.header.get_zooms()[:3]]
        aff, caff = img.affine, cimg.affine
    else:
        x = np.load(c["image"]).astype(np.float64); l = np.load(c["label"]).astype(np.int64)
        spacing = [1.0, 1.0]; aff = caff = np.eye(4)
    out = out_shape(x.shape, spacing, target)
    near = near_axis(spacing, target)
    xr = resample(x, out, near)
    values = np.unique(l)
    lr = values[np.argmax(np.stack([resample((l == v).astype(np.float64), out, near) for v in values]), axis=0)]
    if norm["scheme"] == "ct":
        lo, hi = norm["clip"]
        ref = (np.clip(xr, lo, hi) - norm["mean"]) / max(norm["std"], 1e-8)
    elif norm["scheme"] == "zscore":
        over = norm.get("over", "all")
        sel = xr > xr.mean() if over == "above_mean" else (xr != 0 if over == "nonzero" else np.ones(xr.shape, bool))
        m, s = xr[sel].mean(), xr[sel].std()
        ref = (xr - m) / max(s, 1e-8)
        if over == "nonzero":
            ref[~sel] = 0
    else:
        ref = xr
    ours = np.load(c["dir"] + "/image.npy")
    olab = np.load(c["dir"] + "/label.npy")
    props = json.load(open(c["dir"] + "/properties.json"))
    OUTPUT.append({
        "id": c["id"], "shape": list(ours.shape), "dtype": str(ours.dtype), "fortran": bool(ours.flags.f_contiguous),
        "image_max_abs": float(np.abs(ours[..., 0].astype(np.float64) - ref).max()),
        "label_dtype": str(olab.dtype), "label_mismatches": int((olab != lr).sum()), "label_voxels": int(lr.size),
        "affine_max_abs": float(np.abs(np.array(props["original_affine"]).reshape(4, 4) - aff).max()),
        "canonical_affine_max_abs": float(np.abs(np.array(props["canonical_affine"]).reshape(4, 4) - caff).max()),
        "near": near,
    })
`;

function oracle(s: Setup, dir: string): OracleCase[] {
  return python<OracleCase[]>(ORACLE, {
    dims: s.targetSpacing.length,
    target: s.targetSpacing,
    normalization: s.normalization,
    cases: s.cases.map((c) => ({ id: c.id, image: c.image[0], label: c.label, dir: join(dir, c.id) })),
  });
}

const SETUPS: Setup[] = [
  {
    // RAS, LPS and LAS cases; z-score over each image's voxels above its mean (the plan's
    // reading of the heart reference's foreground normalization).
    name: "heart",
    cases: ["la_001", "la_002", "la_003"].map((id) => msdCase("heart_micro", id)),
    targetSpacing: [1.25, 1.25, 1.37],
    normalization: { scheme: "zscore", over: "above_mean" },
  },
  {
    // A target anisotropic by more than 3x: z is sampled by nearest cell centre.
    name: "heart-anisotropic",
    cases: [msdCase("heart_micro", "la_005")],
    targetSpacing: [1.1, 1.1, 4.5],
    normalization: { scheme: "zscore", over: "all" },
  },
  {
    name: "spleen-ct",
    cases: [msdCase("spleen_micro", "spleen_002")],
    targetSpacing: [6, 6, 5],
    normalization: { scheme: "ct", clip: [-160, 240], mean: 60, std: 45 },
  },
  {
    name: "tissue2d",
    cases: [tissueCase("sub-001"), tissueCase("sub-013", "val")],
    targetSpacing: [0.8, 1.25],
    normalization: { scheme: "zscore", over: "nonzero" },
    labels: { "0": "background", "1": "CSF", "2": "grey matter", "3": "white matter" },
  },
];

describeOracle("preprocess against nibabel + scipy + numpy", () => {
  it.each(SETUPS)("$name: image.npy within 1e-4, label.npy equal, affines recorded", async (s) => {
    const { dir, result } = await run(s);
    const ref = oracle(s, dir);
    for (const r of ref) {
      const summary = result.cases.find((c) => c.id === r.id)!;
      expect(r.dtype).toBe("float32");
      expect(r.fortran).toBe(true);
      expect(r.shape).toEqual([...summary.resampled_shape, 1]);
      expect(r.label_dtype).toBe("uint8");
      expect(summary.nearest_axis).toBe(r.near);
      expect(r.image_max_abs, `${r.id} image`).toBeLessThan(1e-4);
      expect(r.label_mismatches, `${r.id} label voxels differing of ${r.label_voxels}`).toBe(0);
      expect(r.affine_max_abs).toBeLessThan(1e-6);
      expect(r.canonical_affine_max_abs).toBeLessThan(1e-6);
    }
    if (s.name === "heart")
      expect(result.cases.map((c) => c.orientation.join(""))).toEqual(["RAS", "LPS", "LAS"]);
    if (s.name === "heart-anisotropic") expect(ref[0]!.near).toBe(2);
    // Report the agreement for the record (visible with --reporter verbose).
    console.log(
      `${s.name}: max |image - reference| = ${Math.max(...ref.map((r) => r.image_max_abs)).toExponential(2)}, label mismatches ${ref.reduce((a, r) => a + r.label_mismatches, 0)}`,
    );
    const dataset = JSON.parse(readFileSync(join(dir, "dataset.json"), "utf8")) as {
      cases: Array<{ id: string; shape: number[] }>;
      spatial_dims: number;
    };
    expect(dataset.cases.map((c) => c.id)).toEqual(s.cases.map((c) => c.id));
    expect(dataset.spatial_dims).toBe(s.targetSpacing.length);
    const props = JSON.parse(
      readFileSync(join(dir, s.cases[0]!.id, "properties.json"), "utf8"),
    ) as CaseProperties;
    expect(Object.keys(props).sort()).toEqual(
      [
        "canonical",
        "canonical_affine",
        "canonical_shape",
        "canonical_spacing",
        "nearest_axis",
        "normalization",
        "original_affine",
        "original_shape",
        "original_spacing",
        "resampled_affine",
        "resampled_shape",
        "source",
        "spatial_dims",
        "target_spacing",
      ].sort(),
    );
  });

  it("multi-channel: one file per channel and one 4D file give the same channel-last image.npy", async () => {
    const src = msdCase("heart_micro", "la_002"); // LPS: channels are reoriented together
    const img = await readNifti(src.image[0]!);
    const a = Float32Array.from(img.data);
    const b = a.map((x) => 1000 - 2 * x); // an affine map of a: its z-score is exactly -a's
    const files = {
      a: join(tmp, "ch_a.nii.gz"),
      b: join(tmp, "ch_b.nii.gz"),
      both: join(tmp, "ch_ab.nii.gz"),
    };
    await writeNifti(files.a, { data: a, shape: img.shape, affine: img.affine });
    await writeNifti(files.b, { data: b, shape: img.shape, affine: img.affine });
    const both = new Float32Array(a.length * 2);
    both.set(a);
    both.set(b, a.length);
    await writeNifti(files.both, { data: both, shape: [...img.shape, 2], affine: img.affine });
    const images: Array<Float32Array> = [];
    for (const [name, image] of [
      ["split", [files.a, files.b]],
      ["packed", [files.both]],
    ] as const) {
      const planPath = join(tmp, `mc-${name}.plan.json`);
      const plan = examplePlan({
        cases: [{ id: "la_002", image: [...image], label: src.label! }],
        targetSpacing: [1.25, 1.25, 1.37],
        normalization: { scheme: "zscore", over: "all" }, // over all voxels b's z-score is -a's
        channels: ["a", "b"],
      });
      writeFileSync(planPath, JSON.stringify(plan));
      const { cases } = await preprocessDataset({
        plan: planPath,
        outDir: join(tmp, `mc-${name}`),
        workers: 0,
      });
      expect(cases[0]!.channels).toHaveLength(2);
      const npy = await readNpy(join(tmp, `mc-${name}`, "la_002", "image.npy"));
      expect(npy.shape).toEqual([...cases[0]!.resampled_shape, 2]);
      images.push(npyToVolume(npy).data as Float32Array);
    }
    expect(Array.from(images[1]!)).toEqual(Array.from(images[0]!));
    const half = images[0]!.length / 2;
    let worst = 0;
    for (let i = 0; i < half; i++) worst = Math.max(worst, Math.abs(images[0]![i]! + images[0]![half + i]!));
    expect(worst).toBeLessThan(1e-4);
  });

  it("reports bad inputs as one line naming the file", async () => {
    const badPlan = join(tmp, "bad.plan.json");
    const plan = examplePlan({ cases: [], targetSpacing: [1, 1, 1], normalization: { scheme: "ct" } });
    writeFileSync(badPlan, JSON.stringify(plan));
    await expect(preprocessDataset({ plan: badPlan, outDir: join(tmp, "bad"), workers: 0 })).rejects.toThrow(
      /bad\.plan\.json: normalization 'ct' needs clip, mean and std/,
    );
    writeFileSync(badPlan, JSON.stringify({ ...plan, target_spacing: [1, -1, 1] }));
    await expect(preprocessDataset({ plan: badPlan, outDir: join(tmp, "bad"), workers: 0 })).rejects.toThrow(
      /bad\.plan\.json: target_spacing\.1 must be > 0/,
    );
    const missing = msdCase("heart_micro", "la_001");
    missing.image = [join(tmp, "nope.nii.gz")];
    await expect(
      run({
        name: "missing",
        cases: [missing],
        targetSpacing: [1, 1, 1],
        normalization: { scheme: "none" },
      }),
    ).rejects.toThrow(/nope\.nii\.gz: /);
    await expect(
      run({
        name: "undeclared",
        cases: [tissueCase("sub-001")],
        targetSpacing: [1, 1],
        normalization: { scheme: "none" },
        labels: { "0": "background", "1": "CSF" },
      }),
    ).rejects.toThrow(/sub-001_T1w_tissue_segmentation\.npy: label value\(s\) 2, 3 not among/);
  });
});
