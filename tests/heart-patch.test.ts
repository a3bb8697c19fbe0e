import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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
    folds: Array<{ train: string[]; val: string[] }>;
  };
  patch_size: number[];
  epochs: number;
  val_every: number;
  sampler: { name: string; probabilities: number[] };
  augment: Array<{ name: string }>;
}

describe("pipelines/heart-patch.yaml --smoke", () => {
  itOracle(
    "runs every stage, predicts the test cases in their native space, and verifies",
    () => {
      const started = performance.now();
      const r = cli(["run", "pipelines/heart-patch.yaml", "--smoke", "--runs-dir", runs], {
        cwd: ROOT,
        timeoutMs: 280_000,
      });
      expect(r.code, r.stderr.slice(-2000)).toBe(0);
      expect(r.stderr).toMatch(/succeeded: 6 succeeded/);
      const runDir = r.stdout.trim().split("\n").pop() as string;
      expect(runDir.startsWith(join(runs, "heart-patch/"))).toBe(true);
      const run = JSON.parse(readFileSync(join(runDir, "run.json"), "utf8"));
      expect(run).toMatchObject({
        status: "succeeded",
        mode: "smoke",
        profile: "smoke",
        params: { dataset: "fixtures/heart_micro", epochs: 2, patch_size: [32, 32, 32] },
      });
      const stages = ["analyze", "plan", "preprocess", "test", "predict", "verify"];
      for (const s of stages) {
        const out = JSON.parse(readFileSync(join(runDir, "stages", s, "output.json"), "utf8"));
        expect(out.status, s).toBe("succeeded");
      }

      // The plan: the reference's single split and training settings.
      const plan = JSON.parse(readFileSync(join(runDir, "stages/plan/plan.json"), "utf8")) as Plan;
      expect(plan.split).toMatchObject({ method: "holdout", seed: 42, holdout_fraction: 0.1 });
      expect(plan.split.folds).toHaveLength(1);
      expect(plan).toMatchObject({
        patch_size: [32, 32, 32],
        epochs: 2,
        val_every: 2,
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
      const { train, val: testCases } = plan.split.folds[0]!;
      expect(testCases).toHaveLength(1); // round(8 × 0.1)
      expect(train.filter((id) => testCases.includes(id))).toEqual([]);
      expect([...train, ...testCases].sort()).toEqual(plan.dataset.cases.map((c) => c.id).sort());

      // cv-train fold 0: trained on the non-test cases, scored the test cases with the metric suite.
      const test = JSON.parse(readFileSync(join(runDir, "stages/test/output.json"), "utf8"));
      expect(test.fold).toBe(0);
      expect(test.train_cases).toEqual(train);
      expect(test.val_cases).toEqual(testCases);
      expect(test.per_case.map((c: { id: string }) => c.id)).toEqual(testCases);
      const metrics = test.per_case[0].labels[0].metrics;
      for (const m of ["dice", "hd95", "sensitivity", "ldr", "rve"]) expect(metrics, m).toHaveProperty(m);

      // infer: fold 0's package on exactly the test cases, nothing failed.
      const predict = JSON.parse(readFileSync(join(runDir, "stages/predict/output.json"), "utf8"));
      expect(predict.model.path).toBe(join(runDir, "stages/test/model"));
      expect(predict.cases.map((c: { id: string }) => c.id)).toEqual(testCases);
      expect(predict.failed).toEqual([]);
      expect(readdirSync(join(runDir, "stages/predict/predictions")).sort()).toEqual(
        testCases.map((id) => `${id}.nii.gz`).sort(),
      );

      // nibabel: each prediction overlays its image (same shape, same affine), labels within {0, 1}.
      const overlays = python<Array<{ id: string; shape: boolean; affine: boolean; labels: number[] }>>(
        `
import nibabel as nib, numpy as np

OUTPUT = []
for c in INPUT:
    img, pred = nib.load(c["image"]), nib.load(c["pred"])
    OUTPUT.append({
        "id": c["id"],
        "shape": list(pred.shape) == list(img.shape[:3]),
        "affine": bool(np.array_equal(pred.affine, img.affine)),
        "labels": sorted(int(v) for v in np.unique(np.asanyarray(pred.dataobj))),
    })
`,
        testCases.map((id) => ({
          id,
          image: join(ROOT, "fixtures/heart_micro/imagesTr", `${id}.nii.gz`),
          pred: join(runDir, "stages/predict/predictions", `${id}.nii.gz`),
        })),
      );
      expect(overlays).toHaveLength(testCases.length);
      for (const o of overlays) {
        expect(o, o.id).toMatchObject({ shape: true, affine: true });
        expect(o.labels.every((v) => v === 0 || v === 1)).toBe(true);
      }

      // The run's verify stage passed, and so does the verifier from outside.
      const verdict = JSON.parse(readFileSync(join(runDir, "stages/verify/output.json"), "utf8"));
      expect(verdict.verdict).toBe("pass");
      const outside = cli(["verify", runDir, "--json"], { cwd: ROOT });
      expect(outside.code, outside.stdout.slice(-2000)).toBe(0);
      // The smoke profile is meant to take about a minute on CPU.
      expect((performance.now() - started) / 1000).toBeLessThan(240);
    },
    300_000,
  );
});
