// The finetune dataset on the pretrained model's grid: each case through the package's own
// plan.json (prepareCase: the preprocess skill's reorientation, resampling and normalization),
// its label values remapped local → model class, written as the trainer reads them.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { DatasetCase } from "../datasets/types.js";
import { writeNpy } from "../imaging/npy.js";
import type { PreprocessPlan } from "../preprocess/index.js";
import { prepareCase } from "../preprocess/index.js";
import type { Mapping } from "./inputs.js";

export interface PreparedCase {
  id: string;
  image: string;
  label: string;
  /** Voxels per model class on the resampled grid, after remapping. */
  label_voxels: Record<string, number>;
  resampled_shape: number[];
}

/** A 256-entry lookup local value → model class (unmapped values stay 0; the audit refuses them). */
export function remapTable(mapping: Mapping): Uint8Array {
  const lut = new Uint8Array(256);
  for (const [local, cls] of mapping) lut[local] = cls;
  return lut;
}

export async function prepareCases(
  cases: DatasetCase[],
  plan: PreprocessPlan,
  mapping: Mapping,
  dataDir: string,
): Promise<PreparedCase[]> {
  const lut = remapTable(mapping);
  const out: PreparedCase[] = [];
  for (const c of cases) {
    const p = await prepareCase({
      id: c.id,
      image: c.image,
      label: c.label,
      spatialDims: plan.spatial_dims,
      targetSpacing: plan.target_spacing,
      normalization: plan.normalization,
      channels: plan.dataset.channels.length,
      labelValues: [0, ...mapping.map(([local]) => local)],
    });
    const shape = p.properties.resampled_shape;
    const label = p.label as Uint8Array;
    const voxels: Record<string, number> = {};
    for (let i = 0; i < label.length; i++) {
      const k = lut[label[i] as number] as number;
      label[i] = k;
      voxels[String(k)] = (voxels[String(k)] ?? 0) + 1;
    }
    const dir = join(dataDir, c.id);
    await mkdir(dir, { recursive: true });
    const image = join(dir, "image.npy");
    const labelPath = join(dir, "label.npy");
    await writeNpy(image, {
      data: p.image,
      dtype: "float32",
      shape: [...shape, plan.dataset.channels.length],
      fortranOrder: true,
    });
    await writeNpy(labelPath, { data: label, dtype: "uint8", shape, fortranOrder: true });
    out.push({ id: c.id, image, label: labelPath, label_voxels: voxels, resampled_shape: shape });
  }
  return out;
}
