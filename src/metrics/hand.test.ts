// Cases small enough to work out on paper; the derivations are in the comments.
import { describe, expect, it } from "vitest";
import { summarize } from "./aggregate.js";
import { keepLargestComponent, labelComponents } from "./components.js";
import { squaredDistanceToSites } from "./edt.js";
import { evaluateCase } from "./index.js";
import { lesionDetection } from "./lesions.js";

/** A 0/1 volume with the boxes [x0..x1]×[y0..y1](×[z0..z1]) set (inclusive). */
function boxes(shape: number[], ...list: number[][]): Uint8Array {
  const [nx = 1, ny = 1, nz = 1] = shape;
  const out = new Uint8Array(nx * ny * nz);
  for (const [x0 = 0, x1 = 0, y0 = 0, y1 = 0, z0 = 0, z1 = 0] of list) {
    for (let z = z0; z <= z1; z++)
      for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) out[x + nx * (y + ny * z)] = 1;
  }
  return out;
}

describe("two offset cubes", () => {
  // 10×10×10 grid, spacing [2, 1, 1] mm. Reference: cube x,y,z ∈ [2,5] (4×4×4 = 64 voxels).
  // Prediction: the same cube shifted one voxel (2 mm) along x: x ∈ [3,6].
  //
  // Overlap: TP = 3·4·4 = 48, FP = FN = 16, TN = 1000 − 80 = 920.
  //   Dice = 96/128 = 0.75, IoU = 48/80 = 0.6, sensitivity = precision = 0.75,
  //   specificity = 920/936. Volumes 64 · 2 mm³ = 128 mm³ each, RVE 0.
  // Surface voxels: 64 − 2·2·2 interior = 56 per cube.
  // Prediction → reference, by reflection the same list the other way:
  //   - 36 voxels with x ∈ [3,5] on a y or z face of the prediction (12 per x) are also on a
  //     y or z face of the reference: distance 0;
  //   - the 16 voxels of the new face x = 6: nearest reference surface is x = 5, 2 mm away;
  //   - the 4 voxels of face x = 3 with y,z ∈ {3,4} are reference interior; the reference's
  //     y or z faces are 1 voxel (1 mm) away, its x = 2 face 2 mm: distance 1.
  //   So each direction holds 36 × 0, 4 × 1, 16 × 2.
  // HD = 2. HD95: index 0.95·55 = 52.25 lands among the 2s (sorted 36..39 are 1s, 40..55 2s): 2.
  // ASSD = 2·(4·1 + 16·2) / 112 = 72/112 = 9/14.
  // NSD@0.5 = 72/112 = 9/14; NSD@1 = (72 + 8)/112 = 5/7; NSD@2 = 1.
  const shape = [10, 10, 10];
  const spacing = [2, 1, 1];
  const ref = boxes(shape, [2, 5, 2, 5, 2, 5]);
  const pred = boxes(shape, [3, 6, 2, 5, 2, 5]);
  const [m] = evaluateCase({ data: pred, shape, spacing }, { data: ref, shape, spacing });

  it("overlap and volume", () => {
    expect(m!.overlap).toMatchObject({ tp: 48, fp: 16, fn: 16, tn: 920 });
    expect(m!.overlap.dice).toBeCloseTo(0.75, 12);
    expect(m!.overlap.iou).toBeCloseTo(0.6, 12);
    expect(m!.overlap.sensitivity).toBeCloseTo(0.75, 12);
    expect(m!.overlap.precision).toBeCloseTo(0.75, 12);
    expect(m!.overlap.specificity).toBeCloseTo(920 / 936, 12);
    expect(m!.volume).toEqual({ predVolumeMm3: 128, refVolumeMm3: 128, rve: 0 });
    expect(m!.lesions.rate).toBe(1);
  });

  it("surface distances", () => {
    const s = m!.surface!;
    expect(s.definition).toBe("monai-voxel");
    expect(s.predSurfaceVoxels).toBe(56);
    expect(s.refSurfaceVoxels).toBe(56);
    expect(s.hd).toBe(2);
    expect(s.hd95).toBe(2);
    expect(s.assd).toBeCloseTo(9 / 14, 12);
    expect(s.nsd.map((n) => n.toleranceMm)).toEqual([0.5, 1, 2]);
    expect(s.nsd[0]!.value).toBeCloseTo(9 / 14, 12);
    expect(s.nsd[1]!.value).toBeCloseTo(5 / 7, 12);
    expect(s.nsd[2]!.value).toBe(1);
  });
});

