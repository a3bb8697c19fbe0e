// toNativeSpace: a label preprocessed and mapped back is the original (exactly when the target
// spacing is the case's own; Dice > 0.95 when resampled). The exact cases are checked by nibabel:
// the mapped-back label is written as NIfTI and compared with the source file, data and affine.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { itWithOracle, python } from "../../tests/support/oracle.js";
import { readNifti } from "../imaging/nifti-read.js";
import { writeNifti } from "../imaging/nifti-write.js";
import { npyToVolume, readNpy } from "../imaging/npy.js";
import { toClosestCanonical } from "../imaging/orientation.js";
import { examplePlan } from "./example-plan.js";
import { readProperties, toNativeSpace } from "./native.js";
import { preprocessDataset } from "./preprocess.js";
import type { PlanCase } from "./types.js";

const itOracle = itWithOracle("nibabel");

const FIXTURES = join(import.meta.dirname, "../../fixtures");
const tmp = mkdtempSync(join(tmpdir(), "medpipe-native-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const heart = (id: string): PlanCase => ({
  id,
  image: [join(FIXTURES, "heart_micro", "imagesTr", `${id}.nii.gz`)],
  label: join(FIXTURES, "heart_micro", "labelsTr", `${id}.nii.gz`),
});
const tissue = (id: string): PlanCase => ({
  id,
  image: [join(FIXTURES, "tissue2d_micro", "train", `${id}_T1w.npy`)],
  label: join(FIXTURES, "tissue2d_micro", "train", `${id}_T1w_tissue_segmentation.npy`),
});
const TISSUE_LABELS = { "0": "background", "1": "CSF", "2": "grey matter", "3": "white matter" };

async function preprocess(
  name: string,
  cases: PlanCase[],
  targetSpacing: number[],
  labels?: Record<string, string>,
) {
  const plan = join(tmp, `${name}.plan.json`);
  const p = examplePlan({
    cases,
    targetSpacing,
    normalization: { scheme: "zscore", over: "all" },
    ...(labels ? { labels } : {}),
  });
  writeFileSync(plan, JSON.stringify(p));
  const outDir = join(tmp, name);
  await preprocessDataset({ plan, outDir, workers: 0 });
  return outDir;
}

/** The mapped-back label of a case, from label.npy and properties.json (or one-hot probabilities). */
async function backToNative(dir: string, id: string, viaProbabilities = false) {
  const props = await readProperties(join(dir, id, "properties.json"));
  const label = npyToVolume(await readNpy(join(dir, id, "label.npy"))).data;
  if (!viaProbabilities) return { props, native: toNativeSpace({ label }, props) };
  const classes = 4;
  const probs = new Float32Array(label.length * classes);
  for (let i = 0; i < label.length; i++) probs[label[i]! * label.length + i] = 1;
  return { props, native: toNativeSpace({ probabilities: probs }, props) };
}

function dice(a: ArrayLike<number>, b: ArrayLike<number>, value: number): number {
  let inter = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    const x = a[i] === value;
    const y = b[i] === value;
    if (x) na++;
    if (y) nb++;
    if (x && y) inter++;
  }
  return na + nb === 0 ? 1 : (2 * inter) / (na + nb);
}

