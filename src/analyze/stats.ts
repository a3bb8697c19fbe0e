// Per-case statistics, pure: intensity statistics of one channel over the foreground, and the
// values, voxel counts, volumes and connected components of a label volume.
//
// Speed (a full-size case is ~11 M voxels, and a dataset has hundreds of cases): integer voxels
// are counted in a histogram instead of being copied and sorted, other values have just the
// ranks they need selected (order-statistics.ts); integer labels and masks are scanned only where
// they are non-zero (sparse.ts); components are counted over runs of voxels.
import { meanStd, percentileSorted } from "../imaging/normalize.js";
import { percentileRanks, selectRanks } from "../imaging/order-statistics.js";
import type { VoxelArray } from "../imaging/types.js";
import { labelComponents } from "../metrics/components.js";
import { isIntegerArray, MASK_BLOCK, occupiedBlocks } from "./sparse.js";
import type { ChannelStatistics, LabelStatistics } from "./types.js";

/**
 * Exact statistics of the finite voxels of `data` where `mask` is non-zero (every finite voxel when
 * there is no mask), in float64: mean, population std (ddof 0), min, max and the 0.5 / 50 / 99.5
 * percentiles by numpy's default ("linear") rule. Non-finite voxels are counted over the whole
 * channel and left out, so one bad voxel does not turn every number into NaN.
 */
export function channelStatistics(
  data: ArrayLike<number>,
  mask: ArrayLike<number> | null,
  channel: number,
): ChannelStatistics {
  const range = smallIntegerRange(data);
  if (range) return histogramStatistics(data as SmallIntegerArray, range, mask, channel);
  let nonFinite = 0;
  let count = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (!Number.isFinite(v)) nonFinite++;
    else if (mask === null || mask[i] !== 0) count++;
  }
  const values = new Float64Array(count);
  let k = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (Number.isFinite(v) && (mask === null || mask[i] !== 0)) values[k++] = v;
  }
  const over = mask === null ? "all" : "foreground";
  if (count === 0) return emptyStatistics(channel, over, nonFinite);
  const { mean, std } = meanStd(values);
  const qs = [0.5, 50, 99.5];
  // Only the ranks read below are put in place (a full sort of a volume costs seconds).
  selectRanks(values, [0, count - 1, ...qs.flatMap((q) => percentileRanks(count, q))]);
  return {
    channel,
    over,
    count,
    mean,
    std,
    min: values[0]!,
    max: values[count - 1]!,
    p00_5: percentileSorted(values, qs[0]!),
    p50: percentileSorted(values, qs[1]!),
    p99_5: percentileSorted(values, qs[2]!),
    non_finite: nonFinite,
  };
}

function emptyStatistics(
  channel: number,
  over: ChannelStatistics["over"],
  nonFinite: number,
): ChannelStatistics {
  return {
    channel,
    over,
    count: 0,
    mean: null,
    std: null,
    min: null,
    max: null,
    p00_5: null,
    p50: null,
    p99_5: null,
    non_finite: nonFinite,
  };
}

/** Typed arrays of integers narrow enough to count in a histogram (every value finite). */
type SmallIntegerArray = Uint8Array | Int8Array | Uint16Array | Int16Array;

/** The histogram of such an array: `size` bins, value v in bin v + offset. */
interface IntegerRange {
  offset: number;
  size: number;
}

function smallIntegerRange(data: ArrayLike<number>): IntegerRange | null {
  if (data instanceof Uint8Array) return { offset: 0, size: 256 };
  if (data instanceof Int8Array) return { offset: 128, size: 256 };
  if (data instanceof Uint16Array) return { offset: 0, size: 65536 };
  if (data instanceof Int16Array) return { offset: 32768, size: 65536 };
  return null;
}

/**
 * Voxel counts per value (bin v + offset) of the voxels where `mask` is non-zero. An integer mask is
 * visited only in its blocks that hold a non-zero element.
 */
