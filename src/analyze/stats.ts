// Per-case statistics, pure: intensity statistics of one channel over the foreground, and the
// values, voxel counts, volumes and connected components of a label volume.
import { meanStd, percentileSorted } from "../imaging/normalize.js";
import type { VoxelArray } from "../imaging/types.js";
import { labelComponents } from "../metrics/components.js";
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
  if (count === 0)
    return {
      channel,
      over,
      count,
      mean: null,
      std: null,
      min: null,
      max: null,
      p00_5: null,
      p50: null,
      p99_5: null,
      non_finite: nonFinite,
    };
  const { mean, std } = meanStd(values);
  values.sort();
  return {
    channel,
    over,
    count,
    mean,
    std,
    min: values[0]!,
    max: values[count - 1]!,
    p00_5: percentileSorted(values, 0.5),
    p50: percentileSorted(values, 50),
    p99_5: percentileSorted(values, 99.5),
    non_finite: nonFinite,
  };
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
  // Small non-negative integers (the usual case) are counted in an array; anything else in a map.
  const small = new Float64Array(256);
  const other = new Map<number, number>();
  let notInteger = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v >= 0 && v < 256 && v === Math.floor(v)) small[v]!++;
    else if (Number.isInteger(v)) other.set(v, (other.get(v) ?? 0) + 1);
    else notInteger++;
  }
  const counts = new Map<number, number>(other);
  small.forEach((n, v) => {
    if (n > 0) counts.set(v, n);
  });
  const values = [...counts.keys()].sort((a, b) => a - b);
  const labels = values.map((value) => ({
    value,
    voxels: counts.get(value)!,
    volume_mm3: counts.get(value)! * voxelVolume,
    components: value === 0 ? 0 : componentCount(data, shape, (v) => v === value),
  }));
  const foregroundVoxels = labels.reduce((s, l) => s + (l.value === 0 ? 0 : l.voxels), 0);
  const foregroundComponents =
    foregroundVoxels === 0 ? 0 : componentCount(data, shape, (v) => v !== 0 && Number.isInteger(v));
  return { labels, notInteger, foregroundVoxels, foregroundComponents };
}

function componentCount(data: VoxelArray, shape: number[], inside: (v: number) => boolean): number {
  const mask = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) if (inside(data[i]!)) mask[i] = 1;
  return labelComponents(mask, shape).count;
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
