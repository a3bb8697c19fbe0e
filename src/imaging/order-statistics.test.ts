// selectRanks against a full ascending sort of a copy (Array.prototype.sort with a numeric
// comparator), on inputs that break naive quickselects: ties, sorted, reversed, tiny, constant.
import { describe, expect, it } from "vitest";
import { percentileSorted, percentiles } from "./normalize.js";
import { percentileRanks, selectRanks } from "./order-statistics.js";

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 16), 0x85ebca6b);
    t = Math.imul(t ^ (t >>> 13), 0xc2b2ae35);
    return ((t ^ (t >>> 16)) >>> 0) / 4294967296;
  };
}

const random = seeded(7);
const inputs: Record<string, number[]> = {
  uniform: Array.from({ length: 5000 }, () => random() * 1000 - 500),
  "integer-valued, many ties": Array.from({ length: 5000 }, () => Math.floor(random() * 7) - 3),
  sorted: Array.from({ length: 3000 }, (_, i) => i * 0.5),
  reversed: Array.from({ length: 3000 }, (_, i) => -i),
  constant: Array.from({ length: 1000 }, () => 4.25),
  "organ-like (mostly one value)": Array.from({ length: 4000 }, () =>
    random() < 0.9 ? -1000 : random() * 80,
  ),
  tiny: [3, -1, 2],
  single: [42],
};

describe("selectRanks", () => {
  for (const [name, values] of Object.entries(inputs)) {
    it(`puts every asked rank where a sort would: ${name}`, () => {
      const n = values.length;
      const sorted = [...values].sort((a, b) => a - b);
      const ranks = [
        0,
        n - 1,
        Math.floor(n / 2),
        Math.floor(n / 200),
        Math.min(n - 1, Math.floor(n / 200) + 1),
      ];
      for (const q of [0.5, 50, 99.5]) ranks.push(...percentileRanks(n, q));
      const a = Float64Array.from(values);
      selectRanks(a, ranks);
      for (const r of ranks) expect(a[r]).toBe(sorted[r]);
      // Still a permutation of the input.
      expect([...a].sort((x, y) => x - y)).toEqual(sorted);
    });
  }

  it("gives numpy's linear percentiles through percentiles() (hand-computed)", () => {
    // numpy.percentile([7, 1, 3, 9, 5], [0, 25, 50, 90, 100]) = [1, 3, 5, 8.2, 9]
    const got = percentiles([7, 1, 3, 9, 5], [0, 25, 50, 90, 100]);
    expect(got.slice(0, 3)).toEqual([1, 3, 5]);
    expect(got[3]).toBeCloseTo(8.2, 12);
    expect(got[4]).toBe(9);
    expect(percentileSorted([], 50)).toBeNaN();
    expect(percentiles([], [50])[0]).toBeNaN();
  });

  it("rejects a rank outside the array", () => {
    expect(() => selectRanks(Float64Array.from([1, 2]), [2])).toThrow(/rank 2 outside 0..1/);
  });
});
