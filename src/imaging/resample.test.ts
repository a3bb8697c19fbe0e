// Resampling against scipy 1.10: ndimage.zoom(order=1, mode="nearest", grid_mode=True) is the
// documented reference grid; labels against one-hot zoom + argmax; the nearest axis against
// numpy indexing at floor((o + 0.5) n / m). One Python call for all cases.
import { expect, it } from "vitest";
import { describeWithOracle, python } from "../../tests/support/oracle.js";
import {
  anisotropicAxis,
  resampledAffine,
  resampledShape,
  resampleImage,
  resampleLabels,
} from "./resample.js";

const describeOracle = describeWithOracle("scipy");

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

interface Case {
  shape: number[];
  spacing: number[];
  target: number[];
  image: number[];
  labels: number[];
}

const CASES: Case[] = [
  { shape: [9, 7, 5], spacing: [1.3, 0.9, 2.0], target: [1, 1, 1] },
  { shape: [8, 8, 6], spacing: [0.8, 0.8, 1.0], target: [1.5, 1.2, 0.7] },
  { shape: [10, 9, 4], spacing: [0.7, 0.7, 3.5], target: [1, 1, 1] },
  { shape: [6, 11, 7], spacing: [1, 1, 1], target: [1, 1, 1] },
  { shape: [12, 5], spacing: [0.5, 1.25], target: [1, 1] },
].map((c, k) => {
  const rnd = lcg(k + 1);
  const n = c.shape.reduce((a, b) => a * b, 1);
  return {
    ...c,
    image: Array.from({ length: n }, () => Math.round(rnd() * 2000 - 500) / 4),
    labels: Array.from({ length: n }, () => Math.floor(rnd() ** 2 * 4)),
  };
});

describeOracle("resampling against scipy", () => {
  it("shape rule, trilinear images, one-hot labels, nearest anisotropic axis, affine", () => {
    const plan = CASES.map((c) => ({
      outShape: resampledShape(c.shape, c.spacing, c.target),
      nearestAxis: anisotropicAxis(c.spacing, c.target),
    }));
    expect(plan.map((p) => p.nearestAxis)).toEqual([null, null, 2, null, null]);
    const ref = python<Array<{ outShape: number[]; image: number[]; labels: number[]; affine: number[][] }>>(
      `
import numpy as np

from scipy import ndimage
def resample(x, out, near):
    f = [o / i for o, i in zip(out, x.shape)]
    lin = [1.0 if a == near else f[a] for a in range(x.ndim)]
    y = ndimage.zoom(x, lin, order=1, mode="nearest", grid_mode=True)
    if near is not None:
        n, m = x.shape[near], out[near]
        idx = np.minimum(n - 1, np.floor((np.arange(m) + 0.5) * n / m).astype(int))
        y = np.take(y, idx, axis=near)
    assert list(y.shape) == list(out), (y.shape, out)
    return y
OUTPUT = []
for c, p in zip(INPUT["cases"], INPUT["plan"]):
    shape = c["shape"]
    out = [int(v) for v in np.round(np.array(shape) * np.array(c["spacing"]) / np.array(c["target"]))]
    img = np.array(c["image"], dtype=np.float64).reshape(shape, order="F")
    lab = np.array(c["labels"]).reshape(shape, order="F")
    near = p["nearestAxis"]
    values = np.unique(lab)
    onehot = np.stack([resample((lab == v).astype(np.float64), out, near) for v in values])
    # Affine of the cell convention: output voxel o sits at input coordinate (o + 0.5) n / m - 0.5.
    aff = np.diag([1.1, -0.9, 2.0, 1.0]); aff[:3, 3] = [5, -7, 11]
    n3 = np.array((shape + [1])[:3], float); m3 = np.array((out + [1])[:3], float)
    step = np.eye(4); step[:3, :3] = np.diag(n3 / m3); step[:3, 3] = 0.5 * n3 / m3 - 0.5
    OUTPUT.append({"outShape": out, "image": resample(img, out, near).ravel(order="F"),
                   "labels": values[np.argmax(onehot, axis=0)].ravel(order="F"), "affine": aff @ step})
`,
      { cases: CASES, plan },
    );
    CASES.forEach((c, k) => {
      const r = ref[k]!;
      const { outShape, nearestAxis } = plan[k]!;
      expect(outShape, `case ${k} shape`).toEqual(r.outShape);
      const vol = { data: Float64Array.from(c.image), shape: c.shape, spacing: c.spacing };
      const img = resampleImage(vol, outShape, { nearestAxis });
      expect(img.data.length).toBe(r.image.length);
      r.image.forEach((e, i) => {
        if (!(Math.abs(img.data[i]! - e) <= 1e-4 * Math.max(1, Math.abs(e))))
          expect.fail(`case ${k} image[${i}]: ${img.data[i]} vs scipy ${e}`);
      });
      const lab = resampleLabels(
        { data: Uint8Array.from(c.labels), shape: c.shape, spacing: c.spacing },
        outShape,
        {
          nearestAxis,
        },
      );
      expect(Array.from(lab.data), `case ${k} labels`).toEqual(r.labels);
      const affine = [1.1, 0, 0, 5, 0, -0.9, 0, -7, 0, 0, 2, 11, 0, 0, 0, 1];
      const ours = resampledAffine(affine, c.shape, outShape);
      r.affine.flat().forEach((e, i) => {
        expect(Math.abs(ours[i]! - e), `case ${k} affine[${i}]`).toBeLessThan(1e-9);
      });
    });
  });
});
