// The preprocess skill: plan.json (+ optionally another dataset) → data/ with one folder per
// case (image.npy, label.npy, properties.json) and dataset.json; one progress event per case.
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { preprocessDataset } from "../../../dist/preprocess/index.js";
import { runSkill } from "../../../dist/skill-kit/index.js";

await runSkill(fileURLToPath(new URL("../skill_manifest.yaml", import.meta.url)), async (ctx) => {
  const { plan, dataset, workers } = ctx.inputs;
  const result = await preprocessDataset({
    plan,
    ...(dataset ? { dataset } : {}),
    ...(workers !== undefined ? { workers } : {}),
    outDir: join(ctx.outputDir, "data"),
    onCase: (s, done, total) =>
      ctx.progress({
        event: "case",
        id: s.id,
        done,
        of: total,
        shape: s.canonical_shape,
        resampled_shape: s.resampled_shape,
        seconds: Math.round(s.seconds.total * 1000) / 1000,
      }),
  });
  const roles = { "data/dataset.json": "dataset" };
  for (const c of result.cases) {
    roles[`data/${c.image}`] = "image";
    if (c.label) roles[`data/${c.label}`] = "label";
    roles[`data/${c.id}/properties.json`] = "properties";
  }
  const n = result.plan.plan.normalization;
  return {
    payload: {
      plan_sha256: result.dataset.plan_sha256,
      fingerprint: result.dataset.fingerprint,
      spatial_dims: result.dataset.spatial_dims,
      target_spacing: result.dataset.target_spacing,
      normalization: n,
      dataset: "data/dataset.json",
      source: dataset ? "dataset" : "plan",
      workers: result.workers,
      cases: result.cases,
      totals: {
        cases: result.cases.length,
        labelled: result.cases.filter((c) => c.label !== null).length,
        seconds: result.seconds,
      },
    },
    roles,
  };
});
