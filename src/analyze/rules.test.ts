// The dataset-level rules on hand-derived inputs: target spacing (both rules), patch size with its
// reasons (the heart reference of DESIGN.md), resampled sizes, and the affine drift.
import { describe, expect, it } from "vitest";
import { cornerDrift } from "./geometry.js";
import { axisStatistics, median, resampledSizes, suggestPatch, targetSpacing } from "./spacing.js";

const RULE = { multiple: 16, min: 32, max: 256 };

describe("target spacing", () => {
  it("nnunet: median per axis when isotropic enough", () => {
    const r = targetSpacing(
      [
        [1.25, 1.25, 1.37],
        [1.25, 1.25, 1.37],
        [1.3, 1.3, 1.37],
      ],
      "nnunet",
    );
    expect(r).toEqual({ target: [1.25, 1.25, 1.37], anisotropicAxis: null });
  });

  it("nnunet: the 10th percentile on an anisotropic axis", () => {
    // medians [1, 1, 5.5]; 5.5 > 3 × 1; z sorted [4, 5, 6, 7], rank 0.3 → 4.3.
    const r = targetSpacing(
      [
        [1, 1, 5],
        [1, 1, 6],
        [0.8, 0.8, 4],
        [1.2, 1.2, 7],
      ],
      "nnunet",
    );
    expect(r).toEqual({ target: [1, 1, 4.3], anisotropicAxis: 2 });
  });

  it("nnunet: never finer than the coarsest other axis", () => {
    // medians [2, 2, 7] > 3 × 2; z p10 of [0.5, 7, 7] = 0.5 + 0.2 × 6.5 = 1.8 < 2 → 2.
    const r = targetSpacing(
      [
        [2, 2, 7],
        [2, 2, 7],
        [2, 2, 0.5],
      ],
      "nnunet",
    );
    expect(r).toEqual({ target: [2, 2, 2], anisotropicAxis: 2 });
  });

  it("most_common: the most frequent value per axis, ties to the smaller, float32 noise rounded", () => {
    const f32 = Math.fround(1.37);
    const r = targetSpacing(
      [
        [1, 1, f32],
        [1, 1, f32],
        [0.9, 0.9, 3],
        [0.9, 0.9, f32],
        [0.8, 0.8, 3],
      ],
      "most_common",
    );
    expect(r).toEqual({ target: [0.9, 0.9, 1.37], anisotropicAxis: null });
  });

  it("numpy's median of an even count is the mean of the middle pair", () => {
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([5, 1, 3])).toBe(3);
  });
});

describe("patch size", () => {
  it("reproduces the heart reference: [256, 256, 80] with the reference's reason", () => {
    const sizes = { min: [320, 320, 90], median: [320, 320, 110], max: [320, 320, 130], p10: [], p90: [] };
    const s = suggestPatch(sizes, RULE);
    expect(s.patch).toEqual([256, 256, 80]);
    expect(s.reasons).toEqual([
      "Dim 0: patch_size clamped from 320 to 256 (the largest patch considered).",
      "Dim 1: patch_size clamped from 320 to 256 (the largest patch considered).",
      "Dim 2: patch_size reduced from 96 to 80 to fit smallest volume (min=90, median=110).",
    ]);
  });

  it("floors to 16, raises to 32, shrinks to fit, pads below one multiple", () => {
    const s = suggestPatch(
      { min: [43, 45, 20, 10], median: [47, 49.5, 20, 10], max: [], p10: [], p90: [] },
      RULE,
    );
    expect(s.patch).toEqual([32, 32, 16, 16]);
    expect(s.reasons).toEqual([
      "Dim 1: patch_size reduced from 48 to 32 to fit smallest volume (min=45, median=49.5).",
      "Dim 2: patch_size raised from 16 to 32 (the smallest patch considered).",
      "Dim 2: patch_size reduced from 32 to 16 to fit smallest volume (min=20, median=20).",
      "Dim 3: patch_size raised from 0 to 32 (the smallest patch considered).",
      "Dim 3: patch_size reduced from 32 to 16 to fit smallest volume (min=10, median=10); smaller volumes are padded.",
    ]);
  });
});

describe("sizes after resampling", () => {
  it("round half to even of shape × spacing / target, then per-axis statistics", () => {
    const sizes = resampledSizes(
      [
        { shape: [3, 10], spacing: [1, 1] },
        { shape: [5, 10], spacing: [1, 2] },
        { shape: [7, 10], spacing: [1, 0.5] },
      ],
      [2, 1],
    );
    expect(sizes).toEqual([
      [2, 10],
      [2, 20],
      [4, 5],
    ]);
    expect(axisStatistics(sizes)).toEqual({
      min: [2, 5],
      median: [2, 10],
      max: [4, 20],
      p10: [2, 6],
      p90: [3.6, 18],
    });
  });
});

describe("affine drift", () => {
  it("is the largest corner distance between the two placements", () => {
    const a = [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1];
    const shifted = a.slice();
    shifted[3] = 0.3;
    shifted[7] = 0.4;
    expect(cornerDrift(a, shifted, [10, 10, 10])).toBeCloseTo(0.5, 12);
    const scaled = a.slice();
    scaled[10] = 2.01; // 9 slices × 0.01 mm at the far corner
    expect(cornerDrift(a, scaled, [10, 10, 10])).toBeCloseTo(0.09, 12);
  });
});
