// pipelines/tissue-2d.yaml --smoke end to end on fixtures/tissue2d_micro (train/ 12, val/ 4,
// test/ 4 slices of 64x64), and analyze's one-pass report of bad 2D pairs. The test stage's
// per-class Dice is checked against the `pipeline evaluate` CLI on the same files, its overlays
// against numpy, and the early-stopping record against the trace by the stopping rule.
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { readDataset } from "../src/datasets/index.js";
import { ensureBuilt } from "./support/build.js";
import { cli, ROOT } from "./support/cli.js";
import { at, forge, forgeJson, type Json } from "./support/forge.js";
import { itWithOracle, python } from "./support/oracle.js";

const itOracle = itWithOracle("PIL");

const tmp = mkdtempSync(join(tmpdir(), "medpipe-tissue2d-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
beforeAll(() => ensureBuilt("evaluate/index.js"), 120_000);

const ids = (from: number, to: number) =>
  Array.from({ length: to - from + 1 }, (_, i) => `sub-${String(from + i).padStart(3, "0")}`);
const read = (path: string) => JSON.parse(readFileSync(path, "utf8"));
/** The package the smoke run trained (set by its test, read by the finetune test after it). */
let tissueModel = "";

describe("analyze on 2D .npy pairs", () => {
  it("reports a label outside 0..3 and a pair of different shapes in one pass, naming the files", () => {
    const data = join(tmp, "bad");
    cpSync(join(ROOT, "fixtures/tissue2d_micro"), data, { recursive: true });
    const bad = join(data, "train/sub-002_T1w_tissue_segmentation.npy");
    const short = join(data, "val/sub-013_T1w_tissue_segmentation.npy");
    python(
      `import numpy as np
a = np.load(INPUT["bad"]); a[0, 0] = 5; np.save(INPUT["bad"], a)
np.save(INPUT["short"], np.load(INPUT["short"])[:60])`,
      { bad, short },
    );
    const r = cli(["run-script", "analyze", "--dataset", "bad"], { cwd: tmp });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${bad}: label values 5 (1 voxels) outside the declared set {0, 1, 2, 3}`);
    expect(r.stderr).toContain(`${short}: label shape [60, 64] differs from image shape [64, 64]`);
    expect(r.stderr).toContain("analysis found 2 error(s) in 2 case(s)");
  });

  it("reads the reference's folder names training_data/ validation_data/ test_data/ as the splits", async () => {
    const data = join(tmp, "named");
    for (const [from, to] of [
      ["train", "training_data"],
      ["val", "validation_data"],
      ["test", "test_data"],
    ])
      cpSync(join(ROOT, "fixtures/tissue2d_micro", from as string), join(data, to as string), {
        recursive: true,
      });
    const r = await readDataset(data);
    expect(r.format).toBe("npy2d");
    expect(r.problems).toEqual([]);
    expect(r.cases.map((c) => `${c.id}:${c.split}`)).toEqual([
      ...ids(1, 12).map((id) => `${id}:train`),
      ...ids(13, 16).map((id) => `${id}:val`),
      ...ids(17, 20).map((id) => `${id}:test`),
    ]);
    cpSync(join(ROOT, "fixtures/tissue2d_micro/val"), join(data, "val"), { recursive: true });
    expect((await readDataset(data)).problems[0]).toBe(
      `${data}: val/ and validation_data/ are both the val split: keep one`,
    );
  });

  it("plan's predefined split refuses a dataset without train/ val/ folders", () => {
    cpSync(join(ROOT, "fixtures/heart_micro"), join(tmp, "heart"), { recursive: true });
    const a = cli(["run-script", "analyze", "--dataset", "heart"], { cwd: tmp });
    expect(a.code, a.stderr).toBe(0);
    const fingerprint = join(a.stdout.trim().split("\n").pop() as string, "stages/analyze/fingerprint.json");
    const p = cli(["run-script", "plan", "--analysis", fingerprint, "--split", "predefined"], { cwd: tmp });
    expect(p.code).toBe(1);
    expect(p.stderr).toContain(
      "split: predefined: case(s) la_001, la_002, la_003 have no train/val split from the dataset",
    );
  });
});

describe("pipelines/tissue-2d.yaml --smoke", () => {
  itOracle("trains on train/, selects on val/, tests on test/ and verifies", () => {
    const runs = join(tmp, "runs");
    const r = cli(["run", "pipelines/tissue-2d.yaml", "--smoke", "--runs-dir", runs], {
      cwd: ROOT,
      timeoutMs: 280_000,
    });
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    expect(r.stderr).toMatch(/succeeded: 7 succeeded/);
    const run = r.stdout.trim().split("\n").pop() as string;
    const stage = (s: string) => join(run, "stages", s);

    // The plan: the folders are the split, the test slices are not in it; the recipe.
    const plan = read(join(stage("plan"), "plan.json"));
    expect(plan.split).toMatchObject({ method: "predefined", test_cases: ids(17, 20) });
    expect(plan.split.folds).toEqual([{ fold: 0, train: ids(1, 12), val: ids(13, 16) }]);
    expect(plan.dataset.cases.map((c: { id: string }) => c.id)).toEqual(ids(1, 16));
    // The recipe is the reference's configuration, but for the smoke profile's crops and cadence.
    const reference = parse(readFileSync(join(ROOT, "eval/references/tissue-2d.yaml"), "utf8"));
    expect(plan).toMatchObject({
      ...reference.configuration,
      patch_size: [40, 40],
      val_every: 2,
      early_stopping: { patience: 2 },
    });
    expect(plan).toMatchObject({
      spatial_dims: 2,
      target_spacing: [1, 1],
      optimizer: { beta2: 0.999, eps: 1e-8 },
      schedule: { name: "constant" },
      ema: 0,
      inference: { overlap: 0.25, mode: "constant", tta: false, keep_largest_component: false },
    });

    // Training: the fold's cases; early stopping recorded and consistent with the trace (ema 0:
    // a validation is a new best when its Dice beats every earlier one; stop after 2 without).
    const train = read(join(stage("train"), "output.json"));
    expect(train.train_cases).toEqual(ids(1, 12));
    expect(train.val_cases).toEqual(ids(13, 16));
    const trace = read(join(stage("train"), "trace.json"));
    const dice: number[] = trace.validations.map((v: { dice: number }) => v.dice);
    let best = -1;
    let stale = 0;
    let stop: number | null = null;
    trace.validations.forEach((v: { epoch: number; dice: number }) => {
      stale = v.dice > best ? 0 : stale + 1;
      best = Math.max(best, v.dice);
      if (stale >= 2 && v.epoch < 6 && stop === null) stop = v.epoch;
    });
    expect(train.early_stopping).toEqual({ patience: 2, stopped_early: stop !== null, stop_epoch: stop });
    expect(trace.validations.map((v: { epoch: number }) => v.epoch)).toEqual(
      [2, 4, 6].filter((e) => e <= (stop ?? 6)),
    );
    expect(train.best.dice).toBe(Math.max(...dice));
    // The trainer's Dice of the selected epoch (torch: whole val/ slices, each slice's Dice
    // averaged as MONAI's DiceMetric does) is the held-out Dice the TypeScript metrics compute
    // from the same checkpoint's val/ predictions: every val/ slice of the fixture holds all
    // three classes, so the mean over slices of each slice's class mean is the mean over classes
    // of the per-class means.
    const perClass = Object.values(train.performance.mean as Record<string, { dice: number }>).map(
      (m) => m.dice,
    );
    expect(perClass).toHaveLength(3);
    expect(train.best.dice).toBeCloseTo(perClass.reduce((a, b) => a + b, 0) / 3, 9);

    // infer on test/: the four images, not their label files.
    const predict = read(join(stage("predict"), "output.json"));
    expect(predict.cases.map((c: { id: string }) => c.id)).toEqual(ids(17, 20).map((id) => `${id}_T1w`));
    expect(predict.failed).toEqual([]);

    // The test stage equals `pipeline evaluate` on the same files, case by case and per class.
    const test = read(join(stage("test"), "output.json"));
    expect(test.num_cases).toBe(4);
    const perCase: Record<string, number[]> = { "1": [], "2": [], "3": [] };
    for (const id of ids(17, 20)) {
      const c = cli(
        [
          "evaluate",
          "--pred",
          join(stage("predict"), "predictions", `${id}_T1w.npy`),
          "--gt",
          join(ROOT, "fixtures/tissue2d_micro/test", `${id}_T1w_tissue_segmentation.npy`),
          "--labels",
          "1,2,3",
          "--json",
        ],
        { cwd: ROOT },
      );
      expect(c.code, c.stderr).toBe(0);
      const viaCli = JSON.parse(c.stdout) as { cases: Array<{ label: number; metrics: { dice: number } }> };
      const mine = test.per_case.find((p: { case: string }) => p.case === id);
      for (const row of viaCli.cases) {
        expect(mine.dice[String(row.label)]).toBe(row.metrics.dice);
        perCase[String(row.label)]?.push(row.metrics.dice);
      }
    }
    const means = Object.values(perCase).map((v) => v.reduce((a, b) => a + b, 0) / v.length);
    expect(test.per_class.map((c: { dice: number }) => c.dice)).toEqual(means);
    expect(test.mean_foreground_dice).toBeCloseTo(means.reduce((a, b) => a + b, 0) / 3, 12);

    // One PNG per test slice; its reference panel is the label in the documented colours.
    expect(readdirSync(join(stage("test"), "overlays")).sort()).toEqual(ids(17, 20).map((id) => `${id}.png`));
    const png = python<{ size: number[]; reference: boolean; prediction: boolean }>(
      `
import numpy as np
from PIL import Image
palette = np.array([[0, 0, 0], [230, 159, 0], [86, 180, 233], [0, 158, 115]], np.uint8)
got = np.asarray(Image.open(INPUT["png"]))
ref, pred = np.load(INPUT["ref"]), np.load(INPUT["pred"])
OUTPUT = {"size": [got.shape[1], got.shape[0]],
          "reference": bool(np.array_equal(got[:, 68:132], palette[ref])),
          "prediction": bool(np.array_equal(got[:, 136:200], palette[pred]))}
`,
      {
        png: join(stage("test"), "overlays", "sub-017.png"),
        ref: join(ROOT, "fixtures/tissue2d_micro/test/sub-017_T1w_tissue_segmentation.npy"),
        pred: join(stage("predict"), "predictions", "sub-017_T1w.npy"),
      },
    );
    expect(png).toEqual({ size: [200, 64], reference: true, prediction: true });

    // The run's verifier passed; so does the verifier from outside, which rescored the held-out
    // 2D slices from their .npy predictions and labels.
    expect(read(join(stage("verify"), "output.json")).status).toBe("succeeded");
    const v = cli(["verify", run, "--json"], { cwd: ROOT });
    expect(v.code, v.stdout.slice(-2000)).toBe(0);
    const rescored = JSON.parse(v.stdout).checks.find((c: { id: string }) => c.id === "claims.per-case");
    expect(rescored.verdict, rescored.message).toBe("pass");
    expect(rescored.message).toMatch(/^4 case\(s\) rescored/);
    tissueModel = join(stage("train"), "model");

    // model.predictions also makes the predict stage's slices again with the package it ran.
    const all = cli(["verify", run, "--json", "--model-checks", "all"], { cwd: ROOT });
    expect(all.code, all.stdout.slice(-1500)).toBe(0);
    const made = JSON.parse(all.stdout).checks.find((c: { id: string }) => c.id === "model.predictions");
    for (const id of ids(17, 20))
      expect(made.message).toContain(`predict ${id}_T1w: Dice 1.0000 with the package's prediction`);
    expect(made.message).toMatch(/\(every case \(8\)\)$/); // 4 held-out val/ slices, 4 test/ slices
    // A test slice's prediction replaced by its reference, digests re-recorded: not the package's.
    const forged = join(tmp, "forged-predict");
    cpSync(run, forged, { recursive: true });
    rmSync(join(forged, "verify"), { recursive: true, force: true });
    forge(
      forged,
      "predict",
      "predictions/sub-018_T1w.npy",
      readFileSync(join(ROOT, "fixtures/tissue2d_micro/test/sub-018_T1w_tissue_segmentation.npy")),
    );
    const f = cli(["verify", forged, "--json", "--model-checks", "all"], { cwd: ROOT });
    expect(f.code).toBe(1);
    const caught = JSON.parse(f.stdout).checks.find((c: { id: string }) => c.id === "model.predictions");
    expect(caught.verdict, caught.message).toBe("fail");
    expect(caught.message).toMatch(
      /^predict sub-018_T1w: Dice 0\.\d+ with the package's prediction: stages\/predict\/predictions\/sub-018_T1w\.npy < 0\.99, the package did not make this prediction/,
    );
    // An adversary who re-records the artifact lists but not the digest the case itself states:
    // the stage's own claim about its file, found without re-running anything.
    const predicted = JSON.parse(readFileSync(join(run, "stages/predict/output.json"), "utf8")) as {
      cases: { output: string; output_sha256: string }[];
    };
    const case0 = predicted.cases.findIndex((c) => c.output === "predictions/sub-018_T1w.npy");
    const staleDigest = predicted.cases[case0]?.output_sha256;
    forgeJson(forged, "predict", "output.json", (j) => {
      at<Json>(j, "cases", case0).output_sha256 = staleDigest;
    });
    const s = cli(["verify", forged, "--json"], { cwd: ROOT });
    const failed = JSON.parse(s.stdout).checks.filter((c: { verdict: string }) => c.verdict === "fail");
    // (claims.evaluate too: this forger left the evaluate stage's scores of the real prediction.)
    expect(failed.map((c: { id: string }) => c.id)).toEqual(["outputs.artifact-claims", "claims.evaluate"]);
    expect(failed[0].message).toBe(
      "stages/predict/output.json claims a sha256 for predictions/sub-018_T1w.npy that differs from the recorded one",
    );
    expect(failed[0].evidence).toEqual([`stages/predict/output.json#/cases/${case0}/output_sha256`]);
  });

  // A 2D package finetuned on 2D slices: the folders are the split, the formal evaluations
  // predict .npy slices, and their Dice is what numpy gets from those files.
  itOracle("its model finetunes on train/ and val/ slices, with formal Dice numpy agrees with", () => {
    expect(tissueModel, "the smoke run above").not.toBe("");
    const runs = join(tmp, "runs");
    const finetune = (args: string[]) =>
      cli(
        [
          "run-script",
          "--workdir",
          "/",
          "--runs-dir",
          runs,
          "finetune",
          "--pretrained",
          tissueModel,
          ...args,
        ],
        {
          cwd: ROOT,
          timeoutMs: 200_000,
        },
      );
    const r = finetune([
      "--dataset_dir",
      join(ROOT, "fixtures/tissue2d_micro"),
      "--label_mapping",
      "[[1, 1], [2, 2], [3, 3]]",
      "--epochs",
      "1",
    ]);
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const run = r.stdout.trim().split("\n").pop() as string;
    const out = read(join(run, "stages/finetune/output.json"));
    expect(out.split).toMatchObject({
      source: "the dataset's train/ and val/ folders",
      train: ids(1, 12),
      val: ids(13, 16),
    });
    expect(out.audit).toMatchObject({
      orientations: ["none"],
      label_values: [0, 1, 2, 3],
      foreground_ml: null,
    });
    expect(out.audit.cases[0]).toMatchObject({ shape: [64, 64], spacing: [1, 1], foreground_ml: null });
    for (const which of ["pretrained", "finetuned"]) {
      const f = out.formal[which];
      expect(f.cases).toHaveLength(4);
      const want = python<{ dice: Record<string, number | null>[]; mean: number }>(
        `
import numpy as np, os
rows = []
for cid, pred in INPUT["cases"]:
    p = np.load(os.path.join(INPUT["stage"], pred))
    r = np.load(os.path.join(INPUT["val"], cid + "_T1w_tissue_segmentation.npy"))
    d = {}
    for k in (1, 2, 3):
        a, b = p == k, r == k
        d[str(k)] = None if a.sum() + b.sum() == 0 else float(2 * (a & b).sum() / (a.sum() + b.sum()))
    rows.append(d)
means = [np.mean([v for v in d.values() if v is not None]) for d in rows]
OUTPUT = {"dice": rows, "mean": float(np.mean(means))}
`,
        {
          stage: join(run, "stages/finetune"),
          val: join(ROOT, "fixtures/tissue2d_micro/val"),
          cases: f.cases.map((c: { id: string; prediction: string }) => [c.id, c.prediction]),
        },
      );
      f.cases.forEach((c: { dice: Record<string, number | null> }, i: number) => {
        for (const [k, d] of Object.entries(want.dice[i] as Record<string, number | null>))
          d === null ? expect(c.dice[k]).toBeNull() : expect(c.dice[k]).toBeCloseTo(d, 12);
      });
      expect(f.mean_dice).toBeCloseTo(want.mean, 12);
    }
    const v = cli(["verify", run, "--json"], { cwd: ROOT });
    expect(v.code, v.stdout.slice(-1500)).toBe(0);
    const claims = JSON.parse(v.stdout).checks.find((c: { id: string }) => c.id === "finetune.claims");
    expect(claims.verdict, claims.message).toBe("pass");

    // A 2D model and a dataset of volumes: refused before anything is read for training.
    const bad = finetune([
      "--dataset_dir",
      join(ROOT, "fixtures/spleen_micro"),
      "--label_mapping",
      "[[1, 1]]",
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(
      /exit code 2: error: .*fixtures\/spleen_micro\/imagesTr\/spleen_\d+\.nii\.gz: the model is 2D and takes \.npy slices, not a volume/,
    );
  });
});
