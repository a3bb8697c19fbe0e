// The sliding window with plain-function models, no onnxruntime: the layout
// transposition, the blend (against a direct per-voxel sum written from the spec),
// batching, TTA bookkeeping, argmax and argument errors.
import { describe, expect, it } from "vitest";
import { InferenceError } from "./errors.js";
import { argmax, type ChannelVolume, channelsFirst, channelsLast } from "./layout.js";
import type { WindowBatchOutput, WindowModel } from "./model.js";
import { type SlidingWindowOptions, slidingWindowInference } from "./sliding-window.js";
import { importanceMap, padWidths, windowGrid } from "./windows.js";

/** Voxel value that encodes its coordinates exactly in float32: x + 64·y + 4096·z + 1 (0 = padding). */
const code = (x: number, y: number, z: number): number => 1 + x + 64 * y + 4096 * z;

function codedVolume(spatial: number[]): ChannelVolume {
  const [nx = 1, ny = 1, nz = 1] = spatial;
  const data = new Float32Array(nx * ny * nz);
  for (let z = 0; z < nz; z++)
    for (let y = 0; y < ny; y++) for (let x = 0; x < nx; x++) data[x + nx * (y + ny * z)] = code(x, y, z);
  return { data, shape: [1, ...spatial] };
}

const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));

/**
 * A two-class model over (B, 1, *patch) batches: logit0 = f(window, voxel value), logit1 = 0,
 * so p0 = sigmoid(logit0). It records every batch so tests can inspect what it was given.
 */
function fakeModel(logit: (value: number, windowOrigin: number) => number, spatialDims: number | null = 3) {
  const calls: number[][] = [];
  const inputs: Float32Array[] = [];
  const model: WindowModel = {
    source: "fake.onnx",
    inputChannels: 1,
    spatialDims,
    async run(input: Float32Array, dims: readonly number[]): Promise<WindowBatchOutput> {
      calls.push([...dims]);
      inputs.push(input.slice());
      const [b = 0, , ...patch] = dims;
      const p = patch.reduce((a, c) => a * c, 1);
      const out = new Float32Array(b * 2 * p);
      for (let w = 0; w < b; w++) {
        // The smallest non-padding value in the window codes the window's corner voxel.
        let origin = Number.POSITIVE_INFINITY;
        for (let t = 0; t < p; t++) {
          const v = input[w * p + t]!;
          if (v > 0) origin = Math.min(origin, v);
        }
        for (let t = 0; t < p; t++) out[w * 2 * p + t] = logit(input[w * p + t]!, origin);
      }
      return { data: out, dims: [b, 2, ...patch] };
    },
  };
  return { model, calls, inputs };
}

describe("layout: first-axis-fastest volumes ↔ C-order window tensors", () => {
  it("a window reaches the model in C order (last spatial axis fastest)", async () => {
    const { model, inputs } = fakeModel(() => 0);
    await slidingWindowInference(model, codedVolume([7, 6, 5]), {
      patch: [4, 3, 2],
      overlap: 0,
      mode: "constant",
    });
    const first = inputs[0]!; // window at (0, 0, 0), C-order index (i·3 + j)·2 + k
    for (let i = 0; i < 4; i++)
      for (let j = 0; j < 3; j++)
        for (let k = 0; k < 2; k++) expect(first[(i * 3 + j) * 2 + k]).toBe(code(i, j, k));
  });

  it.each([false, true])("probabilities land on their own voxels (tta %s, with padding)", async (tta) => {
    // Every window says the same thing about a voxel, so whatever the weights, p0 = sigmoid(value/1e4).
    const { model } = fakeModel((v) => v / 1e4);
    const vol = codedVolume([9, 3, 6]); // y (3) and z (6) are smaller than the patch: padded
    const out = await slidingWindowInference(model, vol, {
      patch: [4, 5, 8],
      overlap: 0.5,
      mode: "gaussian",
      tta,
      swBatchSize: 2,
    });
    expect(out.shape).toEqual([2, 9, 3, 6]);
    const n = 9 * 3 * 6;
    for (let v = 0; v < n; v++) {
      expect(out.data[v]).toBeCloseTo(sigmoid(vol.data[v]! / 1e4), 6);
      expect(out.data[v]! + out.data[n + v]!).toBeCloseTo(1, 6);
    }
  });

  it("channelsFirst/channelsLast only relabel the shape of image.npy-style arrays", () => {
    const data = new Float32Array(24);
    expect(channelsFirst(data, [2, 3, 4], 3).shape).toEqual([1, 2, 3, 4]);
    expect(channelsFirst(data, [2, 3, 4], 2).shape).toEqual([4, 2, 3]);
    expect(channelsLast({ data, shape: [4, 2, 3] }).shape).toEqual([2, 3, 4]);
    expect(() => channelsFirst(data, [2, 3, 4], 1)).toThrow(RangeError);
  });
});

