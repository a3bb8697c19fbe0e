// Window placement, padding and weights against medpipe.sliding_window's own functions
// (one Python call for the whole grid), plus cases worked out by hand below.
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { python } from "../../tests/support/oracle.js";
import {
  flipSubsets,
  importanceMap,
  padWidths,
  type WeightMode,
  weightProfile,
  windowGrid,
  windowStarts,
} from "./windows.js";

const PY_SRC = fileURLToPath(new URL("../py", import.meta.url));

// [size, patch, overlap]: borders, exact fits, a step of trunc(0.99..) = 0 → 1, the reference 0.5.
const STARTS: [number, number, number][] = [
  [10, 16, 0.5],
  [16, 16, 0.5],
  [17, 16, 0.5],
  [40, 16, 0.5],
  [41, 16, 0.5],
  [100, 7, 0.3],
  [50, 10, 0.9],
  [30, 3, 0],
  [320, 160, 0.5],
  [110, 80, 0.5],
  [5, 1, 0.75],
  [200, 64, 0.999],
  [97, 33, 0.25],
  [128, 96, 0.625],
];
const GRIDS: [number[], number[], number][] = [
  [[40, 36, 20], [16, 16, 16], 0.5],
  [[50, 32], [32, 32], 0.5],
  [[21, 9, 13], [8, 9, 4], 0.3],
];
const PADS: [number[], number[]][] = [
  [
    [10, 20, 5],
    [16, 16, 16],
  ],
  [[15], [16]],
  [
    [3, 64],
    [8, 32],
  ],
  [
    [16, 17, 1],
    [16, 16, 2],
  ],
];
const MAPS: number[][] = [[16, 16, 16], [7, 5, 3], [1, 4], [64], [2, 3], [3], [9, 12]];
const MODES: WeightMode[] = ["constant", "gaussian", "hann"];

interface Reference {
  starts: number[][];
  grids: number[][][];
  pads: number[][][];
  maps: Record<string, number[]>;
  profiles: Record<string, number[]>;
  subsets: number[][];
}

let ref: Reference;

beforeAll(() => {
  ref = python<Reference>(
    `
import sys
sys.path.insert(0, INPUT["py"])
import numpy as np
from medpipe import sliding_window as sw
OUTPUT = {
    "starts": [sw.window_starts(*c) for c in INPUT["starts"]],
    "grids": [[list(s) for s in sw.window_grid(*c)] for c in INPUT["grids"]],
    "pads": [[list(p) for p in sw.pad_widths(*c)] for c in INPUT["pads"]],
    # float32 maps, raveled in C order, sent as exact doubles
    "maps": {f"{m}:{','.join(map(str, p))}": [float(v) for v in sw.importance_map(p, m).numpy().ravel()]
             for m in INPUT["modes"] for p in INPUT["maps"]},
    "profiles": {f"{m}:{n}": [float(v) for v in sw.weight_profile(n, m)]
                 for m in INPUT["modes"] for n in (1, 2, 7, 16, 80, 160)},
    "subsets": [[a - 2 for a in s] for s in sw.flip_subsets(3)],
}`,
    { py: PY_SRC, starts: STARTS, grids: GRIDS, pads: PADS, maps: MAPS, modes: MODES },
  );
});

describe("window positions (rule 2)", () => {
  it("equal window_starts on every case", () => {
    expect(STARTS.map(([s, p, o]) => windowStarts(s, p, o))).toEqual(ref.starts);
  });

  it("hand-derived cases", () => {
    // 41, patch 16, overlap 0.5: step = trunc(8) = 8, n = ceil(25/8) + 1 = 5,
    // starts 0, 8, 16, 24 and min(32, 25) = 25 (the last window pulled back to the border).
    expect(windowStarts(41, 16, 0.5)).toEqual([0, 8, 16, 24, 25]);
    // 110, patch 80 (the reference z axis): step 40, n = ceil(30/40) + 1 = 2: [0, 30].
    expect(windowStarts(110, 80, 0.5)).toEqual([0, 30]);
    // 50, patch 10, overlap 0.9: 10·(1−0.9) = 0.9999999999999998 in doubles, trunc → 0, so step = max(1, 0) = 1
    // and n = 40 + 1 windows, one per voxel offset.
    expect(windowStarts(50, 10, 0.9)).toEqual(Array.from({ length: 41 }, (_, i) => i));
    // smaller than or equal to the patch: a single window at 0 (after padding).
    expect(windowStarts(10, 16, 0.5)).toEqual([0]);
  });

  it("grids are the C-order product, equal window_grid", () => {
    expect(GRIDS.map(([s, p, o]) => windowGrid(s, p, o))).toEqual(ref.grids);
    // 40×36×20, patch 16³: 4·4·2 windows, last axis fastest.
    const g = windowGrid([40, 36, 20], [16, 16, 16], 0.5);
    expect(g.length).toBe(32);
    expect(g.slice(0, 3)).toEqual([
      [0, 0, 0],
      [0, 0, 4],
      [0, 8, 0],
    ]);
  });

  it("rejects an overlap outside [0, 1)", () => {
    expect(() => windowStarts(10, 4, 1)).toThrow(RangeError);
    expect(() => windowStarts(10, 4, -0.1)).toThrow(RangeError);
    expect(() => windowStarts(10, 0, 0.5)).toThrow(RangeError);
  });
});

