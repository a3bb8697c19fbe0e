// `pipeline infer MODEL IMAGES... --out DIR`: the infer skill through the engine (run folder,
// evidence), its predictions copied to DIR byte for byte; usage errors exit 2, a failed stage 1.
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
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
import { ensureBuilt } from "./support/build.js";
import { cli, ROOT } from "./support/cli.js";
import { writeTinyPackage } from "./support/models.js";
import { itWithOracle, python } from "./support/oracle.js";

const itOracle = itWithOracle("nibabel");

const FIXTURES = join(ROOT, "fixtures", "heart_micro");
const ws = mkdtempSync(join(tmpdir(), "medpipe-infer-cli-"));
afterAll(() => rmSync(ws, { recursive: true, force: true }));

beforeAll(() => {
  ensureBuilt();
  // A seeded, untrained network: the numbers are checked in src/infer/*.test.ts; here, the plumbing.
  writeTinyPackage(join(ws, "pkg"), 3, true);
  mkdirSync(join(ws, "imgs"));
  for (const id of ["la_001", "la_002"])
    copyFileSync(join(FIXTURES, "imagesTr", `${id}.nii.gz`), join(ws, "imgs", `${id}.nii.gz`));
}, 120_000);

const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

interface Output {
  backend: string;
  settings: { tta: boolean };
  cases: Array<{ id: string; output: string; output_sha256: string; probabilities: string | null }>;
}

