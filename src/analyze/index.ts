// Dataset analysis: read the dataset's case list, analyze every case (several at once, see
// pool.ts), then summarize, suggest and fingerprint. Bad data never throws: every problem
// becomes a one-line entry of `problems`, and the caller decides what errors mean.

import { basename } from "node:path";
import { readDataset } from "../datasets/index.js";
import { emptyRecord } from "./case.js";
import type { CaseJob } from "./case-io.js";
import { type CaseResult, runCases } from "./pool.js";
import { datasetProblems, fingerprintOf, suggest, summarize } from "./summary.js";
import {
  type Analysis,
  type AnalysisSettings,
  type CaseRecord,
  DEFAULT_SETTINGS,
  type Problem,
} from "./types.js";

export { analyzeLoadedCase, type CaseInput, type CaseOutput, emptyRecord, type LoadedFile } from "./case.js";
export { analyzeCaseFiles, type CaseJob } from "./case-io.js";
export { channelCount, cornerDrift, placement, spatialShape } from "./geometry.js";
export {
  axisStatistics,
  median,
  percentile,
  resampledSizes,
  roundMicron,
  suggestPatch,
  targetSpacing,
} from "./spacing.js";
export { channelStatistics, labelContent } from "./stats.js";
export { datasetProblems, fingerprintOf, fingerprintText, suggest, summarize } from "./summary.js";
export * from "./types.js";

/** A case finished (for progress events); cases finish in any order. */
export interface CaseProgress {
  /** The case's position in the sorted case list. */
  index: number;
  /** Cases finished so far, this one included. */
  done: number;
  of: number;
  id: string;
  errors: number;
  warnings: number;
}

export interface AnalyzeOptions {
  settings?: Partial<AnalysisSettings>;
  /** Cases read and analyzed at once (their files inflate on libuv's thread pool). Default: 2. */
  concurrency?: number;
  onCase?: (p: CaseProgress) => void;
}

export async function analyzeDataset(path: string, options: AnalyzeOptions = {}): Promise<Analysis> {
  const settings: AnalysisSettings = { ...DEFAULT_SETTINGS, ...options.settings };
  const read = await readDataset(path, settings.format ? { format: settings.format } : {});
  const problems: Problem[] = read.problems.map((message) => ({
    severity: "error",
    check: "dataset",
    case: null,
    file: fileOf(message),
    message,
  }));
  const declared = Object.keys(read.meta.labels).map(Number);
  const allowedLabels = settings.labels_expected ?? (declared.length ? declared.sort((a, b) => a - b) : null);

  const cases = [...read.cases].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const jobs: CaseJob[] = cases.map((c) => ({
    id: c.id,
    image: c.image,
    label: c.label,
    ...(c.group !== undefined ? { group: c.group } : {}),
    ...(c.fold !== undefined ? { fold: c.fold } : {}),
    ...(c.split !== undefined ? { split: c.split } : {}),
    settings,
    allowedLabels,
  }));
  let done = 0;
  const results = await runCases(jobs, options.concurrency ?? 2, (index, r) => {
    const found = r.ok ? r.out.problems : [];
    options.onCase?.({
      index,
      done: ++done,
      of: jobs.length,
      id: jobs[index]!.id,
      errors: r.ok ? found.filter((p) => p.severity === "error").length : 1,
      warnings: found.filter((p) => p.severity === "warning").length,
    });
  });

  const listed = new Set(problems.map((p) => p.file));
  const position = new Map(read.cases.map((c, i) => [c.id, i]));
  const records: CaseRecord[] = [];
  const samples: Float64Array[][] = [];
  results.forEach((r, i) => {
    const job = jobs[i]!;
    const out = r.ok ? r.out : crashed(job, r);
    records.push({ ...out.record, listed: position.get(job.id) as number });
    samples.push(out.samples);
    // A file the dataset reader already reported (missing) is not reported again as unreadable.
    problems.push(...out.problems.filter((p) => !(p.check === "unreadable" && listed.has(p.file))));
  });
  problems.push(...datasetProblems(records, read.root, allowedLabels));

  const labelNames = read.meta.labels;
  return {
    schema_version: 1,
    dataset: {
      name: read.meta.name ?? basename(read.root),
      root: read.root,
      format: read.format,
      modality: read.meta.modality,
      channels: read.meta.channelNames,
      labels: labelNames,
    },
    settings,
    fingerprint: fingerprintOf(records, settings),
    cases: records,
    summary: summarize(records, samples, labelNames),
    suggestions: suggest(records, settings),
    problems,
    errors: problems.filter((p) => p.severity === "error").length,
    warnings: problems.filter((p) => p.severity === "warning").length,
  };
}

/** A case whose analysis itself failed (a bug, not bad data): unreadable, with the reason. */
function crashed(job: CaseJob, r: Extract<CaseResult, { ok: false }>) {
  const file = job.image[0] ?? job.id;
  const record = emptyRecord({
    id: job.id,
    image: job.image,
    label: job.label,
    files: [
      ...job.image.map((path, c) => ({ role: `image:${c}`, path, sha256: null, bytes: null })),
      ...(job.label ? [{ role: "label", path: job.label, sha256: null, bytes: null }] : []),
    ],
  });
  const problem: Problem = {
    severity: "error",
    check: "unreadable",
    case: job.id,
    file,
    message: `${file}: case analysis failed (${r.error})`,
  };
  return { record, problems: [problem], samples: [] as Float64Array[] };
}

/** The file a reader problem line names (`<file>: <what>`). */
function fileOf(message: string): string {
  const i = message.indexOf(": ");
  return i > 0 ? message.slice(0, i) : message;
}
