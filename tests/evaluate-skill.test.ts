// The evaluate skill on hand-made 2D slices in the npy2d layout (numpy writes every file): its
// Dice against values worked out by hand, its metrics against the `pipeline evaluate` CLI on the
// same files, and its PNG overlays decoded by Pillow against colours computed in numpy from the
// palette SKILL.md documents.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { pairReferences } from "../src/evaluate/references.js";
import { ensureBuilt } from "./support/build.js";
import { cli } from "./support/cli.js";
import { itWithOracle, python } from "./support/oracle.js";

const itWithPil = itWithOracle("PIL");
const itWithNibabel = itWithOracle("nibabel");

const ws = mkdtempSync(join(tmpdir(), "medpipe-evaluate-skill-"));
afterAll(() => rmSync(ws, { recursive: true, force: true }));

// Slices as numpy shows them: rows top to bottom.
const REF_1 = [
  [0, 1, 1, 0],
  [0, 1, 1, 2],
  [3, 3, 2, 2],
  [3, 3, 2, 2],
];
const PRED_1 = [
  [0, 1, 0, 0],
  [0, 1, 1, 2],
  [3, 2, 2, 2],
  [3, 3, 2, 0],
];
// s2: no white matter anywhere, prediction exact.
const REF_2 = [
  [0, 1, 1, 0],
  [0, 1, 1, 2],
  [0, 0, 2, 2],
  [0, 0, 2, 2],
];

beforeAll(() => {
  ensureBuilt("evaluate/index.js");
  python(
    `
import os, numpy as np
d = INPUT["dir"]
for sub in ("refs", "preds"):
    os.makedirs(os.path.join(d, sub), exist_ok=True)
for case, ref, pred in (("s1", INPUT["ref1"], INPUT["pred1"]), ("s2", INPUT["ref2"], INPUT["ref2"])):
    np.save(os.path.join(d, "refs", case + "_T1w.npy"), np.arange(16, dtype=np.float32).reshape(4, 4) * 10)
    np.save(os.path.join(d, "refs", case + "_T1w_tissue_segmentation.npy"), np.array(ref, np.uint8))
    np.save(os.path.join(d, "preds", case + "_T1w.npy"), np.array(pred, np.uint8))
`,
    { dir: ws, ref1: REF_1, pred1: PRED_1, ref2: REF_2 },
  );
}, 120_000);

interface Output {
  status: string;
  num_cases: number;
  labels: string[];
  mean_foreground_dice: number;
  per_class: Array<{ label: string; dice: number | string; n: number; nan: number }>;
  per_case: Array<{
    case: string;
    dice: Record<string, number | string>;
    mean_dice: number;
    overlay: string;
  }>;
  overlays: number;
}

interface EvalJson {
  cases: Array<{ case: string; label: number; metrics: Record<string, number | string> }>;
  summary: Record<string, { metrics: Record<string, { mean: number | string }> }>;
}

function runSkill(args: string[]) {
  return cli(["run-script", "evaluate", ...args], { cwd: ws, timeoutMs: 60_000 });
}