describe("blending (rule 4)", () => {
  // Windows that disagree: each answers a constant logit from its own origin, so the result
  // at a voxel is the weighted mean, over the windows covering it, of sigmoid(logit(window)).
  // The expectation below is written directly from the spec with explicit padding, in doubles.
  function expected(
    spatial: number[],
    opts: SlidingWindowOptions,
    logit: (origin: number) => number,
  ): number[] {
    const pads = padWidths(spatial, opts.patch);
    const padded = spatial.map((n, a) => n + pads[a]![0] + pads[a]![1]);
    const weight = importanceMap(opts.patch, opts.mode);
    const [px = 1, py = 1] = opts.patch;
    const [nx = 1, ny = 1] = spatial;
    const num = new Float64Array(nx * ny);
    const den = new Float64Array(nx * ny);
    for (const [sx = 0, sy = 0] of windowGrid(padded, opts.patch, opts.overlap)) {
      // The window's first real voxel (smallest code) is its corner clipped to the volume.
      const ox = Math.max(sx - pads[0]![0], 0);
      const oy = Math.max(sy - pads[1]![0], 0);
      const p = sigmoid(logit(code(ox, oy, 0)));
      for (let i = 0; i < px; i++)
        for (let j = 0; j < py; j++) {
          const x = sx + i - pads[0]![0];
          const y = sy + j - pads[1]![0];
          if (x < 0 || x >= nx || y < 0 || y >= ny) continue;
          const w = weight[i * py + j]!;
          num[x + nx * y]! += w * p;
          den[x + nx * y]! += w;
        }
    }
    return Array.from(num, (v, i) => v / den[i]!);
  }

  it.each(["constant", "gaussian", "hann"] as const)("2D, padded y, %s weights", async (mode) => {
    const logit = (origin: number): number => ((origin * 7919) % 13) / 3 - 2;
    const { model } = fakeModel((_v, origin) => logit(origin), 2);
    const opts: SlidingWindowOptions = { patch: [6, 8], overlap: 0.5, mode, swBatchSize: 4 };
    const out = await slidingWindowInference(model, codedVolume([23, 5]), opts);
    const want = expected([23, 5], opts, logit);
    let worst = 0;
    want.forEach((v, i) => {
      worst = Math.max(worst, Math.abs(out.data[i]! - v));
    });
    expect(worst).toBeLessThan(1e-6);
    expect(new Set(out.data.slice(0, 23 * 5)).size).toBeGreaterThan(5); // the windows really disagreed
  });
});

