// Label values in a mask, and the checks that make a file usable as a label map.

import type { VoxelArray } from "../imaging/types.js";
import { UsageError } from "../manifest/diagnostics.js";

/**
 * Sorted distinct nonzero values. Label maps are often stored as float32; integral values
 * are fine, anything else (probabilities, NaN) means the file is not a label map.
 */
export function labelValues(data: VoxelArray, file: string): number[] {
  const seen = new Set<number>();
  // Label maps are long runs of one value: checking against the last value first skips the Set.
  let last = 0;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    if (v === last) continue;
    last = v;
    if (v !== 0 && !seen.has(v)) {
      if (!Number.isInteger(v))
        throw new UsageError(`${file}: voxel value ${v} is not an integer label: expected a label map`);
      seen.add(v);
    }
  }
  return [...seen].sort((a, b) => a - b);
}

/** Parses "1,2" (labels) or "0.5,1,2" (tolerances); `what` names the flag in errors. */
export function parseNumberList(text: string, flag: string, kind: "label" | "tolerance"): number[] {
  const parts = text.split(",").map((s) => s.trim());
  const values = parts.map(Number);
  const bad = parts.filter((p, i) => {
    const v = values[i]!;
    if (p === "" || !Number.isFinite(v)) return true;
    return kind === "label" ? !Number.isInteger(v) || v < 1 : v <= 0;
  });
  if (bad.length)
    throw new UsageError(
      `${flag} ${text}: expected comma-separated ${kind === "label" ? "positive integer labels, e.g. 1,2" : "positive distances in mm, e.g. 0.5,1,2"}`,
    );
  return [...new Set(values)].sort((a, b) => a - b);
}