describe("evaluate skill", () => {
  itWithPil("scores npy2d slices: hand-worked Dice, the CLI's numbers, and the overlays", () => {
    const r = runSkill(["--predictions", "preds", "--references", "refs", "--labels", "[1,2,3]"]);
    expect(r.code, r.stderr).toBe(0);
    const stage = join(r.stdout.trim().split("\n").pop() as string, "stages", "evaluate");
    const out = JSON.parse(readFileSync(join(stage, "output.json"), "utf8")) as Output;
    expect(out.status).toBe("succeeded");
    expect(out.num_cases).toBe(2);
    expect(out.labels).toEqual(["1", "2", "3"]);
    // s1: label 1 TP 3 FP 0 FN 1 -> 6/7; label 2 TP 4 FP 1 FN 1 -> 8/10; label 3 TP 3 FN 1 -> 6/7.
    // s2: labels 1 and 2 exact -> 1; label 3 in neither mask -> NaN, left out of the means.
    const [s1, s2] = out.per_case;
    expect(s1?.case).toBe("s1");
    expect(s1?.dice["1"]).toBeCloseTo(6 / 7, 12);
    expect(s1?.dice["2"]).toBeCloseTo(0.8, 12);
    expect(s1?.dice["3"]).toBeCloseTo(6 / 7, 12);
    expect(s1?.mean_dice).toBeCloseTo((6 / 7 + 0.8 + 6 / 7) / 3, 12);
    expect(s2?.dice).toEqual({ "1": 1, "2": 1, "3": "NaN" });
    expect(s2?.mean_dice).toBe(1);
    const perClass = Object.fromEntries(out.per_class.map((c) => [c.label, c]));
    expect(perClass["1"]?.dice).toBeCloseTo(13 / 14, 12);
    expect(perClass["2"]?.dice).toBeCloseTo(0.9, 12);
    expect(perClass["3"]).toMatchObject({ n: 1, nan: 1 });
    expect(perClass["3"]?.dice).toBeCloseTo(6 / 7, 12);
    expect(out.mean_foreground_dice).toBeCloseTo((13 / 14 + 0.9 + 6 / 7) / 3, 12);

    // The CLI on each pair of files gives the same numbers, every metric, as metrics.json.
    const metrics = JSON.parse(readFileSync(join(stage, "metrics.json"), "utf8")) as EvalJson;
    for (const id of ["s1", "s2"]) {
      const c = cli(
        [
          "evaluate",
          "--pred",
          `preds/${id}_T1w.npy`,
          "--gt",
          `refs/${id}_T1w_tissue_segmentation.npy`,
          "--labels",
          "1,2,3",
          "--json",
        ],
        { cwd: ws },
      );
      expect(c.code, c.stderr).toBe(0);
      const viaCli = JSON.parse(c.stdout) as EvalJson;
      const mine = metrics.cases.filter((x) => x.case === id);
      expect(mine.map((x) => x.label)).toEqual([1, 2, 3]);
      expect(mine.map((x) => x.metrics)).toEqual(viaCli.cases.map((x) => x.metrics));
      for (const x of mine)
        expect(out.per_case.find((p) => p.case === id)?.dice[String(x.label)]).toEqual(x.metrics.dice);
    }

    // The CLI on the two folders pairs them the same way and prints the same document.
    const folders = cli(["evaluate", "--pred", "preds", "--gt", "refs", "--labels", "1,2,3", "--json"], {
      cwd: ws,
    });
    expect(folders.code, folders.stderr).toBe(0);
    const viaFolders = JSON.parse(folders.stdout) as EvalJson;
    expect(viaFolders.cases.map((x) => [x.case, x.label, x.metrics])).toEqual(
      metrics.cases.map((x) => [x.case, x.label, x.metrics]),
    );
    expect(viaFolders.summary).toEqual(metrics.summary);

    // Overlays: image | reference | prediction, 4 white pixels apart, decoded by Pillow.
    expect(out.overlays).toBe(2);
    expect(s1?.overlay).toBe("overlays/s1.png");
    const check = python<{ size: number[]; mode: string; equal: boolean }>(
      `
import numpy as np
from PIL import Image
palette = np.array([[0, 0, 0], [230, 159, 0], [86, 180, 233], [0, 158, 115]], np.uint8)
img = np.arange(16, dtype=np.float64).reshape(4, 4) * 10
grey = np.round((img - img.min()) / (img.max() - img.min()) * 255).astype(np.uint8)
gap = np.full((4, 4, 3), 255, np.uint8)
want = np.concatenate([np.stack([grey] * 3, -1), gap, palette[np.array(INPUT["ref"])], gap,
                       palette[np.array(INPUT["pred"])]], axis=1)
got = Image.open(INPUT["png"])
OUTPUT = {"size": list(got.size), "mode": got.mode, "equal": bool(np.array_equal(np.asarray(got), want))}
`,
      { png: join(stage, "overlays", "s1.png"), ref: REF_1, pred: PRED_1 },
    );
    expect(check).toEqual({ size: [20, 4], mode: "RGB", equal: true });
  });

  it("pairs an npy2d folder by case: infer's X_T1w.npy or cv-train's X.npy, every problem at once", () => {
    const dir = join(ws, "pairing");
    python(
      `import os, numpy as np
d = INPUT
for sub, names in (("refs", ["a_T1w.npy", "a_T1w_tissue_segmentation.npy", "b_T1w_tissue_segmentation.npy",
                             "c_T1w_tissue_segmentation.npy"]),
                   ("preds", ["a.npy", "b_T1w.npy", "b.npy", "z_T1w.npy"])):
    os.makedirs(os.path.join(d, sub))
    for n in names:
        np.save(os.path.join(d, sub, n), np.zeros((2, 2), np.uint8))`,
      dir,
    );
    const refs = join(dir, "refs");
    const preds = join(dir, "preds");
    expect(() => pairReferences(preds, refs)).toThrow(
      [
        `case 'b': 2 predictions in --pred ${preds}: ${join(preds, "b.npy")}, ${join(preds, "b_T1w.npy")}`,
        `error: case 'c': in --gt (${join(refs, "c_T1w_tissue_segmentation.npy")}) but not in --pred ${preds}`,
        `error: case 'z': in --pred (${join(preds, "z_T1w.npy")}) but not in --gt ${refs}`,
      ].join("\n"),
    );
    python(
      `import os\nfor n in ("b.npy", "z_T1w.npy"): os.remove(os.path.join(INPUT, "preds", n))\nos.remove(os.path.join(INPUT, "refs", "c_T1w_tissue_segmentation.npy"))`,
      dir,
    );
    expect(pairReferences(preds, refs)).toEqual([
      {
        case: "a",
        pred: join(preds, "a.npy"),
        gt: join(refs, "a_T1w_tissue_segmentation.npy"),
        image: join(refs, "a_T1w.npy"),
      },
      {
        case: "b",
        pred: join(preds, "b_T1w.npy"),
        gt: join(refs, "b_T1w_tissue_segmentation.npy"),
        image: null,
      },
    ]);
  });

  itWithNibabel("scores 3D NIfTI folders by case name as the CLI does", () => {
    // one case: reference 8 voxels of label 1, prediction 4 of them plus 4 others -> Dice 4/8.
    python(
      `import os, numpy as np, nibabel as nib
for sub in ("refs3d", "preds3d"):
    os.makedirs(os.path.join(INPUT, sub))
ref, pred = np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8)
ref[:2, :2, :2] = 1
pred[:2, :2, :1] = 1
pred[2:, 2:, :1] = 1
nib.save(nib.Nifti1Image(ref, np.eye(4)), os.path.join(INPUT, "refs3d", "k1.nii.gz"))
nib.save(nib.Nifti1Image(pred, np.eye(4)), os.path.join(INPUT, "preds3d", "k1.nii.gz"))`,
      ws,
    );
    const r = runSkill(["--predictions", "preds3d", "--references", "refs3d", "--surface", "false"]);
    expect(r.code, r.stderr).toBe(0);
    const stage = join(r.stdout.trim().split("\n").pop() as string, "stages", "evaluate");
    const out = JSON.parse(readFileSync(join(stage, "output.json"), "utf8")) as Output;
    expect(out.labels).toEqual(["1"]);
    expect(out.per_case).toEqual([
      expect.objectContaining({ case: "k1", dice: { "1": 0.5 }, mean_dice: 0.5, overlay: "overlays/k1.png" }),
    ]);
    expect(out.overlays).toBe(1);
    expect(out.mean_foreground_dice).toBe(0.5);
  });

  itWithOracle("nibabel", "PIL")(
    "draws a 3D case by its axial slice with the most reference foreground, in radiological orientation",
    () => {
      // Stored in LPS with anisotropic voxels; the busiest slice in RAS is not the middle one.
      python(
        `import os, numpy as np, nibabel as nib
d = INPUT
for sub in ("refs", "preds"):
    os.makedirs(os.path.join(d, sub))
rng = np.random.default_rng(4)
ref = np.zeros((7, 5, 6), np.uint8)
ref[1:5, 1:4, 4] = 1
ref[2:4, 2:3, 1] = 2
ref[3, 0, 2] = 1
pred = ref.copy()
pred[rng.random(ref.shape) < 0.2] = 3
aff = np.diag([-0.8, -1.1, 2.5, 1.0]); aff[:3, 3] = [6.0, 9.0, -4.0]
nib.save(nib.Nifti1Image(ref, aff), os.path.join(d, "refs", "q1.nii.gz"))
nib.save(nib.Nifti1Image(pred, aff), os.path.join(d, "preds", "q1.nii.gz"))
assert nib.aff2axcodes(aff) == ("L", "P", "S")`,
        join(ws, "axial"),
      );
      const r = runSkill([
        "--predictions",
        "axial/preds",
        "--references",
        "axial/refs",
        "--surface",
        "false",
      ]);
      expect(r.code, r.stderr).toBe(0);
      const stage = join(r.stdout.trim().split("\n").pop() as string, "stages", "evaluate");
      const got = python<{ size: number[]; equal: boolean; z: number }>(
        `import os, numpy as np, nibabel as nib
from PIL import Image
d = INPUT["dir"]
r = np.asarray(nib.as_closest_canonical(nib.load(os.path.join(d, "refs", "q1.nii.gz"))).dataobj)
p = np.asarray(nib.as_closest_canonical(nib.load(os.path.join(d, "preds", "q1.nii.gz"))).dataobj)
z = int(np.argmax((r != 0).sum(axis=(0, 1))))
view = lambda a: a[::-1, ::-1, z].T
palette = np.array([[0, 0, 0], [230, 159, 0], [86, 180, 233], [0, 158, 115]], np.uint8)
gap = np.full((r.shape[1], 4, 3), 255, np.uint8)
want = np.concatenate([palette[view(r)], gap, palette[view(p)]], axis=1)
img = Image.open(INPUT["png"])
OUTPUT = {"size": list(img.size), "equal": bool(np.array_equal(np.asarray(img.convert("RGB")), want)), "z": z}
`,
        { dir: join(ws, "axial"), png: join(stage, "overlays", "q1.png") },
      );
      expect(got.z).not.toBe(3); // not the middle slice
      expect(got).toEqual({ size: [7 + 4 + 7, 5], equal: true, z: got.z });
    },
  );

  it("fails in one line naming a reference without a prediction", () => {
    python(
      `import os, shutil\nshutil.copytree(os.path.join(INPUT, "preds"), os.path.join(INPUT, "some"))\nos.remove(os.path.join(INPUT, "some", "s2_T1w.npy"))`,
      ws,
    );
    const r = runSkill(["--predictions", "some", "--references", "refs"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `case 's2': in --gt (${join(ws, "refs", "s2_T1w_tissue_segmentation.npy")}) but not in --pred`,
    );
  });
});