function maskedHistogram(
  data: SmallIntegerArray,
  range: IntegerRange,
  mask: ArrayLike<number>,
): Float64Array {
  const { offset } = range;
  const counts = new Float64Array(range.size);
  const n = data.length;
  if (isIntegerArray(mask) && mask.length === n) {
    for (const b of occupiedBlocks(mask, MASK_BLOCK)) {
      const end = Math.min(n, (b + 1) * MASK_BLOCK);
      for (let i = b * MASK_BLOCK; i < end; i++) if (mask[i] !== 0) counts[data[i]! + offset]!++;
    }
  } else for (let i = 0; i < n; i++) if (mask[i] !== 0) counts[data[i]! + offset]!++;
  return counts;
}

/**
 * Voxel counts per value (bin v + offset) of every voxel. With `rows` (the blocks of `row` voxels
 * that hold a non-zero value; every other voxel is 0), only those rows are visited.
 */
function fullHistogram(
  data: SmallIntegerArray,
  range: IntegerRange,
  rows: { list: Int32Array; row: number } | null,
): Float64Array {
  const { offset, size } = range;
  const n = data.length;
  // Four tables in turn: a run of one value (the background) would otherwise chain every
  // increment on the one before it through the same memory cell.
  const a = new Uint32Array(size);
  const b = new Uint32Array(size);
  const c = new Uint32Array(size);
  const d = new Uint32Array(size);
  const count = (from: number, to: number): void => {
    let i = from;
    for (const last = to - 3; i < last; i += 4) {
      a[data[i]! + offset]!++;
      b[data[i + 1]! + offset]!++;
      c[data[i + 2]! + offset]!++;
      d[data[i + 3]! + offset]!++;
    }
    for (; i < to; i++) a[data[i]! + offset]!++;
  };
  let visited = 0;
  if (rows === null) {
    count(0, n);
    visited = n;
  } else
    for (const r of rows.list) {
      const from = r * rows.row;
      const to = Math.min(n, from + rows.row);
      count(from, to);
      visited += to - from;
    }
  const counts = new Float64Array(size);
  for (let v = 0; v < size; v++) counts[v] = a[v]! + b[v]! + c[v]! + d[v]!;
  counts[offset]! += n - visited;
  return counts;
}

/**
 * `channelStatistics` of integer voxels from their histogram: the values sorted are the bins in
 * order, so the order statistics (min, max, percentiles) are exact; the sum is exact (integers
 * below 2^53), so the mean is the same number; the std differs from the per-voxel sum by rounding.
 */
function histogramStatistics(
  data: SmallIntegerArray,
  range: IntegerRange,
  mask: ArrayLike<number> | null,
  channel: number,
): ChannelStatistics {
  const counts = mask === null ? fullHistogram(data, range, null) : maskedHistogram(data, range, mask);
  const { offset, size } = range;
  const over = mask === null ? "all" : "foreground";
  let count = 0;
  let sum = 0;
  let lo = -1;
  let hi = -1;
  for (let b = 0; b < size; b++) {
    const n = counts[b]!;
    if (n === 0) continue;
    if (lo < 0) lo = b;
    hi = b;
    count += n;
    sum += n * (b - offset);
  }
  if (count === 0) return emptyStatistics(channel, over, 0);
  const mean = sum / count;
  let sq = 0;
  for (let b = lo; b <= hi; b++) {
    const n = counts[b]!;
    if (n === 0) continue;
    const d = b - offset - mean;
    sq += n * d * d;
  }
  // The k-th smallest value (0-based): the bin where the running count passes k.
  const valueAt = (k: number): number => {
    let seen = 0;
    for (let b = lo; b <= hi; b++) {
      seen += counts[b]!;
      if (seen > k) return b - offset;
    }
    return hi - offset;
  };
  // percentileSorted reads the two sorted values around rank (n - 1) q / 100: hand it just those.
  const percentile = (q: number): number => {
    const [k, next] = percentileRanks(count, q);
    const around: { length: number; [rank: number]: number } = { length: count };
    around[k] = valueAt(k);
    around[next] = valueAt(next);
    return percentileSorted(around, q);
  };
  return {
    channel,
    over,
    count,
    mean,
    std: Math.sqrt(sq / count),
    min: lo - offset,
    max: hi - offset,
    p00_5: percentile(0.5),
    p50: percentile(50),
    p99_5: percentile(99.5),
    non_finite: 0,
  };
}