describe("a square with a spur (2D, 4-neighbourhood surface)", () => {
  // 12×12 grid, spacing 1. Reference: square x,y ∈ [2,6] (25 voxels, 16 on its surface).
  // Prediction: the square plus a spur (7,4), (8,4), (9,4) off the middle of its right side.
  // Overlap: TP 25, FP 3, FN 0 → Dice 50/53, IoU 25/28, precision 25/28, RVE 3/25 = 0.12.
  // Prediction surface: (6,4) now has all four neighbours set, so it drops out: 15 square
  //   voxels + 3 spur voxels = 18. Distances to the reference surface: 15 × 0, then 1, 2, 3.
  // Reference surface: 16 voxels, 15 on the predicted surface (0); (6,4) is 1 from (7,4).
  // HD = 3. HD95: pred → ref at 0.95·17 = 16.15 between sorted[16] = 2 and sorted[17] = 3:
  //   2.15; ref → pred at 0.95·15 = 14.25 between 0 and 1: 0.25. HD95 = 2.15.
  // ASSD = (1 + 2 + 3 + 1) / 34 = 7/34.
  // NSD@0.5 = 30/34, NSD@1 = (16 + 16)/34, NSD@2 = (17 + 16)/34.
  const shape = [12, 12];
  const spacing = [1, 1];
  const ref = boxes(shape, [2, 6, 2, 6]);
  const pred = boxes(shape, [2, 6, 2, 6], [7, 9, 4, 4]);
  const [m] = evaluateCase({ data: pred, shape, spacing }, { data: ref, shape, spacing });

  it("overlap and volume", () => {
    expect(m!.overlap.dice).toBeCloseTo(50 / 53, 12);
    expect(m!.overlap.iou).toBeCloseTo(25 / 28, 12);
    expect(m!.overlap.sensitivity).toBe(1);
    expect(m!.overlap.precision).toBeCloseTo(25 / 28, 12);
    expect(m!.volume.rve).toBeCloseTo(0.12, 12);
  });

  it("surface distances", () => {
    const s = m!.surface!;
    expect(s.predSurfaceVoxels).toBe(18);
    expect(s.refSurfaceVoxels).toBe(16);
    expect(s.hd).toBe(3);
    expect(s.hd95).toBeCloseTo(2.15, 12);
    expect(s.assd).toBeCloseTo(7 / 34, 12);
    expect(s.nsd.map((n) => n.value)).toEqual([30 / 34, 32 / 34, 33 / 34]);
  });
});

describe("empty masks", () => {
  const shape = [4, 4, 4];
  const spacing = [1, 1, 3];
  const empty = new Uint8Array(64);
  const some = boxes(shape, [1, 2, 1, 2, 1, 1]);

  it("both empty: Dice/IoU NaN, distances 0, NSD 1, LDR NaN", () => {
    const [m] = evaluateCase({ data: empty, shape, spacing }, { data: empty, shape, spacing });
    expect(m!.overlap.dice).toBeNaN();
    expect(m!.overlap.iou).toBeNaN();
    expect(m!.overlap.specificity).toBe(1);
    expect(m!.volume.rve).toBeNaN();
    expect(m!.lesions.rate).toBeNaN();
    expect(m!.surface).toMatchObject({ hd: 0, hd95: 0, assd: 0 });
    expect(m!.surface!.nsd.every((n) => n.value === 1)).toBe(true);
  });

  it("exactly one empty: Dice/IoU 0, distances Infinity, NSD 0", () => {
    for (const [p, r] of [
      [some, empty],
      [empty, some],
    ] as const) {
      const [m] = evaluateCase({ data: p, shape, spacing }, { data: r, shape, spacing });
      expect(m!.overlap.dice).toBe(0);
      expect(m!.overlap.iou).toBe(0);
      expect(m!.surface).toMatchObject({ hd: Infinity, hd95: Infinity, assd: Infinity });
      expect(m!.surface!.nsd.every((n) => n.value === 0)).toBe(true);
    }
    // Reference empty, prediction not: RVE undefined (NaN), not Infinity.
    const [m] = evaluateCase({ data: some, shape, spacing }, { data: empty, shape, spacing });
    expect(m!.volume.rve).toBeNaN();
    expect(m!.volume.predVolumeMm3).toBe(4 * 3);
  });

  it("refuses mismatched grids", () => {
    expect(() =>
      evaluateCase({ data: new Uint8Array(48), shape: [4, 4, 3], spacing }, { data: empty, shape, spacing }),
    ).toThrow(/differs from reference grid/);
  });
});