describe("batching and TTA bookkeeping", () => {
  const vol = codedVolume([20, 12, 9]);
  const base = { patch: [8, 8, 8], overlap: 0.5, mode: "hann" } as const;
  const logit = (v: number, origin: number): number => Math.sin(v / 97) + origin / 5000;

  it("results do not depend on swBatchSize; calls carry at most swBatchSize windows", async () => {
    // windows: x 0,4,8,12 (4) · y 0,4 (2) · z 0,1 (2) = 16
    const results: Float32Array[] = [];
    for (const sw of [1, 3, 16, 100]) {
      const { model, calls } = fakeModel(logit);
      const out = await slidingWindowInference(model, vol, { ...base, swBatchSize: sw });
      results.push(out.data);
      expect(calls.map((d) => d[0])).toEqual(
        Array.from({ length: Math.ceil(16 / sw) }, (_, i) => Math.min(sw, 16 - i * sw)),
      );
    }
    for (const r of results.slice(1)) expect(r).toEqual(results[0]);
  });

  it("TTA runs every window under all 8 flips, flipped inputs are the mirrored window", async () => {
    const { model, calls, inputs } = fakeModel(logit);
    await slidingWindowInference(model, vol, { ...base, swBatchSize: 16, tta: true });
    expect(calls.length).toBe(8);
    // Subset order: {}, {x}, {y}, {z}, ...; with {x} the voxel at i comes from 7 − i.
    const plain = inputs[0]!;
    const flipX = inputs[1]!;
    for (let i = 0; i < 8; i++)
      for (let t = 0; t < 64; t++) expect(flipX[i * 64 + t]).toBe(plain[(7 - i) * 64 + t]);
    const flipZ = inputs[3]!;
    for (let r = 0; r < 64; r++)
      for (let k = 0; k < 8; k++) expect(flipZ[r * 8 + k]).toBe(plain[r * 8 + 7 - k]);
  });

  it("a flip-equivariant model gives the same result with and without TTA", async () => {
    // The fake's logit depends on the voxel value only (not the window), so flipping the window
    // and flipping the answer back is an identity: TTA must not change anything.
    const pointwise = (v: number): number => Math.cos(v / 300);
    const plain = await slidingWindowInference(fakeModel(pointwise).model, vol, base);
    const tta = await slidingWindowInference(fakeModel(pointwise).model, vol, { ...base, tta: true });
    let worst = 0;
    plain.data.forEach((v, i) => {
      worst = Math.max(worst, Math.abs(v - tta.data[i]!));
    });
    expect(worst).toBeLessThan(1e-6);
  });

  it("reports progress per batch", async () => {
    const seen: string[] = [];
    await slidingWindowInference(fakeModel(logit).model, vol, {
      ...base,
      swBatchSize: 6,
      onProgress: (done, total) => seen.push(`${done}/${total}`),
    });
    expect(seen).toEqual(["6/16", "12/16", "16/16"]);
  });
});