/**
 * The values of `data` where `mask` is non-zero, in memory order (`count` of them, as many as the
 * mask selects). An integer mask is visited only in its blocks that hold a non-zero element.
 */
export function maskedValues(data: ArrayLike<number>, mask: ArrayLike<number>, count: number): Float64Array {
  const out = new Float64Array(count);
  const n = data.length;
  let k = 0;
  if (isIntegerArray(mask) && mask.length === n) {
    for (const b of occupiedBlocks(mask, MASK_BLOCK)) {
      const end = Math.min(n, (b + 1) * MASK_BLOCK);
      for (let i = b * MASK_BLOCK; i < end; i++) if (mask[i] !== 0) out[k++] = data[i]!;
    }
  } else for (let i = 0; i < n; i++) if (mask[i] !== 0) out[k++] = data[i]!;
  if (k !== count) throw new Error(`maskedValues: the mask selects ${k} voxels, expected ${count}`);
  return out;
}

/** What a label volume holds. */
export interface LabelContent {
  labels: LabelStatistics[];
  /** Voxels whose value is not a finite integer (they are not counted under any label). */
  notInteger: number;
  /** Voxels with a non-zero integer value, and the components of their union. */
  foregroundVoxels: number;
  foregroundComponents: number;
}

/**
 * Label values with their voxel counts, volumes (count × the product of the voxel spacing, mm³) and
 * connected components (face connectivity, scipy.ndimage.label's default), ascending by value.
 */
export function labelContent(data: VoxelArray, shape: number[], spacing: number[]): LabelContent {
  const voxelVolume = spacing.reduce((a, b) => a * b, 1);
  const fits =
    (shape.length === 2 || shape.length === 3) &&
    shape.every((s) => Number.isInteger(s) && s >= 1) &&
    shape.reduce((a, b) => a * b, 1) === data.length;
  // The rows (along the first axis) that hold a non-zero value; every other voxel is background.
  const rows =
    fits && isIntegerArray(data) ? { list: occupiedBlocks(data, shape[0]!), row: shape[0]! } : null;
  const counts = new Map<number, number>();
  let notInteger = 0;
  const range = smallIntegerRange(data);
  if (range) {
    const bins = fullHistogram(data as SmallIntegerArray, range, rows);
    bins.forEach((n, b) => {
      if (n > 0) counts.set(b - range.offset, n);
    });
  } else {
    // Small non-negative integers (the usual case) are counted in an array; anything else in a map.
    const small = new Float64Array(256);
    for (let i = 0; i < data.length; i++) {
      const v = data[i]!;
      if (v >= 0 && v < 256 && v === Math.floor(v)) small[v]!++;
      else if (Number.isInteger(v)) counts.set(v, (counts.get(v) ?? 0) + 1);
      else notInteger++;
    }
    small.forEach((n, v) => {
      if (n > 0) counts.set(v, n);
    });
  }
  const values = [...counts.keys()].sort((a, b) => a - b);
  const components = (value: number | null): number => {
    if (rows) return runComponents(data, shape, value, rows.list);
    const mask = new Uint8Array(data.length);
    for (let i = 0; i < data.length; i++) {
      const v = data[i]!;
      if (value === null ? v !== 0 && Number.isInteger(v) : v === value) mask[i] = 1;
    }
    // labelComponents also reports a shape that does not fit the data.
    return fits ? runComponents(mask, shape, null, null) : labelComponents(mask, shape).count;
  };
  const labels = values.map((value) => ({
    value,
    voxels: counts.get(value)!,
    volume_mm3: counts.get(value)! * voxelVolume,
    components: value === 0 ? 0 : components(value),
  }));
  const nonZero = labels.filter((l) => l.value !== 0);
  const foregroundVoxels = nonZero.reduce((s, l) => s + l.voxels, 0);
  // The foreground is the union of the non-zero values' masks: with one value, that value's mask.
  const foregroundComponents =
    foregroundVoxels === 0 ? 0 : nonZero.length === 1 ? nonZero[0]!.components : components(null);
  return { labels, notInteger, foregroundVoxels, foregroundComponents };
}

