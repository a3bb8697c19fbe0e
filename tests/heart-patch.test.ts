import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect } from "vitest";
import { ensureBuilt } from "./support/build.js";
import { cli, ROOT } from "./support/cli.js";
import { itWithOracle, python } from "./support/oracle.js";

const itOracle = itWithOracle("nibabel");

const runs = mkdtempSync(join(tmpdir(), "medpipe-heart-patch-"));
afterAll(() => rmSync(runs, { recursive: true, force: true }));

beforeAll(() => ensureBuilt("infer/index.js"), 120_000);

interface Plan {
  dataset: { cases: Array<{ id: string }> };
  split: {
    method: string;
    seed: number;
    holdout_fraction: number;
    test_fraction: number;
    test_cases: string[];
    folds: Array<{ train: string[]; val: string[] }>;
  };
  patch_size: number[];
  epochs: number;
  sampler: { name: string; probabilities: number[] };
  augment: Array<{ name: string }>;
}

const read = (runDir: string, rel: string) => JSON.parse(readFileSync(join(runDir, rel), "utf8"));

describe("pipelines/heart-patch.yaml --smoke", () => {
  itOracle(
    "sets the test cases aside, trains and validates without them, predicts and scores them, and verifies",
    () => {
      const r = cli(["run", "pipelines/heart-patch.yaml", "--smoke", "--runs-dir", runs], {
        cwd: ROOT,
        timeoutMs: 280_000,
      });
      expect(r.code, r.stderr.slice(-2000)).toBe(0);
      expect(r.stderr).toMatch(/succeeded: 7 succeeded/);
      const runDir = r.stdout.trim().split("\n").pop() as string;
      expect(runDir.startsWith(join(runs, "heart-patch/"))).toBe(true);
      expect(read(runDir, "run.json")).toMatchObject({
        status: "succeeded",
        mode: "smoke",
        profile: "smoke",
        params: { dataset: "fixtures/heart_micro", epochs: 2, patch_size: [32, 32, 32] },
      });
      for (const s of ["analyze", "plan", "preprocess", "train", "predict", "test", "verify"])
        expect(read(runDir, `stages/${s}/output.json`).status, s).toBe("succeeded");

      // The plan: 1 test case of 8 (round(8 × 0.1)) set aside, then 1 validation case of the 7 left.
      const plan = read(runDir, "stages/plan/plan.json") as Plan;
      expect(plan.split).toMatchObject({
        method: "holdout",
        seed: 42,
        holdout_fraction: 0.1,
        test_fraction: 0.1,
      });
      const testCases = plan.split.test_cases;
      expect(testCases).toHaveLength(1);
      expect(plan.split.folds).toHaveLength(1);
      const { train, val } = plan.split.folds[0]!;
      expect(val).toHaveLength(1);
      expect(train).toHaveLength(6);
      expect([...train, ...val].sort()).toEqual(plan.dataset.cases.map((c) => c.id).sort());
      for (const id of testCases) expect([...train, ...val]).not.toContain(id);
      expect(plan).toMatchObject({
        patch_size: [32, 32, 32],
        epochs: 2,
        sampler: { name: "label", probabilities: [0.2, 0.8] },
      });
      expect(plan.augment.map((a) => a.name)).toEqual([
        "affine",
        "gamma",
        "bias_field",
        "blur",
        "noise",
        "flip",
      ]);

      // cv-train fold 0: trained on train, validated (and scored) on val; never saw the test case.
      const trained = read(runDir, "stages/train/output.json");
      expect(trained.train_cases).toEqual(train);
      expect(trained.val_cases).toEqual(val);

      // infer: fold 0's package on exactly the test cases, nothing failed.
      const predict = read(runDir, "stages/predict/output.json");
      expect(predict.model.path).toBe(join(runDir, "stages/train/model"));
      expect(predict.cases.map((c: { id: string }) => c.id)).toEqual(testCases);
      expect(predict.failed).toEqual([]);
      expect(readdirSync(join(runDir, "stages/predict/predictions")).sort()).toEqual(
        testCases.map((id) => `${id}.nii.gz`).sort(),
      );

      // evaluate: the test cases scored with the metric suite; nibabel + numpy recompute the Dice,
      // and each prediction overlays its image (same shape and affine), labels within {0, 1}.
      const test = read(runDir, "stages/test/output.json");
      expect(test.per_case.map((c: { case: string }) => c.case)).toEqual(testCases);
      const metrics = read(runDir, "stages/test/metrics.json").cases[0].metrics;
      for (const m of ["dice", "hd95", "sensitivity", "ldr", "rve"]) expect(metrics, m).toHaveProperty(m);
      const oracle = python<
        Array<{ id: string; shape: boolean; affine: boolean; labels: number[]; dice: number }>
      >(
        `
import nibabel as nib, numpy as np

OUTPUT = []
for c in INPUT:
    img, pred, lab = nib.load(c["image"]), nib.load(c["pred"]), nib.load(c["label"])
    p = np.asanyarray(pred.dataobj) == 1
    g = np.asanyarray(lab.dataobj) == 1
    OUTPUT.append({
        "id": c["id"],
        "shape": list(pred.shape) == list(img.shape[:3]),
        "affine": bool(np.array_equal(pred.affine, img.affine)),
        "labels": sorted(int(v) for v in np.unique(np.asanyarray(pred.dataobj))),
        "dice": 2 * float((p & g).sum()) / float(p.sum() + g.sum()),
    })
`,
        testCases.map((id) => ({
          id,
          image: join(ROOT, "fixtures/heart_micro/imagesTr", `${id}.nii.gz`),
          label: join(ROOT, "fixtures/heart_micro/labelsTr", `${id}.nii.gz`),
          pred: join(runDir, "stages/predict/predictions", `${id}.nii.gz`),
        })),
      );
      expect(oracle).toHaveLength(testCases.length);
      for (const o of oracle) {
        expect(o, o.id).toMatchObject({ shape: true, affine: true });
        expect(o.labels.every((v) => v === 0 || v === 1)).toBe(true);
      }
      expect(test.per_case[0].dice["1"]).toBeCloseTo(oracle[0]!.dice, 12);
      expect(test.mean_foreground_dice).toBeCloseTo(oracle[0]!.dice, 12);

      // The run's verify stage passed, and so does the verifier from outside.
      expect(read(runDir, "stages/verify/output.json").verdict).toBe("pass");
      const outside = cli(["verify", runDir, "--json"], { cwd: ROOT });
      expect(outside.code, outside.stdout.slice(-2000)).toBe(0);
    },
    300_000,
  );
});
