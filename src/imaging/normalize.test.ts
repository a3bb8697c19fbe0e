// Normalization against numpy 1.24: z-score over all / non-zero / above-mean voxels (np.mean, np.std
// with ddof 0), nnU-Net's CT scheme (np.clip then dataset z-score), and percentiles against
// np.percentile's default "linear" method. One Python call computes every reference.
import { describe, expect, it } from "vitest";
import { python } from "../../tests/support/oracle.js";
import {
  ctNormalize,
  intensityStatistics,
  percentileSorted,
  percentiles,
  sampleForeground,
  zscore,
} from "./normalize.js";

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function expectClose(actual: ArrayLike<number>, expected: number[], rel: number, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (!(Math.abs(a - e) <= rel * Math.max(1, Math.abs(e))))
      expect.fail(`${what}[${i}]: got ${a}, numpy ${e}`);
  }
}

// A CT-like image (air, fat, soft tissue, a few bright outliers) with a zero border, and a mask.
const rnd = lcg(7);
const N = 3000;
const image = Array.from({ length: N }, (_, i) => {
  if (i % 17 === 0) return 0;
  const r = rnd();
  const base = r < 0.3 ? -1000 : r < 0.5 ? -100 : r < 0.98 ? 40 : 1500;
  return Math.round(base + (rnd() - 0.5) * 80);
});
const mask = Array.from({ length: N }, (_, i) => (i % 5 === 0 || i % 7 === 0 ? 1 : 0));
const QS = [0, 0.5, 1, 10, 25, 33.3, 50, 75, 99, 99.5, 100];

interface Ref {
  all: number[];
  nonzero: number[];
  aboveMean: number[];
  aboveMeanCount: number;
  stats: {
    mean: number;
    std: number;
    p00_5: number;
    p99_5: number;
    median: number;
    min: number;
    max: number;
  };
  ct: number[];
  pct: Record<string, number[]>;
}

const ref = python<Ref>(
  `
import numpy as np
x = np.array(INPUT["image"], dtype=np.float64)
m = np.array(INPUT["mask"]) != 0
def z(v, sel):
    mu, sd = v[sel].mean(), v[sel].std()
    return (v - mu) / max(sd, 1e-8)
nz = x != 0
zn = np.where(nz, z(x, nz), 0.0)
am = x > x.mean()
fg = x[m]
st = dict(mean=fg.mean(), std=fg.std(), p00_5=np.percentile(fg, 0.5), p99_5=np.percentile(fg, 99.5),
          median=np.median(fg), min=fg.min(), max=fg.max())
ct = (np.clip(x, st["p00_5"], st["p99_5"]) - st["mean"]) / max(st["std"], 1e-8)
pct = {}
for name, v in INPUT["arrays"].items():
    pct[name] = [float(np.percentile(np.array(v, dtype=np.float64), q)) for q in INPUT["qs"]]
OUTPUT = dict(all=z(x, np.ones_like(m)), nonzero=zn, aboveMean=z(x, am),
              aboveMeanCount=int(am.sum()), stats=st, ct=ct, pct=pct)
`,
  {
    image,
    mask,
    qs: QS,
    arrays: {
      one: [42],
      two: [3, -1],
      ties: [1, 1, 1, 2, 2, 9, 9, 9, 9],
      image,
      small: [0.1, 0.7, -3.25, 8, 2.5, 2.5, 1e-3],
    },
  },
);

describe("z-score against numpy", () => {
  it("over all voxels", () => {
    const { data, stats } = zscore(image, { over: "all" });
    expect(data).toBeInstanceOf(Float32Array);
    expect(stats.count).toBe(N);
    expectClose(data, ref.all, 1e-6, "all");
  });
  it("over non-zero voxels, zeros stay zero", () => {
    expectClose(zscore(image, { over: "nonzero" }).data, ref.nonzero, 1e-6, "nonzero");
  });
  it("over the voxels above the image's mean, applied to every voxel (TorchIO)", () => {
    const { data, stats } = zscore(image, { over: "above_mean" });
    expect(stats.count).toBe(ref.aboveMeanCount);
    expect(ref.aboveMeanCount).toBeGreaterThan(N / 2); // the air is below the mean, the rest above
    expectClose(data, ref.aboveMean, 1e-6, "above_mean");
  });
  it("degenerate input: a constant image → zeros, nothing above its mean → zeros", () => {
    expect([...zscore([5, 5, 5], { over: "all" }).data]).toEqual([0, 0, 0]);
    const empty = zscore([5, 5, 5], { over: "above_mean" });
    expect([...empty.data]).toEqual([0, 0, 0]);
    expect(empty.stats.count).toBe(0);
    expect([...zscore([0, 0], { over: "nonzero" }).data]).toEqual([0, 0]);
  });
});

describe("CT normalization and percentiles against numpy", () => {
  it("foreground statistics equal numpy's mean/std/median/min/max/percentiles", () => {
    const fg = image.filter((_, i) => mask[i] !== 0);
    const s = intensityStatistics(fg);
    expect(s.count).toBe(fg.length);
    for (const k of ["mean", "std", "p00_5", "p99_5", "median", "min", "max"] as const)
      expectClose([s[k]], [ref.stats[k]], 1e-9, k);
  });
  it("clip to the dataset percentiles, then z-score with dataset mean and std", () => {
    expectClose(ctNormalize(image, ref.stats), ref.ct, 1e-6, "ct");
    expect(() => ctNormalize(image, { ...ref.stats, p00_5: 5, p99_5: 1 })).toThrow(/empty/);
  });
  it("percentiles use numpy's 'linear' definition", () => {
    const arrays: Record<string, number[]> = {
      one: [42],
      two: [3, -1],
      ties: [1, 1, 1, 2, 2, 9, 9, 9, 9],
      image,
      small: [0.1, 0.7, -3.25, 8, 2.5, 2.5, 1e-3],
    };
    for (const [name, v] of Object.entries(arrays))
      expectClose(percentiles(v, QS), ref.pct[name]!, 1e-12, name);
    expect(percentileSorted([], 50)).toBeNaN();
    expect(() => percentileSorted([1], 101)).toThrow(/outside/);
  });
});

describe("foreground sampling (nnU-Net: with replacement, fixed count per case)", () => {
  it("draws only foreground values, the requested count, the same every time", () => {
    const a = sampleForeground(image, mask, { count: 500, seed: 3 });
    const b = sampleForeground(image, mask, { count: 500, seed: 3 });
    expect(a.length).toBe(500);
    expect([...a]).toEqual([...b]);
    const allowed = new Set(image.filter((_, i) => mask[i] !== 0));
    expect([...a].every((v) => allowed.has(v))).toBe(true);
    expect([...sampleForeground(image, mask, { count: 500, seed: 4 })]).not.toEqual([...a]);
    expect(sampleForeground([1, 2], [0, 0]).length).toBe(0);
  });
});