/**
 * Counts the face-connected components (scipy.ndimage.label's default structure) of the voxels of
 * a 2D or 3D grid (first axis fastest) equal to `value`, or non-zero when `value` is null. Works on
 * runs along the first axis: a run joins the overlapping runs of the row before it (y - 1) and of
 * the same row one slice down (z - 1), in a union-find over runs; components = runs - merges.
 * `rows`, when given, lists the only rows that can hold such voxels (the others are all zero, so
 * `value` must not be 0). Memory grows with the number of runs, not of voxels.
 */
export function runComponents(
  data: ArrayLike<number>,
  shape: readonly number[],
  value: number | null,
  rows: Int32Array | null,
): number {
  if (rows && value === 0) throw new Error("runComponents: occupied rows cannot find value 0");
  const nx = shape[0]!;
  const ny = shape[1]!;
  const nz = shape.length === 3 ? shape[2]! : 1;
  const nRows = ny * nz;
  const rowStart = new Int32Array(nRows + 1);
  let starts: Int32Array = new Int32Array(1 << 12);
  let ends: Int32Array = new Int32Array(1 << 12);
  let runs = 0;
  let next = 0; // the next entry of `rows`
  for (let r = 0; r < nRows; r++) {
    rowStart[r] = runs;
    if (rows) {
      if (next === rows.length || rows[next] !== r) continue;
      next++;
    }
    const base = r * nx;
    const end = base + nx;
    let i = base;
    while (i < end) {
      if (value === null) while (i < end && data[i] === 0) i++;
      else while (i < end && data[i] !== value) i++;
      if (i === end) break;
      const s = i;
      if (value === null) while (i < end && data[i] !== 0) i++;
      else while (i < end && data[i] === value) i++;
      if (runs === starts.length) {
        starts = grow(starts);
        ends = grow(ends);
      }
      starts[runs] = s - base;
      ends[runs] = i - base;
      runs++;
    }
  }
  rowStart[nRows] = runs;

  const parent = new Int32Array(runs);
  for (let k = 0; k < runs; k++) parent[k] = k;
  const find = (a: number): number => {
    while (parent[a] !== a) {
      const up = parent[parent[a]!]!;
      parent[a] = up;
      a = up;
    }
    return a;
  };
  let merges = 0;
  // Unions every run of one row with the runs of another row it overlaps (both sorted by x).
  const join = (a0: number, a1: number, b0: number, b1: number): void => {
    let i = a0;
    let j = b0;
    while (i < a1 && j < b1) {
      if (starts[i]! < ends[j]! && starts[j]! < ends[i]!) {
        const ri = find(i);
        const rj = find(j);
        if (ri !== rj) {
          if (ri < rj) parent[rj] = ri;
          else parent[ri] = rj;
          merges++;
        }
      }
      if (ends[i]! < ends[j]!) i++;
      else j++;
    }
  };
  for (let r = 0; r < nRows; r++) {
    const a0 = rowStart[r]!;
    const a1 = rowStart[r + 1]!;
    if (a0 === a1) continue;
    if (r % ny !== 0) join(a0, a1, rowStart[r - 1]!, rowStart[r]!);
    if (r >= ny) join(a0, a1, rowStart[r - ny]!, rowStart[r - ny + 1]!);
  }
  return runs - merges;
}

function grow(a: Int32Array): Int32Array {
  const out = new Int32Array(a.length * 2);
  out.set(a);
  return out;
}

/** The foreground mask of a label: 1 where the value is a non-zero integer. */
export function foregroundMask(data: VoxelArray): Uint8Array {
  const mask = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v !== 0 && Number.isInteger(v)) mask[i] = 1;
  }
  return mask;
}
