// The way from grid probabilities to a native-space NIfTI, checked against nibabel, numpy and
// scipy: an LPS image (not RAS) is preprocessed for real, a prediction on its grid goes back
// through nativeLabel + writePrediction, and nibabel must read it with the original affine,
// shape and labels; keep-largest matches scipy.ndimage; float16 files match numpy.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeWithOracle, oracleHas, python } from "../../tests/support/oracle.js";
import { readNpy } from "../imaging/index.js";
import { examplePlan } from "../preprocess/example-plan.js";
import { preprocessDataset, readProperties } from "../preprocess/index.js";
import { keepLargestPerClass, nativeLabel, scoreCase, writePrediction } from "./native.js";
import { readNpyFloat16 } from "./npy-f16.js";

const describeOracle = describeWithOracle("nibabel", "scipy");

let dir: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "medpipe-cvtrain-native-"));
  if (!oracleHas("nibabel", "scipy")) return;
  // An LPS-stored image with an offset origin; class 1 has a big and a small blob, class 2 one.
  python(
    `
import numpy as np, nibabel as nib
d = INPUT
aff = np.array([[-1.5, 0, 0, 30.0], [0, -1.5, 0, 20.0], [0, 0, 2.0, -10.0], [0, 0, 0, 1]])
lab = np.zeros((20, 18, 12), np.uint8)
lab[3:10, 4:12, 2:8] = 1
lab[15:17, 14:16, 9:11] = 1
lab[12:18, 2:6, 3:6] = 2
img = (lab * 1.0 + np.random.default_rng(0).normal(0, 0.1, lab.shape)).astype(np.float32)
nib.save(nib.Nifti1Image(img, aff), d + "/img.nii.gz")
nib.save(nib.Nifti1Image(lab, aff), d + "/lab.nii.gz")
`,
    dir,
  );
  const plan = examplePlan({
    cases: [{ id: "c1", image: [join(dir, "img.nii.gz")], label: join(dir, "lab.nii.gz") }],
    targetSpacing: [1.5, 1.5, 2.0],
    normalization: { scheme: "zscore", over: "all" },
    labels: { "0": "background", "1": "atrium", "2": "vessel" },
  });
  writeFileSync(join(dir, "plan.json"), JSON.stringify(plan));
  await preprocessDataset({ plan: join(dir, "plan.json"), outDir: join(dir, "data"), workers: 0 });
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** One-hot probabilities (class-last blocks) of the preprocessed label: a perfect prediction. */
async function perfectProbabilities(): Promise<Float32Array> {
  const grid = await readNpy(join(dir, "data", "c1", "label.npy"));
  const n = grid.data.length;
  const probs = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) probs[(grid.data[i] as number) * n + i] = 1;
  return probs;
}

describeOracle("native-space predictions", () => {
  it("come back on the original grid: nibabel reads the original affine, shape and labels", async () => {
    const props = await readProperties(join(dir, "data", "c1", "properties.json"));
    const label = nativeLabel(await perfectProbabilities(), props, 3, {
      keepLargestComponent: false,
      threshold: null,
    });
    const out = join(dir, "pred.nii.gz");
    await writePrediction(out, label);
    const r = python<{ affine: boolean; shape: number[]; equal: boolean; dtype: string }>(
      `
import numpy as np, nibabel as nib
p, o, l = (nib.load(INPUT + f) for f in ("/pred.nii.gz", "/img.nii.gz", "/lab.nii.gz"))
OUTPUT = {"affine": bool(np.array_equal(p.affine, o.affine)), "shape": list(p.shape),
          "equal": bool(np.array_equal(np.asanyarray(p.dataobj), np.asanyarray(l.dataobj))),
          "dtype": str(p.get_data_dtype())}
`,
      dir,
    );
    expect(r).toEqual({ affine: true, shape: [20, 18, 12], equal: true, dtype: "uint8" });
    // and the scores of a perfect prediction, with the label file's own spacing
    const score = await scoreCase("c1", label, join(dir, "lab.nii.gz"), {
      "0": "background",
      "1": "atrium",
      "2": "vessel",
    });
    expect(score.spacing).toEqual([1.5, 1.5, 2]);
    expect(score.labels.map((l) => [l.label, l.name, l.metrics.dice, l.metrics.hd95])).toEqual([
      [1, "atrium", 1, 0],
      [2, "vessel", 1, 0],
    ]);
  });

  it("keep the largest component per class as scipy.ndimage does (full connectivity)", async () => {
    const props = await readProperties(join(dir, "data", "c1", "properties.json"));
    const label = nativeLabel(await perfectProbabilities(), props, 3, {
      keepLargestComponent: true,
      threshold: null,
    });
    const expected = python<number[]>(
      `
import numpy as np, nibabel as nib
from scipy import ndimage
lab = np.asanyarray(nib.load(INPUT + "/lab.nii.gz").dataobj)
out = np.zeros_like(lab)
for k in (1, 2):
    comp, n = ndimage.label(lab == k, structure=np.ones((3, 3, 3)))
    if n:
        sizes = ndimage.sum(lab == k, comp, range(1, n + 1))
        out[comp == 1 + int(np.argmax(sizes))] = k
OUTPUT = out.ravel(order="F")
`,
      dir,
    );
    expect(Array.from(label.data)).toEqual(expected);
    expect(label.data.filter((v) => v === 1).length).toBe(7 * 8 * 6); // the small blob is gone
  });

  it("keepLargestPerClass leaves an absent class and single components alone", () => {
    const data = Uint8Array.from([1, 1, 0, 2, 0, 1]);
    keepLargestPerClass(data, [6, 1], 4);
    expect(Array.from(data)).toEqual([1, 1, 0, 2, 0, 0]);
  });

  it("thresholds binary tasks only", async () => {
    const props = await readProperties(join(dir, "data", "c1", "properties.json"));
    expect(() =>
      nativeLabel(new Float32Array(3 * 20 * 18 * 12), props, 3, {
        keepLargestComponent: false,
        threshold: 0.3,
      }),
    ).toThrow(/binary tasks only/);
  });
});

describe("float16 .npy", () => {
  it("reads what numpy writes, exactly, including subnormals and non-finite values", async () => {
    const path = join(dir, "half.npy");
    const expected = python<(number | string)[]>(
      `
import numpy as np

v = np.array([[0.0, -0.0, 1.0, 0.333], [65504.0, 6e-8, np.inf, -2.5], [1e-5, 0.1, 0.7, -np.inf]], np.float16)
a = np.asfortranarray(v.reshape(3, 2, 2))
np.save(INPUT, a)
OUTPUT = [float(x) for x in a.ravel(order="F")]
`,
      path,
    );
    const got = await readNpyFloat16(path);
    expect(got.shape).toEqual([3, 2, 2]);
    expect(got.fortranOrder).toBe(true);
    expect(Array.from(got.data)).toEqual(expected);
  });
});