describe("padding (rule 1)", () => {
  it("equals pad_widths", () => {
    expect(PADS.map(([s, p]) => padWidths(s, p))).toEqual(ref.pads);
  });

  it("hand-derived: the odd voxel goes after", () => {
    // 10 → 16: 6 = 3 + 3; 20 ≥ 16: none; 5 → 16: 11 = 5 + 6.
    expect(padWidths([10, 20, 5], [16, 16, 16])).toEqual([
      [3, 3],
      [0, 0],
      [5, 6],
    ]);
  });
});

describe("importance maps (rule 3)", () => {
  it("profiles and float32 maps equal weight_profile / importance_map", () => {
    let worst = 0;
    for (const mode of MODES) {
      for (const n of [1, 2, 7, 16, 80, 160]) {
        const ours = weightProfile(n, mode);
        const theirs = ref.profiles[`${mode}:${n}`]!;
        ours.forEach((v, i) => {
          worst = Math.max(worst, Math.abs(v - theirs[i]!));
        });
      }
      for (const patch of MAPS) {
        const ours = importanceMap(patch, mode);
        const theirs = ref.maps[`${mode}:${patch.join(",")}`]!;
        expect(ours.length).toBe(theirs.length);
        ours.forEach((v, i) => {
          worst = Math.max(worst, Math.abs(v - theirs[i]!));
        });
      }
    }
    // Same formula, same operation order; exp/cos may differ in the last bit of a double.
    console.log(`max |ts - numpy| over profiles and maps: ${worst}`);
    expect(worst).toBeLessThan(1e-12);
  });

  it("hand-derived values", () => {
    // hann, P = 3: 0.5 − 0.5·cos(2π·(i+1)/4) for i = 0, 1, 2 → 0.5, 1, 0.5.
    expect(Array.from(weightProfile(3, "hann")).map((v) => +v.toFixed(12))).toEqual([0.5, 1, 0.5]);
    // hann 2D [3, 1]: the product with the length-1 profile 0.5 − 0.5·cos(π) = 1.
    expect(Array.from(importanceMap([3, 1], "hann"))).toEqual([0.5, 1, 0.5]);
    // gaussian, P = 64: c = 31.5, sigma = 8; the end voxel has exp(−31.5²/128) = exp(−7.752) ≈ 4.3e-4
    // before normalising by the peak exp(−0.25/128) ≈ 0.998, still < 1e-3, so it is floored to 1e-3.
    const g = importanceMap([64], "gaussian");
    expect(g[0]).toBe(Math.fround(1e-3));
    expect(g[31]).toBe(1); // the two central voxels tie for the peak: exactly 1 after normalising
    expect(g[32]).toBe(1);
    // constant: all ones.
    expect(importanceMap([2, 3], "constant")).toEqual(new Float32Array(6).fill(1));
  });

  it("C order: the last patch axis runs fastest", () => {
    // hann [2, 3]: profiles a = [0.5−0.5cos(2π/3), 0.5−0.5cos(4π/3)] = [0.75, 0.75], b = [0.5, 1, 0.5];
    // flat C order a_i·b_j: row i = 0 is b scaled by 0.75.
    const m = importanceMap([2, 3], "hann");
    expect(Array.from(m).map((v) => +v.toFixed(6))).toEqual([0.375, 0.75, 0.375, 0.375, 0.75, 0.375]);
  });
});

describe("flip subsets", () => {
  it("the 2^d subsets in Python's order", () => {
    expect(flipSubsets(3)).toEqual(ref.subsets);
    expect(flipSubsets(2)).toEqual([[], [0], [1], [0, 1]]);
  });
});
