// Window placement, padding and importance weights for sliding-window inference.
// These follow rules 1-3 of the shared specification, the module docstring of
// src/py/medpipe/sliding_window.py, number for number (IEEE double, as written there),
// so that the TypeScript and Python paths visit the same windows with the same weights.

/** How each window's voxels are weighted when overlapping windows are blended. */
export type WeightMode = "constant" | "gaussian" | "hann";

export const WEIGHT_MODES: readonly WeightMode[] = ["constant", "gaussian", "hann"];

/** Gaussian sigma as a fraction of the patch length (rule 3). */
export const GAUSSIAN_SIGMA_SCALE = 1 / 8;
/** Gaussian weights are floored here so a voxel seen only by a window's tail keeps a usable weight. */
export const GAUSSIAN_FLOOR = 1e-3;

export function isWeightMode(value: unknown): value is WeightMode {
  return typeof value === "string" && (WEIGHT_MODES as readonly string[]).includes(value);
}

function checkOverlap(overlap: number): void {
  if (!(overlap >= 0 && overlap < 1)) throw new RangeError(`overlap must be in [0, 1), got ${overlap}`);
}

function checkLength(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 1)
    throw new RangeError(`${name} must be an integer >= 1, got ${value}`);
}

/**
 * Start indices along one axis of (padded) size `size` (rule 2):
 * step = max(1, trunc(P·(1−o))); n = 1 when S <= P, else ceil((S−P)/step) + 1;
 * start_i = min(i·step, S−P). The last window is pulled back to end at the border.
 */
export function windowStarts(size: number, patch: number, overlap: number): number[] {
  checkOverlap(overlap);
  checkLength("size", size);
  checkLength("patch", patch);
  if (size <= patch) return [0];
  const step = Math.max(1, Math.trunc(patch * (1 - overlap)));
  const n = Math.ceil((size - patch) / step) + 1;
  const starts = new Array<number>(n);
  for (let i = 0; i < n; i++) starts[i] = Math.min(i * step, size - patch);
  return starts;
}

/** Every window's start tuple over a (padded) spatial shape, in C order (last axis fastest). */
export function windowGrid(shape: readonly number[], patch: readonly number[], overlap: number): number[][] {
  if (shape.length !== patch.length)
    throw new RangeError(`patch has ${patch.length} axes but the shape has ${shape.length}`);
  let grid: number[][] = [[]];
  shape.forEach((size, a) => {
    const starts = windowStarts(size, patch[a]!, overlap);
    // Appending the new axis innermost keeps the product in C order.
    grid = grid.flatMap((prefix) => starts.map((s) => [...prefix, s]));
  });
  return grid;
}

/** [before, after] zero padding per axis (rule 1): only axes smaller than the patch; the odd voxel goes after. */
export function padWidths(shape: readonly number[], patch: readonly number[]): [number, number][] {
  if (shape.length !== patch.length)
    throw new RangeError(`patch has ${patch.length} axes but the shape has ${shape.length}`);
  return shape.map((size, a) => {
    const total = Math.max(patch[a]! - size, 0);
    const before = Math.floor(total / 2);
    return [before, total - before];
  });
}

/** The 1-D weight profile of rule 3 along an axis of length `length`, in float64, before normalisation. */
export function weightProfile(length: number, mode: WeightMode): Float64Array {
  checkLength("patch", length);
  const w = new Float64Array(length);
  if (mode === "constant") return w.fill(1);
  if (mode === "gaussian") {
    const c = (length - 1) / 2;
    const sigma = length * GAUSSIAN_SIGMA_SCALE;
    // Squares as products: numpy's `** 2` is a correctly rounded x·x, so this matches bit for bit.
    for (let i = 0; i < length; i++) w[i] = Math.exp(-((i - c) * (i - c)) / (2 * (sigma * sigma)));
    return w;
  }
  if (mode === "hann") {
    // The symmetric Hann window of length P+2 without its two zero end points: every weight > 0.
    for (let i = 0; i < length; i++) w[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * (i + 1)) / (length + 1));
    return w;
  }
  throw new RangeError(
    `unknown weighting ${JSON.stringify(mode)}: expected one of ${WEIGHT_MODES.join(", ")}`,
  );
}

