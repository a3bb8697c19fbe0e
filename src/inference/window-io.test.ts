// The window copies, the accumulation and the division against a per-voxel statement of what
// they compute (the specification's rules written the slow way, with the stored importance map),
// over random geometries with padding, edges and every flip.
import { describe, expect, it } from "vitest";
import { seeded as random } from "../metrics/random-masks.js";
import {
  accumulateWindow,
  divideByWeightSum,
  foregroundOfTwoInPlace,
  type Geometry,
  gatherWindow,
  softmaxInPlace,
} from "./window-io.js";
import {
  importanceMap,
  padWidths,
  type WeightMode,
  weightAt,
  weightFactors,
  windowStarts,
} from "./windows.js";

/** A random volume, patch, padding and window start (possibly reaching into the padding). */
function randomCase(rand: () => number) {
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const size: [number, number, number] = [int(1, 40), int(1, 9), int(1, 40)];
  const patch: [number, number, number] = [int(1, 36), int(1, 8), int(1, 36)];
  const before: [number, number, number] = [int(0, 4), int(0, 3), int(0, 4)];
  const start = [0, 1, 2].map((a) => int(0, size[a]! + 2 * before[a]!)) as [number, number, number];
  const flip: [boolean, boolean, boolean] = [rand() < 0.5, rand() < 0.5, rand() < 0.5];
  return { g: { size, patch, before } satisfies Geometry, start, flip };
}

describe("gatherWindow", () => {
  it("copies each window voxel from its (flipped) volume position, zeros outside, 300 random geometries", () => {
    const rand = random(7);
    for (let trial = 0; trial < 300; trial++) {
      const { g, start, flip } = randomCase(rand);
      const channels = 1 + (trial % 2);
      const [n0, n1, n2] = g.size;
      const [p0, p1, p2] = g.patch;
      const volume = Float32Array.from({ length: channels * n0 * n1 * n2 }, () => rand() - 0.5);
      const offset = 3;
      const out = new Float32Array(offset + channels * p0 * p1 * p2).fill(Number.NaN);
      gatherWindow(volume, channels, g, start, flip, out, offset);
      for (let c = 0; c < channels; c++)
        for (let i = 0; i < p0; i++)
          for (let j = 0; j < p1; j++)
            for (let k = 0; k < p2; k++) {
              const x = start[0] + (flip[0] ? p0 - 1 - i : i) - g.before[0];
              const y = start[1] + (flip[1] ? p1 - 1 - j : j) - g.before[1];
              const z = start[2] + (flip[2] ? p2 - 1 - k : k) - g.before[2];
              const inside = x >= 0 && x < n0 && y >= 0 && y < n1 && z >= 0 && z < n2;
              const want = inside ? volume[x + n0 * (y + n1 * (z + n2 * c))]! : 0;
              const got = out[offset + c * p0 * p1 * p2 + (i * p1 + j) * p2 + k];
              if (got !== want)
                expect.fail(
                  `trial ${trial} ${JSON.stringify({ g, start, flip, c, i, j, k })}: ${got} != ${want}`,
                );
            }
      expect(out.subarray(0, offset).every(Number.isNaN)).toBe(true);
    }
  });
});

const MODES: WeightMode[] = ["constant", "gaussian", "hann"];

describe("weightFactors", () => {
  it("give importanceMap's float32 values exactly (1D, 2D, 3D, odd and even sizes, every mode)", () => {
    for (const mode of MODES)
      for (const patch of [[7], [6, 9], [5, 8, 3], [16, 16, 16], [1, 4, 2]]) {
        const map = importanceMap(patch, mode);
        const f = weightFactors(patch, mode);
        const [p0 = 1, p1 = 1, p2 = 1] = patch;
        for (let i = 0; i < p0; i++)
          for (let j = 0; j < p1; j++)
            for (let k = 0; k < p2; k++) expect(weightAt(f, i, j, k)).toBe(map[(i * p1 + j) * p2 + k]);
      }
  });
});

