// The finetune library's pure parts against hand-derived values and the nibabel oracle: the
// label mapping and anatomy lookup, the split, the dataset audit, per-class Dice, the
// recommendation rule and the tensor comparison. No training here (tests/finetune.test.ts).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { python } from "../../tests/support/oracle.js";
import { PY_ROOT } from "../cvtrain/python.js";
import { PROJECT_ROOT } from "../paths.js";
import { auditDataset } from "./audit.js";
import { decide } from "./decide.js";
import { FinetuneInputError } from "./errors.js";
import { classDice } from "./formal.js";
import { loadSplit, resolveMapping } from "./inputs.js";
import { compareWeights } from "./weights.js";

const SPLEEN = join(PROJECT_ROOT, "fixtures", "spleen_micro");
const tmp = mkdtempSync(join(tmpdir(), "medpipe-finetune-unit-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const LABELS = { "0": "background", "1": "left atrium", "2": "left ventricle", "3": "aorta" };

describe("resolveMapping", () => {
  it("finds a class by name, exact before partial, case-insensitive", () => {
    expect(resolveMapping(LABELS, undefined, "Left Atrium").mapping).toEqual([[1, 1]]);
    expect(resolveMapping(LABELS, undefined, "aort").mapping).toEqual([[1, 3]]);
  });
  it("refuses unknown and ambiguous names, listing the classes", () => {
    expect(() => resolveMapping(LABELS, undefined, "liver")).toThrow(
      'target_anatomy "liver" is not a class of the model; its classes: 1 "left atrium", 2 "left ventricle", 3 "aorta"',
    );
    expect(() => resolveMapping(LABELS, undefined, "left")).toThrow(
      /ambiguous: 1 "left atrium", 2 "left ventricle"/,
    );
  });
  it("checks an explicit mapping against the model's classes", () => {
    expect(resolveMapping(LABELS, [[4, 2]], "ignored").mapping).toEqual([[4, 2]]);
    expect(() => resolveMapping(LABELS, [[1, 7]], undefined)).toThrow(
      /model class 7 \(for local label 1\) is not a class of the model/,
    );
    expect(() => resolveMapping(LABELS, [[1, 0]], undefined)).toThrow(FinetuneInputError);
    expect(() => resolveMapping(LABELS, [[0, 1]], undefined)).toThrow(/background/);
  });
});

describe("loadSplit", () => {
  it("without folds: case i in id order is in fold i mod 5, fold 0 validates", async () => {
    const s = await loadSplit(SPLEEN, undefined);
    expect(s.val.map((c) => c.id)).toEqual(["spleen_001", "spleen_006"]);
    expect(s.train.map((c) => c.id)).toEqual(["spleen_002", "spleen_003", "spleen_004", "spleen_005"]);
  });
  const datalist = (folds: number[]) => {
    const path = join(tmp, `datalist-${folds.join("")}.json`);
    const training = folds.map((fold, i) => ({
      image: `imagesTr/spleen_00${i + 1}.nii.gz`,
      label: `labelsTr/spleen_00${i + 1}.nii.gz`,
      fold,
    }));
    writeFileSync(path, JSON.stringify({ training }));
    return path;
  };
  it("a datalist's fold 0 validates; paths resolve against dataset_dir", async () => {
    const s = await loadSplit(SPLEEN, datalist([1, 0, 2, 0]));
    expect(s.val.map((c) => c.id)).toEqual(["spleen_002", "spleen_004"]);
    expect(s.train.map((c) => c.id)).toEqual(["spleen_001", "spleen_003"]);
    expect(s.source).toBe("datalist");
  });
  it("a datalist without a fold-0 case is an error naming it", async () => {
    const path = datalist([1, 1, 2, 2]);
    await expect(loadSplit(SPLEEN, path)).rejects.toThrow(`${path}: no case with "fold": 0`);
  });
});

describe("auditDataset", () => {
  it("matches nibabel per case: shape, label values, intensity range, foreground", async () => {
    const split = await loadSplit(SPLEEN, undefined);
    const audit = await auditDataset(split, [[1, 1]]);
    const want = python<
      { id: string; shape: number[]; values: number[]; min: number; max: number; fg: number; ml: number }[]
    >(
      `
import nibabel as nib, numpy as np, os
OUTPUT = []
for cid in INPUT["ids"]:
    img = nib.load(os.path.join(INPUT["root"], "imagesTr", cid + ".nii.gz"))
    lab = nib.load(os.path.join(INPUT["root"], "labelsTr", cid + ".nii.gz"))
    x, y = np.asanyarray(img.dataobj), np.asanyarray(lab.dataobj)
    fg = int((y > 0).sum())
    OUTPUT.append({"id": cid, "shape": list(x.shape), "values": sorted(int(v) for v in np.unique(y)),
                   "min": float(x.min()), "max": float(x.max()), "fg": fg,
                   "ml": fg * float(np.prod(lab.header.get_zooms()[:3])) / 1000})
`,
      { root: SPLEEN, ids: audit.cases.map((c) => c.id) },
    );
    expect(audit.cases.map((c) => c.role)).toEqual(["val", "val", "train", "train", "train", "train"]);
    audit.cases.forEach((c, i) => {
      const w = want[i]!;
      expect(c.id).toBe(w.id);
      expect(c.shape).toEqual(w.shape);
      expect(c.label_values).toEqual(w.values);
      expect(c.intensity.min).toBeCloseTo(w.min, 3);
      expect(c.intensity.max).toBeCloseTo(w.max, 3);
      expect(c.foreground_voxels).toBe(w.fg);
      // nibabel multiplies float32 zooms: agreement to float32 rounding
      expect(Math.abs((c.foreground_ml as number) - w.ml) / w.ml).toBeLessThan(1e-6);
    });
    expect(audit.orientations).toEqual(["LAS", "LPS", "RAS"]); // the fixture mixes orientations
    expect(audit.orientation_consistent).toBe(false);
    expect(audit.label_values).toEqual([0, 1]);
  });
  it("refuses a label value the mapping does not cover, and a mapped label no volume has", async () => {
    const split = await loadSplit(SPLEEN, undefined);
    await expect(auditDataset(split, [[2, 1]])).rejects.toThrow(
      /spleen_001.nii.gz: local label 1 maps to no model class/,
    );
    await expect(
      auditDataset(split, [
        [1, 1],
        [3, 1],
      ]),
    ).rejects.toThrow(
      "local label(s) 3 of the mapping appear in none of the 6 label volumes (values seen: 0, 1)",
    );
  });
});

describe("classDice", () => {
  it("is 2TP / (2TP + FP + FN) per class, null when the class is in neither map", () => {
    const pred = Uint8Array.from([1, 1, 0, 0, 2, 2]);
    const ref = Uint8Array.from([1, 0, 1, 0, 2, 0]);
    expect(classDice(pred, ref, 1)).toBe(0.5); // TP 1, FP 1, FN 1
    expect(classDice(pred, ref, 2)).toBeCloseTo(2 / 3, 15); // TP 1, FP 1, FN 0
    expect(classDice(pred, ref, 3)).toBeNull();
  });
});

describe("decide", () => {
  const base = {
    weightsMatch: false,
    formalPretrained: 0.6697,
    formalFinetuned: 0.6836,
    trainingStart: 0.6697,
    trainingBest: 0.6905,
  };
  it("recommends the fine-tuned checkpoint only beyond the margin with changed weights", () => {
    expect(decide(base)).toMatchObject({
      basis: "formal",
      improved: true,
      regressed: false,
      recommend: "finetuned",
    });
    expect(decide({ ...base, formalFinetuned: 0.6705 })).toMatchObject({
      improved: false,
      recommend: "pretrained",
    }); // +0.0008
    expect(decide({ ...base, formalFinetuned: 0.6 })).toMatchObject({ improved: false, regressed: true });
  });
  it("never recommends weights equal to the pretrained ones (the trap)", () => {
    expect(decide({ ...base, weightsMatch: true })).toMatchObject({
      improved: false,
      regressed: false,
      recommend: "pretrained",
    });
  });
  it("falls back to the training trace, then to nothing", () => {
    const noFormal = { ...base, formalPretrained: null, formalFinetuned: null };
    expect(decide(noFormal)).toMatchObject({ basis: "training", improved: true });
    expect(decide({ ...noFormal, trainingStart: null })).toMatchObject({
      basis: "none",
      improved: false,
      recommend: "pretrained",
    });
  });
});

describe("compareWeights", () => {
  it("compares tensors, not bytes: order and metadata do not matter, one changed value does", () => {
    const [a, b, c] = ["a", "b", "c"].map((n) => join(tmp, `${n}.safetensors`));
    python(
      `
import sys, torch
sys.path.insert(0, INPUT["py"])
from medpipe.safetensors_io import save_file
t = {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3), "b": torch.ones(3)}
save_file(t, INPUT["a"], metadata={"kind": "pretrained"})
save_file({"b": t["b"], "w": t["w"]}, INPUT["b"], metadata={"kind": "other", "epoch": "0"})
w2 = t["w"].clone(); w2[1, 2] = 5.5
save_file({"w": w2, "b": t["b"]}, INPUT["c"])
`,
      { py: PY_ROOT, a, b, c },
    );
    expect(compareWeights(a as string, b as string)).toMatchObject({
      identical: true,
      differing: 0,
      tensors: 2,
    });
    expect(compareWeights(a as string, c as string)).toMatchObject({
      identical: false,
      differing: 1,
      tensors: 2,
    });
  });
});