describe("pipeline infer", () => {
  itOracle("two image files -> DIR/<case>.nii.gz, the run's own files, overlaying their images", () => {
    const r = cli(
      ["infer", "pkg", "imgs/la_001.nii.gz", "imgs/la_002.nii.gz", "--out", "preds", "--threads", "1"],
      { cwd: ws },
    );
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines.slice(0, 2)).toEqual([
      join(ws, "preds", "la_001.nii.gz"),
      join(ws, "preds", "la_002.nii.gz"),
    ]);
    const runDir = lines[2]!;
    expect(runDir.startsWith(join(ws, "runs", "script-infer"))).toBe(true);
    expect(existsSync(join(runDir, "evidence.json"))).toBe(true);
    const out = JSON.parse(readFileSync(join(runDir, "stages", "infer", "output.json"), "utf8")) as Output;
    expect(out.backend).toBe("onnxruntime");
    expect(out.settings.tta).toBe(false);
    for (const [i, c] of out.cases.entries()) {
      expect(sha256(lines[i]!)).toBe(c.output_sha256);
      expect(sha256(lines[i]!)).toBe(sha256(join(runDir, "stages", "infer", c.output)));
    }
    const overlay = python<boolean[]>(
      `
import nibabel as nib, numpy as np
OUTPUT = []
for img, pred in INPUT:
    a, b = nib.load(img), nib.load(pred)
    OUTPUT.append(list(a.shape) == list(b.shape) and bool(np.array_equal(a.affine, b.affine)))
`,
      [
        [join(ws, "imgs", "la_001.nii.gz"), lines[0]],
        [join(ws, "imgs", "la_002.nii.gz"), lines[1]],
      ],
    );
    expect(overlay).toEqual([true, true]);
  });

  it("from any folder: a model and images outside it, the run in ./runs", () => {
    const here = join(ws, "elsewhere");
    mkdirSync(here);
    const r = cli(["infer", "../pkg", "../imgs/la_002.nii.gz", "--out", "../far", "--threads", "1"], {
      cwd: here,
    });
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toBe(join(ws, "far", "la_002.nii.gz"));
    expect(lines[1]?.startsWith(join(here, "runs", "script-infer"))).toBe(true);
    expect(existsSync(join(lines[1]!, "evidence.json"))).toBe(true);
  });

  it("--backend torch --tta --probabilities --json: a folder of images", () => {
    const r = cli(
      [
        "infer",
        "pkg",
        "imgs",
        "--out",
        "preds-torch",
        "--backend",
        "torch",
        "--tta",
        "--probabilities",
      ].concat(["--threads", "1", "--json"]),
      { cwd: ws, timeoutMs: 240_000 },
    );
    expect(r.code, r.stderr).toBe(0);
    const last = JSON.parse(r.stdout.trim().split("\n").pop()!) as {
      event: string;
      files: string[];
      failed: unknown[];
      run_dir: string;
    };
    expect(last.event).toBe("predictions");
    const dir = join(ws, "preds-torch");
    expect(last.files).toEqual([
      join(dir, "la_001.nii.gz"),
      join(dir, "probabilities", "la_001.nii.gz"),
      join(dir, "la_002.nii.gz"),
      join(dir, "probabilities", "la_002.nii.gz"),
    ]);
    expect(last.failed).toEqual([]);
    const out = JSON.parse(
      readFileSync(join(last.run_dir, "stages", "infer", "output.json"), "utf8"),
    ) as Output;
    expect(out.backend).toBe("torch");
    expect(out.settings.tta).toBe(true);
    expect(sha256(last.files[0]!)).toBe(out.cases[0]!.output_sha256);
  });

  it("usage errors exit 2 with one line; a failed stage exits 1", () => {
    const usage = [
      [["infer", "pkg", "imgs"], /^error: required option '--out <dir>' not specified$/m],
      [
        ["infer", "pkg", "imgs", "--out", "x", "--backend", "tf"],
        /^error: --backend tf: expected one of onnxruntime, torch$/,
      ],
      [
        ["infer", "pkg", "imgs", "--out", "x", "--threads", "0"],
        /^error: --threads 0: expected an integer >= 1$/,
      ],
      [
        ["infer", "pkg", "/etc/hostname", "--out", "x", "--workdir", "."],
        /^error: --images \/etc\/hostname: the path leaves the workspace /,
      ],
    ] as const;
    for (const [args, message] of usage) {
      const r = cli([...args], { cwd: ws });
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr.trim()).toMatch(message);
    }
    writeFileSync(join(ws, "afile"), "not a folder\n");
    mkdirSync(join(ws, "dup1"));
    mkdirSync(join(ws, "dup2"));
    copyFileSync(join(ws, "imgs", "la_001.nii.gz"), join(ws, "dup1", "la_001.nii.gz"));
    copyFileSync(join(ws, "imgs", "la_002.nii.gz"), join(ws, "dup2", "la_001.nii.gz"));
    const runCount = () => (existsSync(join(ws, "runs")) ? readdirSync(join(ws, "runs")).length : 0);
    const runsBefore = runCount();
    // Each is found before the run starts: no run folder, nothing on stdout.
    const upfront = [
      [
        ["infer", "pkg", "imgs", "--out", "afile"],
        `error: --out ${ws}/afile: is a file; expected a folder (new or existing)`,
      ],
      [
        ["infer", "pkg", "imgs", "--out", "afile/sub"],
        `error: --out ${ws}/afile/sub: ${ws}/afile is a file, so no folder can be made there`,
      ],
      [
        ["infer", "pkg", "dup1/la_001.nii.gz", "dup2", "--out", "x"],
        `error: images ${ws}/dup1/la_001.nii.gz and ${ws}/dup2/la_001.nii.gz are both case la_001: each would be la_001.nii.gz in --out; rename one or run them separately`,
      ],
      [
        ["infer", "nope", "imgs", "--out", "x"],
        `error: model ${ws}/nope: no such folder (relative paths resolve against the current folder, ${ws})`,
      ],
      [
        ["infer", "pkg", "imgs/la_404.nii.gz", "--out", "x"],
        `error: image ${ws}/imgs/la_404.nii.gz: no such file or folder (relative paths resolve against the current folder, ${ws})`,
      ],
    ] as const;
    for (const [args, line] of upfront) {
      const r = cli([...args], { cwd: ws });
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr).toBe(`${line}\n`);
      expect(r.stdout).toBe("");
    }
    expect(runCount()).toBe(runsBefore);
    mkdirSync(join(ws, "nomodel"));
    copyFileSync(join(ws, "pkg", "plan.json"), join(ws, "nomodel", "plan.json"));
    const r = cli(["infer", "nomodel", "imgs", "--out", "never"], { cwd: ws });
    expect(r.code).toBe(1);
    expect(existsSync(join(ws, "never"))).toBe(false);
  });

  it("one image predicted, one unreadable: the prediction is kept and listed, exit 1", () => {
    mkdirSync(join(ws, "bad"));
    writeFileSync(join(ws, "bad", "la_009.nii.gz"), "not a NIfTI file\n");
    const r = cli(
      ["infer", "pkg", "imgs/la_002.nii.gz", "bad/la_009.nii.gz", "--out", "part", "--threads", "1"],
      { cwd: ws },
    );
    expect(r.code, r.stderr).toBe(1);
    const lines = r.stdout.trim().split("\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toBe(join(ws, "part", "la_002.nii.gz"));
    expect(lines[1]!.startsWith(join(ws, "runs", "script-infer"))).toBe(true);
    expect(readdirSync(join(ws, "part"))).toEqual(["la_002.nii.gz"]);
    expect(r.stderr).toMatch(
      new RegExp(
        `^error: case la_009 not predicted: ${join(ws, "bad", "la_009.nii.gz")}: unreadable image`,
        "m",
      ),
    );
  });
});
