// A whole dataset: the plan's cases (or another dataset's, with the same plan) preprocessed into
// one data/ folder (schemas/preprocessed.md), dataset.json written last.
import { mkdir, rename, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { readDataset } from "../datasets/index.js";
import { type LoadedPlan, PlanError, readPlan, resolvePlanCases } from "./plan.js";
import { defaultWorkers, runCases } from "./pool.js";
import type { CaseJob, CaseSummary, PlanCase } from "./types.js";

export interface PreprocessOptions {
  /** plan.json (schemas/plan.schema.json). */
  plan: string;
  /** A dataset folder or list file to preprocess instead of plan.dataset.cases. */
  dataset?: string;
  /** The data/ folder to write. */
  outDir: string;
  /** Worker threads; 0 = in this thread; default `defaultWorkers()`. */
  workers?: number;
  /** Called as each case finishes. */
  onCase?: (summary: CaseSummary, done: number, total: number) => void;
}

/** dataset.json of the data/ folder. */
export interface PreprocessedDataset {
  schema_version: 1;
  plan_sha256: string;
  fingerprint: string;
  spatial_dims: 2 | 3;
  channels: string[];
  labels: Record<string, string>;
  /** Compatible addition: the spacing every case was resampled to. */
  target_spacing: number[];
  cases: Array<{ id: string; image: string; label: string | null; shape: number[] }>;
}

export interface PreprocessResult {
  plan: LoadedPlan;
  dataset: PreprocessedDataset;
  cases: CaseSummary[];
  workers: number;
  seconds: number;
}

// A case id becomes a folder name: keep it to one plain path segment.
const SAFE_ID = /^[A-Za-z0-9._-]+$/;

export async function preprocessDataset(opts: PreprocessOptions): Promise<PreprocessResult> {
  const started = performance.now();
  const loaded = readPlan(opts.plan);
  const { plan } = loaded;
  const cases = opts.dataset ? await datasetCases(opts.dataset) : resolvePlanCases(loaded);
  const seen = new Set<string>();
  for (const c of cases) {
    if (!SAFE_ID.test(c.id) || c.id === "." || c.id === "..")
      throw new PlanError(
        `${c.image[0] ?? loaded.path}: case id ${JSON.stringify(c.id)} is not a plain name`,
      );
    if (seen.has(c.id)) throw new PlanError(`${c.image[0] ?? loaded.path}: case id ${c.id} appears twice`);
    seen.add(c.id);
  }
  const outDir = resolve(opts.outDir);
  await mkdir(outDir, { recursive: true });
  // 0 (background) is always allowed, declared or not.
  const labelValues = [...new Set([0, ...Object.keys(plan.dataset.labels).map(Number)])].sort(
    (a, b) => a - b,
  );
  const jobs: CaseJob[] = cases.map((c) => ({
    id: c.id,
    image: c.image,
    label: c.label ?? null,
    outDir: join(outDir, c.id),
    spatialDims: plan.spatial_dims,
    targetSpacing: plan.target_spacing,
    normalization: plan.normalization,
    channels: plan.dataset.channels.length,
    labelValues,
  }));
  const workers = opts.workers ?? defaultWorkers();
  const summaries = await runCases(jobs, workers, (s, done) => opts.onCase?.(s, done, jobs.length));
  const dataset: PreprocessedDataset = {
    schema_version: 1,
    plan_sha256: loaded.sha256,
    fingerprint: plan.dataset.fingerprint,
    spatial_dims: plan.spatial_dims,
    channels: plan.dataset.channels.slice(),
    labels: { ...plan.dataset.labels },
    target_spacing: plan.target_spacing.slice(),
    cases: summaries.map((s) => ({ id: s.id, image: s.image, label: s.label, shape: s.resampled_shape })),
  };
  const tmp = join(outDir, "dataset.json.tmp");
  await writeFile(tmp, `${JSON.stringify(dataset, null, 2)}\n`);
  await rename(tmp, join(outDir, "dataset.json"));
  return {
    plan: loaded,
    dataset,
    cases: summaries,
    workers: Math.min(workers, jobs.length),
    seconds: (performance.now() - started) / 1000,
  };
}

/** Cases of another dataset (labels optional: data to predict on need none). */
async function datasetCases(path: string): Promise<PlanCase[]> {
  const read = await readDataset(path, { requireLabels: false });
  if (read.problems.length)
    throw new PlanError(
      read.problems.length === 1
        ? read.problems[0]!
        : `${read.problems[0]} (and ${read.problems.length - 1} more problem(s) in ${read.root})`,
    );
  if (read.cases.length === 0) throw new PlanError(`${read.root}: no cases found`);
  return read.cases.map((c) => ({ id: c.id, image: c.image, label: c.label }));
}