describe("lesion detection", () => {
  // 1D-like 2D strip 20×1. Lesion A: x ∈ [0,3] (4 voxels), lesion B: x ∈ [6,13] (8 voxels),
  // lesion C: x ∈ [16,17] (2 voxels). Prediction covers x ∈ [0,1] and x = 13.
  // Covered fractions: A 2/4, B 1/8, C 0. Per-lesion Dice 2f/(1+f): A 2/3, B 2/9, C 0.
  // Any overlap: 2 of 3 detected. Threshold 0.5: only A → 1/3. Threshold 2/3: none (strict >).
  const shape = [20, 1];
  const ref = boxes(shape, [0, 3, 0, 0], [6, 13, 0, 0], [16, 17, 0, 0]);
  const pred = boxes(shape, [0, 1, 0, 0], [13, 13, 0, 0]);

  it("any overlap, Dice thresholds, and no lesions", () => {
    expect(lesionDetection(pred, ref, shape)).toMatchObject({ lesions: 3, detected: 2, connectivity: 4 });
    expect(lesionDetection(pred, ref, shape, { diceThreshold: 0.5 }).rate).toBeCloseTo(1 / 3, 12);
    expect(lesionDetection(pred, ref, shape, { diceThreshold: 2 / 3 }).detected).toBe(0);
    expect(lesionDetection(pred, new Uint8Array(20), shape).rate).toBeNaN();
  });
});

describe("components and keep-largest", () => {
  // 6×6 grid: square A = x∈[3,4], y∈[0,1]; square B = x∈[0,1], y∈[3,4]; voxel C = (2,2),
  // diagonal to both A's (3,1) and B's (1,3).
  // 4-connectivity: three components, numbered by first voxel in memory order (x + 6y):
  //   A starts at 3 → 1, C at 14 → 2, B at 18 → 3. Sizes 4, 1, 4.
  //   Keep-largest: A and B tie at 4; A's first voxel comes first, so A is kept.
  // 8-connectivity: C joins A and B into one component of 9 voxels.
  const shape = [6, 6];
  const mask = boxes(shape, [3, 4, 0, 1], [0, 1, 3, 4], [2, 2, 2, 2]);

  it("labels by connectivity and breaks ties by memory order", () => {
    const four = labelComponents(mask, shape, 4);
    expect(four.count).toBe(3);
    expect(Array.from(four.sizes)).toEqual([0, 4, 1, 4]);
    expect(four.labels[3]).toBe(1);
    expect(four.labels[14]).toBe(2);
    expect(four.labels[18]).toBe(3);
    expect(Array.from(keepLargestComponent(mask, shape, 4))).toEqual(Array.from(boxes(shape, [3, 4, 0, 1])));
    const eight = labelComponents(mask, shape, 8);
    expect(eight.count).toBe(1);
    expect(eight.sizes[1]).toBe(9);
    expect(() => labelComponents(mask, shape, 26)).toThrow(/does not apply to 2D/);
  });
});

describe("EDT edge cases", () => {
  it("no site means Infinity everywhere; one site gives spaced distances", () => {
    expect(Array.from(squaredDistanceToSites(new Uint8Array(6), [3, 2], [1, 1]))).toEqual(
      Array(6).fill(Infinity),
    );
    // Site at (0,0) on a 3×2 grid with spacing [0.5, 2]: d² = (0.5x)² + (2y)².
    const d = squaredDistanceToSites(Uint8Array.from([1, 0, 0, 0, 0, 0]), [3, 2], [0.5, 2]);
    expect(Array.from(d)).toEqual([0, 0.25, 1, 4, 4.25, 5]);
  });
});

describe("aggregation", () => {
  it("excludes and counts non-finite values; std is the sample std", () => {
    // Finite 1, 2, 3, 4: mean 2.5, sample variance (2.25 + 0.25 + 0.25 + 2.25)/3 = 5/3.
    const s = summarize([1, Number.NaN, 2, Infinity, 3, 4, -Infinity]);
    expect(s).toMatchObject({ mean: 2.5, n: 4, nan: 1, infinite: 2 });
    expect(s.std).toBeCloseTo(Math.sqrt(5 / 3), 12);
    expect(summarize([7]).std).toBeNaN();
    expect(summarize([]).mean).toBeNaN();
    expect(summarize([1, Infinity], true).mean).toBe(Infinity);
  });
});
