// The splits: numpy's RandomState permutation reproduced bit for bit, KFold equal to folds computed
// with numpy the way scikit-learn's KFold(shuffle=True) computes them (no sklearn in the oracle),
// and the partition / group properties for every method.
import { describe, expect, it } from "vitest";
import { python } from "../../tests/support/oracle.js";
import { permutation } from "./random.js";
import { type Fold, groupKfold, holdout, kfold, stratifiedKfold } from "./split.js";

const ids = (n: number): string[] =>
  Array.from({ length: n }, (_, i) => `case_${String(i).padStart(3, "0")}`);

/** Every case is validated exactly once, never trains in its own fold, and train ∪ val is everything. */
function expectPartition(folds: Fold[], all: string[]): void {
  const seen = folds.flatMap((f) => f.val);
  expect([...seen].sort()).toEqual([...all].sort());
  for (const f of folds) {
    expect(f.train.filter((id) => f.val.includes(id))).toEqual([]);
    expect([...f.train, ...f.val].sort()).toEqual([...all].sort());
  }
  const sizes = folds.map((f) => f.val.length);
  expect(Math.max(...sizes) - Math.min(...sizes)).toBeLessThanOrEqual(1);
}

describe("numpy RandomState permutation", () => {
  it("equals np.random.RandomState(seed).permutation(n) for many n and seeds", () => {
    const seeds = [0, 1, 42, 1234, 2 ** 31, 2 ** 32 - 1];
    const ns = [1, 2, 3, 5, 8, 16, 20, 33, 100, 1000];
    const expected = python<number[][][]>(
      "import numpy as np\nOUTPUT = [[np.random.RandomState(s).permutation(n) for n in INPUT['ns']] for s in INPUT['seeds']]",
      { seeds, ns },
    );
    expect(seeds.map((s) => ns.map((n) => permutation(n, s)))).toEqual(expected);
  });
});

describe("kfold", () => {
  it("equals scikit-learn's KFold(n_splits=k, shuffle=True, random_state=seed), computed with numpy", () => {
    const configs = [
      [16, 5, 42],
      [8, 5, 42],
      [8, 2, 42],
      [20, 5, 0],
      [41, 10, 7],
      [5, 5, 3],
      [100, 3, 2024],
    ];
    // sklearn's _iter_test_indices: shuffle arange(n) with RandomState(seed), fold sizes n // k
    // plus one for the first n % k folds; train = the other indices in ascending order.
    const expected = python<{ train: number[]; val: number[] }[][]>(
      `
import numpy as np
OUTPUT = []
for n, k, seed in INPUT:
    idx = np.arange(n)
    np.random.RandomState(seed).shuffle(idx)
    sizes = np.full(k, n // k); sizes[: n % k] += 1
    folds, at = [], 0
    for s in sizes:
        val = idx[at:at + s]; at += s
        mask = np.zeros(n, bool); mask[val] = True
        folds.append({"train": np.arange(n)[~mask], "val": val})
    OUTPUT.append(folds)
`,
      configs,
    );
    configs.forEach(([n, k, seed], c) => {
      const names = ids(n!);
      const folds = kfold(names, k!, seed!);
      expect(
        folds.map((f) => ({
          train: f.train.map((id) => names.indexOf(id)),
          val: f.val.map((id) => names.indexOf(id)),
        })),
      ).toEqual(expected[c]);
      expectPartition(folds, names);
    });
  });

  it("on 16 cases with seed 42 gives the reference's fold sizes 4/3/3/3/3", () => {
    expect(kfold(ids(16), 5, 42).map((f) => f.val.length)).toEqual([4, 3, 3, 3, 3]);
  });

  it("refuses fewer cases than folds", () => {
    expect(() => kfold(ids(3), 5, 42)).toThrow("cannot split 3 case(s) into 5 folds");
  });
});

describe("stratified, group and holdout", () => {
  it("stratified: a partition with every quartile spread over the folds", () => {
    for (const [n, k, seed] of [
      [16, 4, 42],
      [23, 5, 1],
      [10, 3, 9],
    ] as const) {
      const names = ids(n);
      const values = names.map((_, i) => ((i * 7919) % 101) + 0.5);
      const folds = stratifiedKfold(names, values, k, seed);
      expectPartition(folds, names);
      // Per quartile bin, the folds' counts differ by at most one.
      const sorted = [...values].sort((a, b) => a - b);
      const q = (p: number): number => {
        const h = ((n - 1) * p) / 100;
        const lo = Math.floor(h);
        return sorted[lo]! + (sorted[Math.min(lo + 1, n - 1)]! - sorted[lo]!) * (h - lo);
      };
      const cuts = [q(25), q(50), q(75)];
      const bin = (id: string): number => cuts.filter((c) => values[names.indexOf(id)]! > c).length;
      for (let b = 0; b < 4; b++) {
        const per = folds.map((f) => f.val.filter((id) => bin(id) === b).length);
        expect(Math.max(...per) - Math.min(...per)).toBeLessThanOrEqual(1);
      }
      expect(stratifiedKfold(names, values, k, seed)).toEqual(folds);
    }
  });

  it("group: groups never straddle folds, every case validated once", () => {
    const names = ids(30);
    const groups = names.map((_, i) => `patient_${Math.floor((i * i) % 11)}`);
    for (const seed of [0, 42, 7]) {
      const folds = groupKfold(names, groups, 4, seed);
      expect(folds.flatMap((f) => f.val).sort()).toEqual([...names].sort());
      for (const f of folds) {
        const valGroups = new Set(f.val.map((id) => groups[names.indexOf(id)]));
        const trainGroups = new Set(f.train.map((id) => groups[names.indexOf(id)]));
        expect([...valGroups].filter((g) => trainGroups.has(g))).toEqual([]);
      }
      const owner = new Map<string, number>();
      folds.forEach((f) => {
        for (const id of f.val) {
          const g = groups[names.indexOf(id)]!;
          expect(owner.get(g) ?? f.fold).toBe(f.fold);
          owner.set(g, f.fold);
        }
      });
    }
    expect(() => groupKfold(ids(4), ["a", "a", "b", "b"], 3, 0)).toThrow("2 group(s) cannot fill 3 folds");
  });

  it("holdout: round(n × fraction) cases of the numpy permutation", () => {
    const names = ids(10);
    const [f] = holdout(names, 0.2, 42);
    const perm = permutation(10, 42);
    expect(f!.val).toEqual([names[perm[0]!], names[perm[1]!]]);
    expect(f!.train).toHaveLength(8);
    expect(holdout(ids(2), 0.01, 1)[0]!.val).toHaveLength(1);
    expect(holdout(ids(2), 0.99, 1)[0]!.train).toHaveLength(1);
  });
});
