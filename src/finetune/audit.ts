// The dataset audit: every case's image and label read once, before anything is trained, for
// what a finetune run must not silently get wrong (grids that disagree, orientations that differ
// from case to case, label values no mapping covers, a target label no volume contains) and for
// the record (intensity range, foreground volume per case).
import { axisCodes, ioOrientation, readImage } from "../imaging/index.js";
import { FinetuneInputError } from "./errors.js";
import type { Mapping, SplitCases } from "./inputs.js";

export interface CaseAudit {
  id: string;
  role: "train" | "val";
  shape: number[];
  spacing: number[];
  /** Axis codes of a NIfTI image ("RAS"); "none" for a `.npy` slice, which has no placement. */
  orientation: string;
  label_values: number[];
  intensity: { min: number; max: number };
  /** Voxels (pixels) whose local label is mapped (> 0), and their volume in millilitres (null for 2D). */
  foreground_voxels: number;
  foreground_ml: number | null;
}

export interface DatasetAudit {
  cases: CaseAudit[];
  /** Every case's label has its image's shape (checked: a mismatch is an input error). */
  shapes_consistent: boolean;
  /** Every case has the same shape. */
  same_shape: boolean;
  orientations: string[];
  orientation_consistent: boolean;
  label_values: number[];
  intensity: { min: number; max: number };
  /** Over the cases; null for 2D slices, which have an area, not a volume. */
  foreground_ml: { min: number; median: number; max: number } | null;
  /** Validation cases without any mapped label: their Dice is undefined (left out, noted). */
  val_without_foreground: string[];
}

/** Reads every case (first image channel + label) and checks it against the mapping. */
export async function auditDataset(split: SplitCases, mapping: Mapping): Promise<DatasetAudit> {
  const mapped = new Set(mapping.map(([local]) => local));
  const rows: CaseAudit[] = [];
  const seen = new Set<number>();
  const all = [
    ...split.val.map((c) => ({ c, role: "val" as const })),
    ...split.train.map((c) => ({ c, role: "train" as const })),
  ];
  for (const { c, role } of all) {
    const imagePath = c.image[0] as string;
    const labelPath = c.label as string;
    const image = await readImage(imagePath);
    const label = await readImage(labelPath);
    const dims = Math.min(3, label.shape.length);
    const spatial = image.shape.slice(0, dims);
    const lshape = label.shape.slice(0, spatial.length);
    if (lshape.join(",") !== spatial.join(","))
      throw new FinetuneInputError(
        `${labelPath}: label shape [${label.shape}] differs from its image's [${image.shape}]`,
      );
    let min = Infinity;
    let max = -Infinity;
    const n = spatial.reduce((a, b) => a * b, 1);
    for (let i = 0; i < n; i++) {
      // the first channel: voxels are stored first axis fastest, channel last
      const v = image.data[i] as number;
      if (v < min) min = v;
      if (v > max) max = v;
    }
    const counts = new Map<number, number>();
    for (let i = 0; i < n; i++) {
      const v = label.data[i] as number;
      counts.set(v, (counts.get(v) ?? 0) + 1);
    }
    const values = [...counts.keys()].sort((a, b) => a - b);
    for (const v of values) {
      if (!Number.isInteger(v) || v < 0)
        throw new FinetuneInputError(`${labelPath}: label value ${v} is not a class index`);
      if (v !== 0 && !mapped.has(v))
        throw new FinetuneInputError(
          `${labelPath}: local label ${v} maps to no model class (mapping ${JSON.stringify(mapping)}); add it to label_mapping or relabel it 0`,
        );
      seen.add(v);
    }
    const fg = values.filter((v) => v !== 0).reduce((a, v) => a + (counts.get(v) ?? 0), 0);
    const voxelMl = spatial.length === 3 ? label.spacing.slice(0, 3).reduce((a, b) => a * b, 1) / 1000 : null;
    rows.push({
      id: c.id,
      role,
      shape: spatial,
      spacing: image.spacing.slice(0, spatial.length),
      orientation: imagePath.toLowerCase().endsWith(".npy")
        ? "none"
        : axisCodes(ioOrientation(image.affine)).join(""),
      label_values: values,
      intensity: { min, max },
      foreground_voxels: fg,
      foreground_ml: voxelMl === null ? null : fg * voxelMl,
    });
  }
  const absent = [...mapped].filter((v) => !seen.has(v));
  if (absent.length)
    throw new FinetuneInputError(
      `local label(s) ${absent.join(", ")} of the mapping appear in none of the ${rows.length} label volumes (values seen: ${[...seen].sort((a, b) => a - b).join(", ")})`,
    );
  const orientations = [...new Set(rows.map((r) => r.orientation))].sort();
  const ml = rows.map((r) => r.foreground_ml).filter((v): v is number => v !== null);
  ml.sort((a, b) => a - b);
  const mid = ml.length >> 1;
  return {
    cases: rows,
    shapes_consistent: true,
    same_shape: new Set(rows.map((r) => r.shape.join(","))).size === 1,
    orientations,
    orientation_consistent: orientations.length === 1,
    label_values: [...seen].sort((a, b) => a - b),
    intensity: {
      min: Math.min(...rows.map((r) => r.intensity.min)),
      max: Math.max(...rows.map((r) => r.intensity.max)),
    },
    foreground_ml: ml.length
      ? {
          min: ml[0] as number,
          median: ml.length % 2 ? (ml[mid] as number) : ((ml[mid - 1] as number) + (ml[mid] as number)) / 2,
          max: ml[ml.length - 1] as number,
        }
      : null,
    val_without_foreground: rows
      .filter((r) => r.role === "val" && r.foreground_voxels === 0)
      .map((r) => r.id),
  };
}