describe("accumulateWindow", () => {
  it("adds fround(p·w) once per real voxel of the window, w the importance map's, 1, 2 and 3 kept channels", () => {
    const rand = random(11);
    for (let trial = 0; trial < 150; trial++) {
      const { g, start } = randomCase(rand);
      const classes = 1 + (trial % 3);
      const mode = MODES[trial % 3]!;
      const [n0, n1, n2] = g.size;
      const [p0, p1, p2] = g.patch;
      const p = p0 * p1 * p2;
      const n = n0 * n1 * n2;
      const offset = 5;
      const probs = Float32Array.from({ length: offset + classes * p }, () => rand());
      const weight = importanceMap(g.patch, mode);
      const acc = Float32Array.from({ length: classes * n }, () => rand());
      const want = acc.slice();
      for (let c = 0; c < classes; c++)
        for (let i = 0; i < p0; i++)
          for (let j = 0; j < p1; j++)
            for (let k = 0; k < p2; k++) {
              const x = start[0] + i - g.before[0];
              const y = start[1] + j - g.before[1];
              const z = start[2] + k - g.before[2];
              if (x < 0 || x >= n0 || y < 0 || y >= n1 || z < 0 || z >= n2) continue;
              const t = (i * p1 + j) * p2 + k;
              const v = c * n + x + n0 * (y + n1 * z);
              want[v] = Math.fround(want[v]! + Math.fround(probs[offset + c * p + t]! * weight[t]!));
            }
      accumulateWindow(probs, offset, classes, weightFactors(g.patch, mode), g, start, acc);
      expect(acc).toEqual(want);
    }
  });
});

describe("divideByWeightSum", () => {
  it("divides by the float32 sum, in window order, of the weights of the windows covering each voxel", () => {
    const rand = random(5);
    for (let trial = 0; trial < 60; trial++) {
      const mode = MODES[trial % 3]!;
      const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
      const patch: [number, number, number] = [int(1, 12), int(1, 6), int(1, 12)];
      const size: [number, number, number] = [int(1, 30), int(1, 9), int(1, 30)];
      const pads = padWidths(size, patch);
      const g = { size, patch, before: pads.map(([b]) => b) as [number, number, number] };
      const starts = size.map((s, a) => windowStarts(s + pads[a]![0] + pads[a]![1], patch[a]!, 0.5)) as [
        number[],
        number[],
        number[],
      ];
      const classes = 1 + (trial % 2);
      const n = size[0] * size[1] * size[2];
      const acc = Float32Array.from({ length: classes * n }, () => rand());
      const weight = importanceMap(patch, mode);
      const norm = new Float32Array(n);
      for (const s0 of starts[0])
        for (const s1 of starts[1])
          for (const s2 of starts[2])
            for (let i = 0; i < patch[0]; i++)
              for (let j = 0; j < patch[1]; j++)
                for (let k = 0; k < patch[2]; k++) {
                  const x = s0 + i - g.before[0];
                  const y = s1 + j - g.before[1];
                  const z = s2 + k - g.before[2];
                  if (x < 0 || x >= size[0] || y < 0 || y >= size[1] || z < 0 || z >= size[2]) continue;
                  const v = x + size[0] * (y + size[1] * z);
                  norm[v] = Math.fround(norm[v]! + weight[(i * patch[1] + j) * patch[2] + k]!);
                }
      const want = acc.map((a, t) => a / norm[t % n]!);
      divideByWeightSum(acc, classes, weightFactors(patch, mode), g, starts);
      expect(acc).toEqual(want);
    }
  });
});

describe("foregroundOfTwoInPlace", () => {
  it("writes softmax's class-1 probability, the same bits, over class 1 only", () => {
    const rand = random(3);
    const voxels = 4000;
    const logits = Float32Array.from({ length: 2 * voxels }, () => (rand() - 0.5) * 60);
    logits[10] = logits[voxels + 10]!; // an exact tie
    logits[11] = 80;
    logits[voxels + 11] = -80; // saturated both ways
    logits[12] = -80;
    logits[voxels + 12] = 80;
    const full = logits.slice();
    softmaxInPlace(full, 0, 2, voxels);
    const fg = logits.slice();
    foregroundOfTwoInPlace(fg, 0, voxels);
    expect(fg.subarray(voxels)).toEqual(full.subarray(voxels));
    expect(fg.subarray(0, voxels)).toEqual(logits.subarray(0, voxels));
    expect(fg[voxels + 10]).toBe(0.5);
  });
});