/**
 * The patch-sized weight map of rule 3 as float32, flat in **C order** (last patch axis
 * fastest) — the order of one window of an ONNX/torch tensor (N, C, *patch), which is
 * where the map is applied; it equals numpy's `importance_map(patch, mode).ravel()`.
 * Products are taken in the same order as numpy's nested `multiply.outer` (first axis
 * first), so the float64 values match before the cast.
 */
export function importanceMap(patch: readonly number[], mode: WeightMode): Float32Array {
  let w = Float64Array.of(1);
  for (const length of patch) {
    const profile = weightProfile(length, mode);
    const next = new Float64Array(w.length * length);
    for (let i = 0; i < w.length; i++)
      for (let j = 0; j < length; j++) next[i * length + j] = w[i]! * profile[j]!;
    w = next;
  }
  if (mode === "gaussian") {
    let peak = 0;
    for (const v of w) peak = Math.max(peak, v);
    for (let i = 0; i < w.length; i++) w[i] = Math.max(w[i]! / peak, GAUSSIAN_FLOOR);
  }
  return Float32Array.from(w);
}

/**
 * The importance map of rule 3 as its factors, for code that wants a weight without storing the
 * patch-sized map: window voxel (i, j, k) of a patch lifted to three axes (missing axes have
 * the profile [1]) weighs `weightAt(f, i, j, k)`, the same float32 as importanceMap's entry,
 * since it repeats importanceMap's float64 operations in the same order: (a_i·b_j)·c_k, then for
 * gaussian the division by the peak and the floor. The gaussian peak is the product of the
 * profile maxima: rounding is monotonic and every factor is positive, so no other product
 * rounds higher.
 */
export interface WeightFactors {
  profiles: [Float64Array, Float64Array, Float64Array];
  /** The value the products are divided by before the floor (gaussian), or null. */
  peak: number | null;
}

export function weightFactors(patch: readonly number[], mode: WeightMode): WeightFactors {
  if (patch.length < 1 || patch.length > 3)
    throw new RangeError(`patch must have 1-3 axes, got ${patch.length}`);
  const one = Float64Array.of(1);
  const profiles: [Float64Array, Float64Array, Float64Array] = [
    weightProfile(patch[0]!, mode),
    patch.length > 1 ? weightProfile(patch[1]!, mode) : one,
    patch.length > 2 ? weightProfile(patch[2]!, mode) : one,
  ];
  if (mode !== "gaussian") return { profiles, peak: null };
  const [a, b, c] = profiles.map((p) => Math.max(...p)) as [number, number, number];
  return { profiles, peak: a * b * c };
}

/** importanceMap's entry at window voxel (i, j, k), from its factors (same bits). */
export function weightAt(f: WeightFactors, i: number, j: number, k: number): number {
  const [a, b, c] = f.profiles;
  const w = a[i]! * b[j]! * c[k]!;
  return Math.fround(f.peak === null ? w : Math.max(w / f.peak, GAUSSIAN_FLOOR));
}

/**
 * All 2^d subsets of the `d` spatial axes (as spatial axis indices 0..d-1) for flip TTA,
 * in the order of the Python side (by size, then lexicographic; the empty set first).
 * The order only matters for float rounding of the TTA sum, but we keep it identical.
 */
export function flipSubsets(d: number): number[][] {
  const out: number[][] = [];
  const combos = (from: number, size: number, prefix: number[]): void => {
    if (prefix.length === size) {
      out.push(prefix);
      return;
    }
    for (let a = from; a < d; a++) combos(a + 1, size, [...prefix, a]);
  };
  for (let size = 0; size <= d; size++) combos(0, size, []);
  return out;
}
