import { createHash } from "node:crypto";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt } from "../../tests/support/build.js";
import { cli, ROOT } from "../../tests/support/cli.js";
import { TINY_UNET } from "../../tests/support/models.js";
import { itWithOracle, python } from "../../tests/support/oracle.js";
import { ajv, schemaValidator } from "../manifest/schema.js";
import { examplePlan } from "../preprocess/example-plan.js";

const itOracle = itWithOracle("nibabel");

const FIXTURES = join(ROOT, "fixtures", "heart_micro");
const ws = mkdtempSync(join(tmpdir(), "medpipe-infer-skill-"));
afterAll(() => rmSync(ws, { recursive: true, force: true }));

const NETWORK = TINY_UNET;
const CASES = ["la_001", "la_002", "la_003"]; // RAS, LPS, LAS

beforeAll(() => {
  ensureBuilt("infer/index.js");
  // A seeded, untrained network is enough here: the numbers are checked in infer.test.ts.
  python(
    `
import os, sys
sys.path.insert(0, INPUT["py"])
import torch
torch.set_num_threads(1)
from medpipe.nets import build_network
from medpipe.export_onnx import export_onnx
os.makedirs(INPUT["pkg"], exist_ok=True)
export_onnx(build_network(INPUT["network"], seed=3).eval(), os.path.join(INPUT["pkg"], "model.onnx"), 1, 3)
`,
    { py: join(ROOT, "src", "py"), pkg: join(ws, "pkg"), network: NETWORK },
  );
  const plan = {
    ...examplePlan({
      cases: [{ id: "la_004", image: ["imagesTr/la_004.nii.gz"], label: "labelsTr/la_004.nii.gz" }],
      targetSpacing: [1.5, 1.5, 1.6],
      normalization: { scheme: "zscore", over: "all", mean: 160, std: 35 },
    }),
    patch_size: [32, 32, 32],
    network: NETWORK,
    inference: { overlap: 0.5, mode: "hann", tta: false, keep_largest_component: true },
  };
  writeFileSync(join(ws, "pkg", "plan.json"), JSON.stringify(plan, null, 2));
  writeFileSync(join(ws, "pkg", "model_card.json"), "{}\n");
  mkdirSync(join(ws, "images"));
  for (const id of CASES)
    copyFileSync(join(FIXTURES, "imagesTr", `${id}.nii.gz`), join(ws, "images", `${id}.nii.gz`));
}, 120_000);

function runScript(args: string[]) {
  const r = cli(["run-script", "--workdir", ws, "infer", ...args], { cwd: ws });
  const runDir = r.stdout.trim().split("\n").pop() ?? "";
  return { ...r, runDir, stage: join(runDir, "stages", "infer") };
}

/** The one stderr line of a failed infer stage. */
function failure(runDir: string): string {
  return readFileSync(join(runDir, "failed", "infer", "attempt-1", "logs", "stderr.log"), "utf8").trim();
}

interface InferOutput {
  model: { digest: string; files: Record<string, string> };
  cases: Array<{
    id: string;
    output: string;
    probabilities: string | null;
    shape: number[];
    orientation: string[];
    label_voxels: Record<string, number>;
  }>;
  totals: { cases: number; peak_rss_mb: number };
}

const sha256 = (data: Buffer | string) => createHash("sha256").update(data).digest("hex");

