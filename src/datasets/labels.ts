// Label dictionaries come in two directions: MSD writes value → name ({"1": "spleen"}), nnU-Net v2
// writes name → value ({"spleen": 1}, or a list of values for a region). Both end up value → name.
import { isRecord, type Problems } from "./common.js";

/** MSD's `labels`: {"0": "background", "1": "left atrium"}. */
export function msdLabels(dict: unknown, file: string, problems: Problems): Record<string, string> {
  const out: Record<string, string> = {};
  if (dict === undefined) return out;
  if (!isRecord(dict)) {
    problems.add(file, `"labels" is not an object`);
    return out;
  }
  for (const [k, v] of Object.entries(dict)) {
    if (!/^\d+$/.test(k)) problems.add(file, `"labels" key ${JSON.stringify(k)} is not a label value`);
    else out[String(Number(k))] = String(v);
  }
  return out;
}

/** nnU-Net v2's `labels`: {"background": 0, "tumor": 1, "whole": [1, 2]}; lists are regions. */
export function nnunetLabels(
  dict: unknown,
  file: string,
  problems: Problems,
): { labels: Record<string, string>; regions: Record<string, number[]> } {
  const labels: Record<string, string> = {};
  const regions: Record<string, number[]> = {};
  if (!isRecord(dict)) {
    problems.add(file, `"labels" missing or not an object`);
    return { labels, regions };
  }
  for (const [name, v] of Object.entries(dict)) {
    if (typeof v === "number" && Number.isInteger(v) && v >= 0) {
      if (labels[String(v)] !== undefined)
        problems.add(file, `"labels": value ${v} named twice (${labels[String(v)]}, ${name})`);
      labels[String(v)] = name;
    } else if (Array.isArray(v) && v.every((x) => typeof x === "number" && Number.isInteger(x) && x >= 0)) {
      regions[name] = v as number[];
    } else {
      problems.add(
        file,
        `"labels": ${JSON.stringify(name)} has value ${JSON.stringify(v)}, expected a label value`,
      );
    }
  }
  return { labels, regions };
}
