// claims.evaluate on one real tissue-2d smoke run (its `test` stage is the evaluate skill) and on
// tampered copies of it: every number the test stage reports must follow from the predictions it
// names, rescored against their references, and a forged value, a case left out, or predictions
// swapped after scoring is caught by that check alone. Plus a 3D pair stored in two orientations
// through `pipeline run-script evaluate`, against nibabel + numpy.
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadSkills, skillDirs } from "../src/skills/registry.js";
import { verifyRun } from "../src/verify/index.js";
import type { CheckResult, VerifyReport } from "../src/verify/types.js";
import { ensureBuilt } from "./support/build.js";
import { cli, ROOT } from "./support/cli.js";
import { at, forge, forgeJson, type Json, stageFile } from "./support/forge.js";
import { describeWithOracle, python } from "./support/oracle.js";

const skills = loadSkills(skillDirs([]));
const tmp = mkdtempSync(join(tmpdir(), "medpipe-veval-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const failed = (r: VerifyReport) => r.checks.filter((c) => c.verdict === "fail").map((c) => c.id);
const check = (r: VerifyReport, id: string) => r.checks.find((c) => c.id === id) as CheckResult;
const PRED = "predictions/sub-017_T1w.npy";

describe("claims.evaluate on a real tissue-2d smoke run", () => {
  const dataset = join(tmp, "tissue2d");
  let original: string; // where the run ran
  let clean: string; // a copy of it elsewhere: every run judged below has moved
  let n = 0;
  const tampered = (tamper: (dir: string) => void): string => {
    const dir = join(tmp, "tampered", String(n++));
    cpSync(clean, dir, { recursive: true });
    tamper(dir);
    return dir;
  };

  beforeAll(() => {
    ensureBuilt("evaluate/index.js");
    cpSync(join(ROOT, "fixtures/tissue2d_micro"), dataset, { recursive: true });
    const runs = join(tmp, "runs");
    const r = cli(
      ["run", "pipelines/tissue-2d.yaml", "--smoke", "--set", `dataset=${dataset}`, "--runs-dir", runs],
      { cwd: ROOT, timeoutMs: 240_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    original = join(runs, "tissue-2d", readdirSync(join(runs, "tissue-2d"))[0] as string);
    clean = join(tmp, "clean");
    cpSync(original, clean, { recursive: true });
    rmSync(join(clean, "verify"), { recursive: true, force: true });
  }, 300_000);

  it("passes the untouched run, reading the predictions of the copy and the references of the dataset", () => {
    const r = verifyRun(clean, skills);
    expect(failed(r)).toEqual([]);
    const c = check(r, "claims.evaluate");
    expect(c.verdict, c.message).toBe("pass");
    expect(c.message).toMatch(/^1 evaluate stage\(s\), 4 case\(s\) rescored/);
    // Read where the run lies now, not at the path recorded when it ran.
    expect(Object.keys(r.judged)).toContain(`stages/predict/${PRED}`);
    expect(Object.keys(r.judged).some((k) => k.startsWith(original))).toBe(false);
    expect(Object.keys(r.judged)).toContain(join(dataset, "test/sub-017_T1w_tissue_segmentation.npy"));
  });

  const traps: { name: string; tamper: (d: string) => void; message: RegExp; evidence: string[] }[] = [
    {
      name: "a per-case Dice raised in output.json",
      tamper: (d) =>
        forgeJson(d, "test", "output.json", (j) => {
          const dice = at<Json>(j, "per_case", 1, "dice");
          dice["1"] = (dice["1"] as number) + 0.05;
        }),
      message: /test sub-018 label 1: Dice recorded [\d.]+, recomputed [\d.]+/,
      evidence: ["stages/test/output.json#/per_case/1"],
    },
    {
      name: "an HD95 lowered in metrics.json",
      tamper: (d) =>
        forgeJson(d, "test", "metrics.json", (j) => {
          const m = at<Json>(j, "cases", 2, "metrics");
          m.hd95 = (m.hd95 as number) / 2;
        }),
      message: /test sub-017 label 3: hd95 recorded [\d.]+ in metrics\.json, recomputed [\d.]+/,
      evidence: ["stages/test/metrics.json#/cases/2"],
    },
    {
      name: "the worst case left out of the report",
      tamper: (d) =>
        forgeJson(d, "test", "output.json", (j) => {
          const cases = at<{ case: string; mean_dice: number }[]>(j, "per_case");
          const worst = cases.reduce((a, b) => (b.mean_dice < a.mean_dice ? b : a));
          j.per_case = cases.filter((c) => c !== worst);
          j.num_cases = cases.length - 1;
        }),
      message:
        /test reports 3 case\(s\) \(beyond the pairs: \[\]; left out: \[sub-0\d\d\]\) where its inputs pair 4/,
      evidence: ["stages/test/output.json#/per_case"],
    },
    {
      name: "the mean foreground Dice raised",
      tamper: (d) =>
        forgeJson(d, "test", "output.json", (j) => {
          j.mean_foreground_dice = (j.mean_foreground_dice as number) + 0.02;
        }),
      message: /test: mean foreground Dice recorded [\d.]+, the classes give [\d.]+/,
      evidence: ["stages/test/output.json#/mean_foreground_dice"],
    },
    {
      name: "a prediction swapped for its reference after scoring (the predict stage's digests re-recorded)",
      tamper: (d) =>
        forge(d, "predict", PRED, readFileSync(join(dataset, "test/sub-017_T1w_tissue_segmentation.npy"))),
      message: /test sub-017 label 1: Dice recorded [\d.]+, recomputed 1\b/,
      evidence: ["stages/test/output.json#/per_case/0"],
    },
  ];
  for (const trap of traps)
    it(`fails ${trap.name}, and only claims.evaluate fails`, () => {
      const r = verifyRun(tampered(trap.tamper), skills);
      expect(failed(r)).toEqual(["claims.evaluate"]);
      const c = check(r, "claims.evaluate");
      expect(c.message).toMatch(trap.message);
      for (const e of trap.evidence) expect(c.evidence).toContain(e);
      // model.predictions needs the ONNX runner, which verifyRun does not load.
      const skipped = r.checks.filter((x) => x.verdict === "skipped").map((x) => x.id);
      expect(skipped).toEqual(["model.predictions"]);
    });

  it("leaves an altered prediction to integrity (digests not re-recorded) and names it", () => {
    const r = verifyRun(
      tampered((d) =>
        writeFileSync(
          stageFile(d, "predict", PRED),
          readFileSync(join(dataset, "test/sub-017_T1w_tissue_segmentation.npy")),
        ),
      ),
      skills,
    );
    expect(failed(r)).toEqual(["integrity.artifacts"]);
    const c = check(r, "claims.evaluate");
    expect(c.verdict).toBe("skipped");
    expect(c.message).toContain(
      `test sub-017 not judged: stages/predict/${PRED} already failed integrity.artifacts`,
    );
  });

  it("judges a moved run on its own files even when the old place holds other ones", () => {
    writeFileSync(
      join(original, "stages/predict", PRED),
      readFileSync(join(dataset, "test/sub-017_T1w_tissue_segmentation.npy")),
    );
    const r = verifyRun(clean, skills);
    expect(check(r, "claims.evaluate").verdict).toBe("pass");
  });

  it("is skipped, naming the folder, when the references cannot be read here", () => {
    rmSync(join(dataset, "test"), { recursive: true, force: true });
    const r = verifyRun(clean, skills);
    const c = check(r, "claims.evaluate");
    expect(c.verdict).toBe("skipped");
    expect(c.message).toBe(`the references cannot be read here: ${join(dataset, "test")}`);
  });
});

describe("claims.evaluate with two evaluate stages", () => {
  it("judges the second stage's summaries as well as the first's", () => {
    const ws = join(tmp, "twice");
    mkdirSync(ws, { recursive: true });
    const labels = join(ROOT, "fixtures/heart_micro/labelsTr");
    const stage = `{ skill: evaluate, with: { predictions: "${labels}", references: "${labels}", surface: false } }`;
    writeFileSync(join(ws, "twice.yaml"), `name: twice\nstages:\n  a: ${stage}\n  b: ${stage}\n`);
    const r = cli(["run", "twice.yaml"], { cwd: ws });
    expect(r.code, r.stderr).toBe(0);
    const run = join(ws, "runs/twice", readdirSync(join(ws, "runs/twice"))[0] as string);
    const clean = verifyRun(run, skills);
    expect(check(clean, "claims.evaluate").message).toMatch(/^2 evaluate stage\(s\), 16 case\(s\) rescored/);
    forgeJson(run, "b", "output.json", (j) => {
      at<Json>(j, "per_class", 0).std = 0.25; // every case scores Dice 1: the std is 0
    });
    const forged = verifyRun(run, skills);
    expect(failed(forged)).toEqual(["claims.evaluate"]);
    expect(check(forged, "claims.evaluate").message).toMatch(
      /b class 1: Dice 1 ± 0\.25 \(n 8\), the cases give 1 ± 0 \(n 8\)/,
    );
  });
});

describeWithOracle("nibabel", "numpy")("claims.evaluate on a 3D pair stored in two orientations", () => {
  it("rescoring agrees with the skill, and the skill's Dice with nibabel + numpy", () => {
    const ws = join(tmp, "ws3d");
    for (const d of ["pred", "ref"]) mkdirSync(join(ws, d), { recursive: true });
    // Reference in RAS with anisotropic voxels; the prediction is the same labels, a few voxels
    // changed, stored flipped on x and y (LPS) with the affine that keeps it in place.
    const oracle = python<{ dice: Record<string, number> }>(
      `
import nibabel as nib, numpy as np
rng = np.random.default_rng(3)
ref = np.zeros((14, 12, 9), np.uint8)
ref[3:10, 2:9, 2:7] = 1
ref[5:8, 4:7, 3:5] = 2
pred = ref.copy()
pred[rng.random(pred.shape) < 0.06] = 0
pred[9:12, 2:5, 6:8] = 2
aff = np.diag([0.8, 1.1, 2.5, 1.0]); aff[:3, 3] = [-5.0, 7.0, 1.0]
nib.save(nib.Nifti1Image(ref, aff), INPUT["ref"])
flip = np.diag([-1.0, -1.0, 1.0, 1.0]); flip[0, 3] = ref.shape[0] - 1; flip[1, 3] = ref.shape[1] - 1
nib.save(nib.Nifti1Image(np.ascontiguousarray(pred[::-1, ::-1, :]), aff @ flip), INPUT["pred"])
p = np.asarray(nib.as_closest_canonical(nib.load(INPUT["pred"])).dataobj)
r = np.asarray(nib.as_closest_canonical(nib.load(INPUT["ref"])).dataobj)
assert nib.aff2axcodes(nib.load(INPUT["pred"]).affine) == ("L", "P", "S")
OUTPUT = {"dice": {str(k): float(2 * ((p == k) & (r == k)).sum() / ((p == k).sum() + (r == k).sum())) for k in (1, 2)}}
`,
      { ref: join(ws, "ref/case_1.nii.gz"), pred: join(ws, "pred/case_1.nii.gz") },
    );
    const r = cli(["run-script", "evaluate", "--predictions", "pred", "--references", "ref"], { cwd: ws });
    expect(r.code, r.stderr).toBe(0);
    const base = join(ws, "runs", "script-evaluate");
    const run = join(base, readdirSync(base)[0] as string);
    const out = JSON.parse(readFileSync(join(run, "stages/evaluate/output.json"), "utf8"));
    for (const k of ["1", "2"]) expect(out.per_case[0].dice[k]).toBeCloseTo(oracle.dice[k] as number, 12);
    const report = verifyRun(run, skills);
    const c = check(report, "claims.evaluate");
    expect(c.verdict, c.message).toBe("pass");
    expect(failed(report)).toEqual([]);
  });
});