describe("infer skill (CLI)", () => {
  itOracle("predicts every image in its native space, with schema-valid evidence", () => {
    const r = runScript([
      "--model",
      "pkg",
      "--images",
      "images",
      "--save_probabilities",
      "true",
      "--threads",
      "1",
    ]);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(readFileSync(join(r.stage, "output.json"), "utf8")) as InferOutput;
    const envelope = schemaValidator("https://medpipe.dev/schemas/evidence/output.schema.json");
    expect(envelope(out), JSON.stringify(envelope.errors)).toBe(true);
    const payload = ajv().compile(
      JSON.parse(readFileSync(join(ROOT, "schemas", "skills", "infer.output.schema.json"), "utf8")) as object,
    );
    expect(payload(out), JSON.stringify(payload.errors)).toBe(true);

    expect(out.cases.map((c) => c.id)).toEqual(CASES);
    expect(out.cases.map((c) => c.orientation.join(""))).toEqual(["RAS", "LPS", "LAS"]);
    expect(out.totals.cases).toBe(3);
    expect(out.totals.peak_rss_mb).toBeGreaterThan(0);
    const onnx = readFileSync(join(ws, "pkg", "model.onnx"));
    const plan = readFileSync(join(ws, "pkg", "plan.json"));
    expect(out.model.files).toEqual({ "model.onnx": sha256(onnx), "plan.json": sha256(plan) });
    expect(out.model.digest).toBe(sha256(`${sha256(onnx)}  model.onnx\n${sha256(plan)}  plan.json\n`));

    const events = readFileSync(join(r.stage, "logs", "stdout.log"), "utf8")
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { event: string; id: string; done: number; of: number });
    expect(events.filter((e) => e.event === "case").map((e) => [e.id, e.done, e.of])).toEqual([
      ["la_001", 1, 3],
      ["la_002", 2, 3],
      ["la_003", 3, 3],
    ]);

    // nibabel: every prediction (and probability map) overlays its image exactly.
    const checks = python<
      Array<{ shape: boolean; affine: boolean; probs: boolean; dtype: string; counts: number[] }>
    >(
      `
import nibabel as nib, numpy as np
OUTPUT = []
for c in INPUT["cases"]:
    img, pred, prob = nib.load(c["image"]), nib.load(c["pred"]), nib.load(c["prob"])
    data = np.asanyarray(pred.dataobj)
    OUTPUT.append({
        "shape": list(pred.shape) == list(img.shape[:3]) and list(prob.shape) == list(img.shape[:3]) + [2],
        "affine": bool(np.array_equal(pred.affine, img.affine)),
        "probs": bool(np.array_equal(prob.affine, img.affine)),
        "dtype": str(data.dtype),
        "counts": [int((data == 0).sum()), int((data == 1).sum())],
    })
`,
      {
        cases: out.cases.map((c) => ({
          image: join(ws, "images", `${c.id}.nii.gz`),
          pred: join(r.stage, c.output),
          prob: join(r.stage, c.probabilities ?? ""),
        })),
      },
    );
    checks.forEach((c, i) => {
      expect(c).toMatchObject({ shape: true, affine: true, probs: true, dtype: "uint8" });
      const counts = out.cases[i]!.label_voxels;
      expect(c.counts).toEqual([counts["0"], counts["1"]]);
    });
  });

  it("fails the stage with one line and exit 1: no model.onnx, every case bad, a plan that does not match the model", () => {
    mkdirSync(join(ws, "nomodel"));
    copyFileSync(join(ws, "pkg", "plan.json"), join(ws, "nomodel", "plan.json"));
    let r = runScript(["--model", "nomodel", "--images", "images"]);
    expect(r.code).toBe(1);
    expect(failure(r.runDir)).toBe(
      `error: ${join(ws, "nomodel", "model.onnx")}: missing: the model package has no model.onnx`,
    );

    // nnU-Net layout with two channels for a one-channel model
    mkdirSync(join(ws, "two"));
    for (const ch of ["0000", "0001"])
      copyFileSync(join(FIXTURES, "imagesTr", "la_001.nii.gz"), join(ws, "two", `la_001_${ch}.nii.gz`));
    r = runScript(["--model", "pkg", "--images", "two"]);
    expect(r.code).toBe(1);
    expect(failure(r.runDir)).toBe(
      `error: ${join(ws, "two", "la_001_0000.nii.gz")}: 2 image channel(s) for case la_001, the model takes 1 (plan.json dataset.channels)`,
    );

    // every case bad: the stage fails with one line
    mkdirSync(join(ws, "allbad"));
    writeFileSync(join(ws, "allbad", "la_009.nii.gz"), "not gzip, not NIfTI");
    r = runScript(["--model", "pkg", "--images", "allbad"]);
    expect(r.code).toBe(1);
    const line = failure(r.runDir);
    expect(line.split("\n")).toHaveLength(1);
    expect(line.startsWith(`error: ${join(ws, "allbad", "la_009.nii.gz")}: unreadable image`)).toBe(true);

    // a model whose output classes disagree with its plan: the package is bad, nothing runs
    mkdirSync(join(ws, "threeclass"));
    copyFileSync(join(ws, "pkg", "model.onnx"), join(ws, "threeclass", "model.onnx"));
    const plan = JSON.parse(readFileSync(join(ws, "pkg", "plan.json"), "utf8")) as {
      dataset: { labels: Record<string, string> };
    };
    plan.dataset.labels = { ...plan.dataset.labels, "2": "other" };
    writeFileSync(join(ws, "threeclass", "plan.json"), JSON.stringify(plan, null, 2));
    r = runScript(["--model", "threeclass", "--images", "images"]);
    expect(r.code).toBe(1);
    expect(failure(r.runDir)).toBe(
      `error: ${join(ws, "threeclass", "model.onnx")}: the model outputs 2 classes, its plan.json declares 3 (labels 0, 1, 2)`,
    );

    // a package made before normalization stopped reading labels: its plan names a rule no image
    // at inference can follow, so it is refused, naming the values a plan may hold
    mkdirSync(join(ws, "labelnorm"));
    copyFileSync(join(ws, "pkg", "model.onnx"), join(ws, "labelnorm", "model.onnx"));
    const old = JSON.parse(readFileSync(join(ws, "pkg", "plan.json"), "utf8")) as Record<string, unknown>;
    old.normalization = { scheme: "zscore", over: "foreground" };
    writeFileSync(join(ws, "labelnorm", "plan.json"), JSON.stringify(old, null, 2));
    r = runScript(["--model", "labelnorm", "--images", "images"]);
    expect(r.code).toBe(1);
    expect(failure(r.runDir)).toBe(
      `error: ${join(ws, "labelnorm", "plan.json")}: normalization.over must be equal to one of the allowed values: "all", "nonzero", "above_mean" (schemas/plan.schema.json)`,
    );
  });

  itOracle(
    "fails only the bad cases: one good image, one unreadable, one with two channels -> 1 prediction, 2 failures, exit 0",
    () => {
      const dir = join(ws, "mixed");
      mkdirSync(dir);
      copyFileSync(join(FIXTURES, "imagesTr", "la_001.nii.gz"), join(dir, "la_001.nii.gz"));
      writeFileSync(join(dir, "la_009.nii.gz"), "not gzip, not NIfTI");
      python(
        `
import nibabel as nib, numpy as np
img = nib.load(INPUT["src"])
data = np.asanyarray(img.dataobj)
nib.save(nib.Nifti1Image(np.stack([data, data], axis=-1), img.affine), INPUT["dst"])
`,
        { src: join(FIXTURES, "imagesTr", "la_002.nii.gz"), dst: join(dir, "la_002.nii.gz") },
      );
      const r = runScript(["--model", "pkg", "--images", "mixed", "--threads", "1"]);
      expect(r.code, r.stderr).toBe(0);
      const out = JSON.parse(readFileSync(join(r.stage, "output.json"), "utf8")) as InferOutput & {
        failed: Array<{ case: string; file: string; reason: string }>;
        totals: { requested: number; failed: number };
      };
      const payload = ajv().compile(
        JSON.parse(
          readFileSync(join(ROOT, "schemas", "skills", "infer.output.schema.json"), "utf8"),
        ) as object,
      );
      expect(payload(out), JSON.stringify(payload.errors)).toBe(true);
      expect(out.cases.map((c) => c.id)).toEqual(["la_001"]);
      expect(readdirSync(join(r.stage, "predictions"))).toEqual(["la_001.nii.gz"]);
      expect(out.failed.map((f) => [f.case, f.file])).toEqual([
        ["la_002", join(dir, "la_002.nii.gz")],
        ["la_009", join(dir, "la_009.nii.gz")],
      ]);
      expect(out.failed[0]!.reason).toBe(
        "2 image channel(s) for case la_002, the model takes 1 (plan.json dataset.channels)",
      );
      expect(out.failed[1]!.reason).toMatch(/^unreadable image \(/);
      for (const f of out.failed) expect(f.reason).not.toContain("\n");
      expect(out.totals).toMatchObject({ requested: 3, cases: 1, failed: 2 });
      const events = readFileSync(join(r.stage, "logs", "stdout.log"), "utf8")
        .split("\n")
        .filter((l) => l.startsWith("{"))
        .map((l) => JSON.parse(l) as { event: string; id: string });
      expect(events.map((e) => [e.event, e.id])).toEqual([
        ["case_failed", "la_002"],
        ["case_failed", "la_009"],
        ["case", "la_001"],
      ]);

      // `cases`: only the listed ids, in that order; a listed id without an image is a failure
      const only = runScript([
        "--model",
        "pkg",
        "--images",
        "images",
        "--cases",
        JSON.stringify(["la_003", "la_001", "la_777"]),
        "--threads",
        "1",
      ]);
      expect(only.code, only.stderr).toBe(0);
      const sel = JSON.parse(readFileSync(join(only.stage, "output.json"), "utf8")) as InferOutput & {
        failed: Array<{ case: string; file: string; reason: string }>;
      };
      expect(sel.cases.map((c) => c.id)).toEqual(["la_003", "la_001"]);
      expect(sel.failed).toEqual([
        { case: "la_777", file: join(ws, "images"), reason: "no image for case la_777 here" },
      ]);
    },
  );
});