describe("leaving the background out (omitBackground)", () => {
  const vol = codedVolume([11, 6, 5]); // smaller than the patch along y and z: padding
  const base = { patch: [6, 8, 8], overlap: 0.5, mode: "gaussian", swBatchSize: 3 } as const;

  /** A K-class model: logit c = sin(value·(c + 1)/97) + c·origin/5000. */
  function classesModel(k: number, withForeground = false) {
    const calls = { run: 0, foreground: 0 };
    const logits = (input: Float32Array, dims: readonly number[]) => {
      const [b = 0, , ...patch] = dims;
      const p = patch.reduce((a, c) => a * c, 1);
      const out = new Float32Array(b * k * p);
      for (let w = 0; w < b; w++) {
        let origin = Number.POSITIVE_INFINITY;
        for (let t = 0; t < p; t++) if (input[w * p + t]! > 0) origin = Math.min(origin, input[w * p + t]!);
        for (let c = 0; c < k; c++)
          for (let t = 0; t < p; t++)
            out[(w * k + c) * p + t] = Math.sin((input[w * p + t]! * (c + 1)) / 97) + (c * origin) / 5000;
      }
      return { data: out, dims: [b, k, ...patch], b, p };
    };
    const model: WindowModel = {
      source: `fake-${k}.onnx`,
      inputChannels: 1,
      spatialDims: 3,
      async run(input, dims) {
        calls.run++;
        const { data, dims: d } = logits(input, dims);
        return { data, dims: d };
      },
    };
    if (withForeground)
      // The class-1 probability as a model computes it: sigmoid of the logit difference.
      model.runForeground = async (input, dims) => {
        calls.foreground++;
        const { data, b, p } = logits(input, dims);
        const out = new Float32Array(b * p);
        for (let w = 0; w < b; w++)
          for (let t = 0; t < p; t++)
            out[w * p + t] = sigmoid(data[(2 * w + 1) * p + t]! - data[2 * w * p + t]!);
        return { data: out, dims: [b, 1, ...dims.slice(2)] };
      };
    return { model, calls };
  }

  it.each([
    [2, false],
    [2, true],
    [3, false],
    [3, true],
  ])("%i classes, TTA %s: classes 1..K−1 of the full result, the same bits", async (k, tta) => {
    const full = await slidingWindowInference(classesModel(k).model, vol, { ...base, tta });
    const kept = await slidingWindowInference(classesModel(k).model, vol, {
      ...base,
      tta,
      omitBackground: true,
    });
    const n = 11 * 6 * 5;
    expect(full.shape).toEqual([k, 11, 6, 5]);
    expect(kept.shape).toEqual([k - 1, 11, 6, 5]);
    expect(kept.data).toEqual(full.data.subarray(n));
  });

  it("a model with its own foreground output is asked for that alone", async () => {
    const full = await slidingWindowInference(classesModel(2).model, vol, { ...base, tta: true });
    const { model, calls } = classesModel(2, true);
    const kept = await slidingWindowInference(model, vol, { ...base, tta: true, omitBackground: true });
    expect(calls).toEqual({ run: 0, foreground: 8 }); // 3 windows (x 0, 3, 5), one batch, 8 flips
    expect(kept.shape).toEqual([1, 11, 6, 5]);
    let worst = 0;
    kept.data.forEach((v, i) => {
      worst = Math.max(worst, Math.abs(v - full.data[330 + i]!));
    });
    expect(worst).toBeLessThan(1e-6); // another sigmoid formula: rounding only
    // Without omitBackground the logits are used, whatever else the model offers.
    const again = classesModel(2, true);
    await slidingWindowInference(again.model, vol, base);
    expect(again.calls).toEqual({ run: 1, foreground: 0 });
  });

  it("needs two or more classes", async () => {
    const err = await slidingWindowInference(classesModel(1).model, vol, {
      ...base,
      omitBackground: true,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InferenceError);
    expect((err as Error).message).toBe(
      "fake-1.onnx: omitBackground needs a model with two or more classes; it has one",
    );
  });
});

describe("argmax", () => {
  it("picks the most probable class; ties go to the lowest", () => {
    // 3 classes × 4 voxels, channel-planar.
    const probs = {
      data: Float32Array.from([0.2, 0.5, 0.4, 0.1, 0.7, 0.5, 0.4, 0.2, 0.1, 0, 0.2, 0.7]),
      shape: [3, 4],
    };
    expect(Array.from(argmax(probs))).toEqual([1, 0, 0, 2]);
  });
});

describe("argument errors", () => {
  const { model } = fakeModel(() => 0);
  const vol = codedVolume([8, 8, 8]);
  const ok = { patch: [4, 4, 4], overlap: 0.5, mode: "hann" } as const;
  it.each([
    ["patch axes", { ...ok, patch: [4, 4] }, /patch \[4, 4\] must have 3/],
    ["overlap", { ...ok, overlap: 1 }, /overlap must be in \[0, 1\)/],
    ["mode", { ...ok, mode: "box" as unknown as "hann" }, /unknown weighting "box"/],
    ["batch", { ...ok, swBatchSize: 0 }, /swBatchSize must be an integer >= 1/],
  ])("%s", async (_name, opts, message) => {
    await expect(slidingWindowInference(model, vol, opts)).rejects.toThrow(message);
  });

  it("data length must match the shape", async () => {
    await expect(
      slidingWindowInference(model, { data: new Float32Array(10), shape: [1, 8, 8, 8] }, ok),
    ).rejects.toThrow(/volume data has 10 values/);
  });

  it("a model that changes the spatial size is refused, naming its file", async () => {
    const shrinking: WindowModel = {
      source: "shrink.onnx",
      inputChannels: null,
      spatialDims: null,
      run: async (_input, dims) => ({
        data: new Float32Array(dims[0]! * 2 * 8),
        dims: [dims[0]!, 2, 2, 2, 2],
      }),
    };
    const err = await slidingWindowInference(shrinking, vol, ok).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InferenceError);
    expect((err as Error).message).toMatch(/^shrink\.onnx: the model answered shape \[1, 2, 2, 2, 2\]/);
  });
});