describe("toNativeSpace", () => {
  itOracle(
    "gives back the original label exactly at the case's own spacing (RAS, LPS, LAS), as nibabel reads it",
    async () => {
      const ids = ["la_001", "la_002", "la_003"];
      const files: Array<{ original: string; ours: string }> = [];
      for (const id of ids) {
        const c = heart(id);
        // The canonical spacing is the case's own spacing permuted: target = it gives an identity grid.
        const { image } = toClosestCanonical(await readNifti(c.image[0]!));
        const dir = await preprocess(`own-${id}`, [c], image.spacing.slice(0, 3));
        for (const viaProbabilities of [false, true]) {
          const { props, native } = await backToNative(dir, id, viaProbabilities);
          expect(props.resampled_shape).toEqual(props.canonical_shape);
          const original = await readNifti(c.label!);
          expect(native.label.shape).toEqual(original.shape);
          expect(native.label.affine).toEqual(original.affine);
          expect(Array.from(native.label.data)).toEqual(Array.from(original.data));
          if (viaProbabilities) expect(native.probabilities?.shape).toEqual([...original.shape, 4]);
          else {
            const ours = join(tmp, `${id}-native.nii.gz`);
            await writeNifti(ours, native.label);
            files.push({ original: c.label!, ours });
          }
        }
      }
      const ref = python<Array<{ equal: boolean; affine: number; shape: boolean }>>(
        `
import numpy as np, nibabel as nib

OUTPUT = []
for f in INPUT:
    a = nib.load(f["original"]); b = nib.load(f["ours"])
    OUTPUT.append({"equal": bool(np.array_equal(np.asanyarray(a.dataobj), np.asanyarray(b.dataobj))),
                   "shape": a.shape == b.shape, "affine": float(np.abs(a.affine - b.affine).max())})
`,
        files,
      );
      for (const r of ref) {
        expect(r.equal).toBe(true);
        expect(r.shape).toBe(true);
        expect(r.affine).toBeLessThan(1e-5); // float32 sform
      }
    },
  );

  it("maps resampled heart_micro labels back with Dice > 0.95", async () => {
    const ids = ["la_001", "la_002", "la_003", "la_004", "la_005", "la_006", "la_007", "la_008"];
    const dir = await preprocess("heart-resampled", ids.map(heart), [1.25, 1.25, 1.37]);
    const scores: number[] = [];
    for (const id of ids) {
      const { native } = await backToNative(dir, id);
      const original = await readNifti(heart(id).label!);
      expect(native.label.shape).toEqual(original.shape);
      expect(native.label.affine).toEqual(original.affine);
      scores.push(dice(native.label.data, original.data, 1));
    }
    console.log(`heart_micro round-trip Dice: ${scores.map((d) => d.toFixed(4)).join(" ")}`);
    for (const d of scores) expect(d).toBeGreaterThan(0.95);
  });

  it("2D tissue slices: exact at spacing 1, every class Dice > 0.9 when resampled", async () => {
    const exact = await preprocess("tissue-own", [tissue("sub-002")], [1, 1], TISSUE_LABELS);
    const original = npyToVolume(
      await readNpy(join(FIXTURES, "tissue2d_micro", "train", "sub-002_T1w_tissue_segmentation.npy")),
    );
    for (const viaProbabilities of [false, true]) {
      const { native } = await backToNative(exact, "sub-002", viaProbabilities);
      expect(native.label.shape).toEqual(original.shape);
      expect(Array.from(native.label.data)).toEqual(Array.from(original.data));
    }
    const resampled = await preprocess("tissue-resampled", [tissue("sub-002")], [0.8, 1.25], TISSUE_LABELS);
    const { native, props } = await backToNative(resampled, "sub-002", true);
    expect(props.resampled_shape).toEqual([80, 51]);
    expect(native.probabilities?.shape).toEqual([...original.shape, 4]);
    const scores = [1, 2, 3].map((k) => dice(native.label.data, original.data, k));
    console.log(`tissue2d round-trip Dice (CSF, grey, white): ${scores.map((d) => d.toFixed(4)).join(" ")}`);
    for (const d of scores) expect(d).toBeGreaterThan(0.9);
  });

  it("rejects a prediction of the wrong size", async () => {
    const dir = await preprocess("tissue-size", [tissue("sub-003")], [1, 1], TISSUE_LABELS);
    const props = await readProperties(join(dir, "sub-003", "properties.json"));
    expect(() => toNativeSpace({ label: new Uint8Array(5) }, props)).toThrow(/label has 5 voxels/);
    expect(() => toNativeSpace({}, props)).toThrow(/needs a label map, probabilities or a foreground/);
    expect(() => toNativeSpace({ foreground: new Float32Array(7) }, props)).toThrow(
      /foreground has 7 voxels/,
    );
  });

  it("a two-class prediction as its foreground probability alone: the same class-1 values and label", async () => {
    const dir = await preprocess("tissue-foreground", [tissue("sub-002")], [0.8, 1.25], TISSUE_LABELS);
    const props = await readProperties(join(dir, "sub-002", "properties.json"));
    const n = props.resampled_shape.reduce((a, b) => a * b, 1);
    // A smooth field crossing 0.5 along curves, so the resampling interpolates across the boundary.
    const p = Float32Array.from({ length: n }, (_, i) => 0.5 + 0.5 * Math.sin(i / 7) * Math.cos(i / 131));
    const both = new Float32Array(2 * n);
    for (let i = 0; i < n; i++) {
      both[i] = 1 - p[i]!;
      both[n + i] = p[i]!;
    }
    const full = toNativeSpace({ probabilities: both }, props);
    const fg = toNativeSpace({ foreground: p }, props);
    const m = full.label.data.length;
    expect(fg.foreground?.shape).toEqual(full.label.shape);
    expect(fg.foreground?.affine).toEqual(full.label.affine);
    expect(fg.foreground?.data).toEqual(full.probabilities?.data.subarray(m, 2 * m));
    expect(fg.probabilities).toBeUndefined();
    // The label: p > 0.5 against the argmax of the separately resampled (1 − p, p); they can
    // only differ where the two resampled values tie to float32 rounding.
    let differ = 0;
    for (let i = 0; i < m; i++)
      if (fg.label.data[i] !== full.label.data[i]) {
        differ++;
        expect(Math.abs(fg.foreground!.data[i]! - 0.5)).toBeLessThan(1e-6);
      }
    expect(differ).toBeLessThan(m / 1000);
    expect(fg.label.data.some((v) => v === 1) && fg.label.data.some((v) => v === 0)).toBe(true);
  });
});
