// model.predictions: the model packages really made the stored predictions. Held-out cases are
// drawn at random from every fold's (by default one; `count` more, or all), each predicted again
// by its own fold's model from its preprocessed image.npy with the plan's inference settings. The
// argmax is compared with the grid label map the stage kept (grid/<case>.label.npy), and the
// probabilities taken to the case's native grid the way cv-train takes them (cvtrain/native.ts:
// the preprocess inverse, threshold or argmax, largest component) are compared with the native
// prediction the case's metrics were computed from; Dice >= 0.99 passes each. First, the case's
// image.npy must be what the plan's preprocessing makes of the case's image file(s) alone
// (src/preprocess/case.ts, no label): a held-out case scored on an input its label shaped (a
// leaked label, a label-derived normalization) would pass every other check. The draw is not
// derived from the run, so a run cannot know which of its cases will be re-predicted: a
// fabricated case is found with the probability of being drawn.
//
// Running an ONNX graph needs the onnxruntime addon, which a verifier sandboxed by Node's
// permission model may not load. So this module never imports it: the caller passes a
// GridModelRunner (onnx-runner.ts has the project's one) to verifyRunWithModel; without one the
// check is skipped and says why.
import { randomInt } from "node:crypto";
import { isAbsolute, join, relative } from "node:path";
import { nativeLabel, type PostProcessing } from "../cvtrain/native.js";
import { classCount } from "../plan/classes.js";
import { prepareCase } from "../preprocess/case.js";
import type { CaseProperties, PlanNormalization } from "../preprocess/types.js";
import type { PlanJson, RunContext } from "./context.js";
import type { Pack } from "./pack.js";
import { parseLabelMap, parseNpy } from "./readers.js";
import { skipLine } from "./taint.js";
import type { CheckResult } from "./types.js";

export interface GridSettings {
  patch: number[];
  overlap: number;
  mode: string;
  swBatchSize: number;
  tta: boolean;
}

export interface GridModelRunner {
  /**
   * The ONNX model at `modelPath` on `image`, an image.npy-layout array (x, y[, z], C) of
   * float32: its argmax label map (first axis fastest, the spatial shape of `image`) and its
   * class probabilities (one such block per class, `classes` of them).
   */
  predict(
    modelPath: string,
    image: { data: Float32Array; shape: number[] },
    spatialDims: number,
    settings: GridSettings,
    classes: number,
  ): Promise<{ label: Uint8Array; probabilities: Float32Array }>;
  /**
   * The model package at `packagePath` on a case's original image files, as the infer skill
   * predicts it (the package's plan: preprocessing, sliding window, native grid,
   * post-processing; `tta` overrides the plan's): the label map on the image's grid, first axis
   * fastest.
   */
  predictCase(packagePath: string, images: string[], tta?: boolean): Promise<Uint8Array>;
}

export interface ModelJob {
  stage: string;
  caseId: string;
  modelRel: string;
  modelPath: string;
  image: { data: Float32Array; shape: number[] };
  grid: Uint8Array;
  gridRel: string;
  /** The native-space prediction the case was scored with, and how cv-train made it. */
  native: { data: ArrayLike<number>; rel: string; properties: CaseProperties; post: PostProcessing };
  classes: number;
  spatialDims: number;
  settings: GridSettings;
  /** The case's image file(s) and the plan's preprocessing, to make image.npy again; or why not. */
  source: SourceImage | { unreadable: string };
}

/** What preprocessing one case's image again needs (the fields of prepareCase's input). */
export interface SourceImage {
  files: string[];
  imageRel: string;
  spatialDims: 2 | 3;
  targetSpacing: number[];
  normalization: PlanNormalization;
  channels: number;
  labelValues: number[];
}

const ID = "model.predictions";
/** image.npy against the image preprocessed again: the same code on the same file, so equal but for rounding. */
const INPUT_TOLERANCE = 1e-4;

/** Which held-out cases model.predictions re-predicts. */
export interface ModelPick {
  /** A number of cases drawn at random (without replacement), or every held-out case. */
  count: number | "all";
  /** An integer in [0, n); default crypto's randomInt, which nothing in the run can predict. */
  draw?: (n: number) => number;
}

/**
 * A prediction a model package made from a case's image files, as the infer skill makes them (a
 * finetune stage's formal case, an infer stage's output): to be made again by that package.
 */
export interface PackageCandidate {
  stage: string;
  /** Whose prediction, for the message: "pretrained", "finetuned", or "" (an infer stage's). */
  role: string;
  id: string;
  /** The package folder that made it (absolute). */
  packagePath: string;
  images: string[];
  /** The TTA setting it was made with, when a stage overrode the package plan's. */
  tta?: boolean;
  predictionRel: string;
  /** The case in the stage's output.json. */
  pointer: string;
  /** What a prediction the package did not make falsifies. */
  claim: string;
}

interface PackageJob extends PackageCandidate {
  stored: ArrayLike<number>;
}

export interface ModelJobs {
  jobs: ModelJob[];
  packaged: PackageJob[];
  /** Held-out cases with grid predictions over all folds, and packages' predictions: what was drawn from. */
  candidates: number;
  /** Drawn cases left out because an earlier check found what they rest on false. */
  leftOut: string[];
}

interface Candidate {
  t: RunContext["train"][number];
  id: string;
  grid: string;
  native: string;
  /** Its index in the stage's per_case. */
  i: number;
  rel: string;
}

/**
 * The drawn cases (held-out cases of the folds, finetune formal cases, infer outputs) and
 * everything needed to re-predict them, read (and hashed) now; or why not.
 */
export function prepareModelCheck(
  pack: Pack,
  ctx: RunContext,
  pick: ModelPick,
  packaged: PackageCandidate[],
): ModelJobs | CheckResult {
  const skipped = (message: string): CheckResult => ({ id: ID, verdict: "skipped", message, evidence: [] });
  const folds = ctx.train.filter(
    (s) => s.out.fold !== "all" && s.out.per_case.some((c) => c.grid_prediction),
  );
  const plan = ctx.plan?.json ?? {};
  const candidates: Candidate[] = [];
  if (ctx.data)
    for (const t of folds)
      for (const [i, c] of t.out.per_case.entries()) {
        const rel = `${ctx.data}/${c.id}/image.npy`;
        if (c.grid_prediction && pack.exists(rel))
          candidates.push({ t, id: c.id, grid: c.grid_prediction, native: c.prediction, i, rel });
      }
  const pool: (Candidate | PackageCandidate)[] = [...candidates, ...packaged];
  if (pool.length === 0)
    return skipped(
      "no held-out case with a grid prediction and its preprocessed image, no finetune formal case and no infer output in this run",
    );
  const chosen = drawCases(pool, pick);
  const inf = plan.inference ?? {};
  const patch = plan.patch_size ?? [];
  const spatialDims = plan.spatial_dims ?? patch.length;
  const settings: GridSettings = {
    patch,
    overlap: inf.overlap ?? 0.5,
    mode: inf.mode ?? "gaussian",
    swBatchSize: inf.sw_batch_size ?? 1,
    tta: inf.tta ?? false,
  };
  const classes = classCount(plan.dataset?.labels ?? {});
  const post: PostProcessing = {
    keepLargestComponent: inf.keep_largest_component ?? false,
    threshold: inf.threshold ?? null,
  };
  const fail = (message: string, where: string): CheckResult => ({
    id: ID,
    verdict: "fail",
    message,
    evidence: [where],
  });
  const jobs: ModelJob[] = [];
  const made: PackageJob[] = [];
  const blockedLines: { line: string; pointer: string }[] = [];
  for (const c of chosen) {
    if (!("t" in c)) {
      const packageRel = relative(pack.dir, c.packagePath);
      const blocked = ctx.taint.blocking([
        c.pointer,
        c.predictionRel,
        `${packageRel}/model.onnx`,
        `${packageRel}/plan.json`,
      ]);
      if (blocked) {
        blockedLines.push({ line: skipLine({ what: c.predictionRel, blocked }), pointer: blocked.pointer });
        continue;
      }
      if (!pack.exists(c.predictionRel)) return fail(`${c.predictionRel} is missing`, c.predictionRel);
      for (const f of ["model.onnx", "plan.json"]) hashPackageFile(pack, join(c.packagePath, f));
      made.push({ ...c, stored: parseLabelMap(pack.bytes(c.predictionRel), c.predictionRel).data });
      continue;
    }
    const t = c.t;
    const gridRel = `${t.dir}/${c.grid}`;
    const nativeRel = `${t.dir}/${c.native}`;
    const propertiesRel = `${ctx.data}/${c.id}/properties.json`;
    const modelRel = `${t.dir}/${(t.out.model?.path ?? "model/").replace(/\/?$/, "/")}model.onnx`;
    const blocked = ctx.taint.blocking([
      modelRel,
      gridRel,
      c.rel,
      `${t.dir}/output.json#/model`,
      `${t.dir}/output.json#/per_case/${c.i}/grid_prediction`,
      `${t.dir}/output.json#/per_case/${c.i}/prediction`,
      nativeRel,
      propertiesRel,
      `${ctx.plan?.rel}#/inference`,
      `${ctx.plan?.rel}#/patch_size`,
      `${ctx.plan?.rel}#/dataset`,
      `${ctx.plan?.rel}#/normalization`,
      `${ctx.plan?.rel}#/target_spacing`,
    ]);
    if (blocked) {
      blockedLines.push({ line: skipLine({ what: modelRel, blocked }), pointer: blocked.pointer });
      continue;
    }
    if (!pack.exists(gridRel)) return fail(`${gridRel} is missing`, gridRel);
    if (!pack.exists(modelRel)) return fail(`${modelRel} is missing`, modelRel);
    if (!pack.exists(nativeRel)) return fail(`${nativeRel} is missing`, nativeRel);
    if (!pack.exists(propertiesRel)) return fail(`${propertiesRel} is missing`, propertiesRel);
    const image = parseNpy(pack.bytes(c.rel), c.rel);
    const grid = parseNpy(pack.bytes(gridRel), gridRel);
    if (!(image.data instanceof Float32Array) || !image.fortranOrder)
      return fail(`${c.rel} is not a Fortran-order float32 image`, c.rel);
    if (!(grid.data instanceof Uint8Array) || grid.shape.some((s, k) => s !== image.shape[k]))
      return fail(`${gridRel} is not a uint8 map on the image's grid`, gridRel);
    pack.sha256(modelRel); // hashed here; the runner reads the same file by path
    jobs.push({
      stage: t.stage,
      caseId: c.id,
      modelRel,
      modelPath: `${pack.dir}/${modelRel}`,
      image: { data: image.data, shape: image.shape },
      grid: grid.data,
      gridRel,
      native: {
        data: parseLabelMap(pack.bytes(nativeRel), nativeRel).data,
        rel: nativeRel,
        properties: JSON.parse(pack.bytes(propertiesRel).toString("utf8")) as CaseProperties,
        post,
      },
      classes,
      spatialDims,
      settings,
      source: sourceImage(pack, plan, c.id, c.rel),
    });
  }
  if (jobs.length + made.length === 0 && blockedLines.length)
    return {
      id: ID,
      verdict: "skipped",
      message: blockedLines.map((b) => b.line).join("; "),
      evidence: blockedLines.map((b) => b.pointer),
    };
  return { jobs, packaged: made, candidates: pool.length, leftOut: blockedLines.map((b) => b.line) };
}

/**
 * The case's image file(s) as plan.json names them (relative to the dataset root), read and hashed
 * through the pack, with the plan fields preprocessing reads; `unreadable` when they are gone.
 */
function sourceImage(pack: Pack, plan: PlanJson, id: string, imageRel: string): ModelJob["source"] {
  const root = plan.dataset?.root ?? "";
  const files = (plan.dataset?.cases?.find((c) => c.id === id)?.image ?? []).map((f) =>
    isAbsolute(f) ? f : join(root, f),
  );
  if (files.length === 0) return { unreadable: `plan.json names no image for ${id}` };
  try {
    for (const f of files) pack.external(f);
  } catch (err) {
    return { unreadable: (err as Error).message };
  }
  return {
    files,
    imageRel,
    spatialDims: plan.spatial_dims === 2 ? 2 : 3,
    targetSpacing: plan.target_spacing ?? [],
    normalization: plan.normalization ?? { scheme: "none" },
    channels: plan.dataset?.channels?.length ?? 1,
    labelValues: Object.keys(plan.dataset?.labels ?? {}).map(Number),
  };
}

/**
 * The largest |image.npy - the image file(s) preprocessed again|, relative to the value's size
 * (z-scored values are O(1); scheme "none" keeps raw intensities).
 */
async function inputDeparture(source: SourceImage, stored: Float32Array): Promise<number> {
  const made = await prepareCase({
    id: "",
    image: source.files,
    label: null,
    spatialDims: source.spatialDims,
    targetSpacing: source.targetSpacing,
    normalization: source.normalization,
    channels: source.channels,
    labelValues: source.labelValues,
  });
  if (made.image.length !== stored.length) return Number.POSITIVE_INFINITY;
  let worst = 0;
  for (let i = 0; i < stored.length; i++) {
    const a = made.image[i]!;
    const b = stored[i]!;
    if (Number.isNaN(a) && Number.isNaN(b)) continue;
    const d = Math.abs(a - b) / Math.max(1, Math.abs(a));
    if (Number.isNaN(d)) return Number.POSITIVE_INFINITY;
    if (d > worst) worst = d;
  }
  return worst;
}

/** `pick.count` of the candidates drawn without replacement (all for "all"), in stage and case order. */
function drawCases<T>(candidates: T[], pick: ModelPick): T[] {
  if (pick.count === "all" || pick.count >= candidates.length) return candidates;
  const draw = pick.draw ?? ((n: number) => randomInt(n));
  const pool = candidates.map((_, k) => k);
  const taken: number[] = [];
  for (let j = 0; j < pick.count; j++) {
    const k = j + draw(pool.length - j); // a partial Fisher-Yates shuffle
    [pool[j], pool[k]] = [pool[k] as number, pool[j] as number];
    taken.push(pool[j] as number);
  }
  return taken.sort((a, b) => a - b).map((k) => candidates[k] as T);
}

/** A package file hashed into the report: through the pack inside the run, as external outside it. */
function hashPackageFile(pack: Pack, abs: string): void {
  const rel = relative(pack.dir, abs);
  if (!rel.startsWith("..") && !isAbsolute(rel)) pack.sha256(rel);
  else pack.external(abs);
}

/** Mean Dice over the foreground classes either map uses (1 when neither has any). */
export function gridDice(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const classes = new Set<number>();
  for (let i = 0; i < a.length; i++) {
    if (a[i]) classes.add(a[i] as number);
    if (b[i]) classes.add(b[i] as number);
  }
  if (classes.size === 0) return 1;
  let sum = 0;
  for (const k of classes) {
    let inter = 0;
    let na = 0;
    let nb = 0;
    for (let i = 0; i < a.length; i++) {
      const x = a[i] === k;
      const y = b[i] === k;
      if (x) na++;
      if (y) nb++;
      if (x && y) inter++;
    }
    sum += (2 * inter) / (na + nb);
  }
  return sum / classes.size;
}

/** Each job's case re-predicted with its model; one result for all of them. */
export async function runModelCheck(
  { jobs, packaged, candidates, leftOut }: ModelJobs,
  runner: GridModelRunner,
): Promise<CheckResult> {
  const lines: string[] = [];
  const failed: string[] = [];
  const evidence: string[] = [];
  for (const job of jobs) {
    let input: string;
    if ("unreadable" in job.source) input = `input not re-made (${job.source.unreadable})`;
    else {
      let departure: number;
      try {
        departure = await inputDeparture(job.source, job.image.data);
      } catch (err) {
        failed.push(
          `${job.stage} ${job.caseId}: its image does not preprocess again: ${(err as Error).message}`,
        );
        evidence.push(job.source.imageRel);
        continue;
      }
      if (!(departure <= INPUT_TOLERANCE)) {
        failed.push(
          `${job.stage} ${job.caseId}: ${job.source.imageRel} is not the plan's preprocessing of ${job.source.files.join(", ")} alone (largest relative difference ${departure.toExponential(2)}): the case was scored on an input its image does not give`,
        );
        evidence.push(job.source.imageRel);
        continue;
      }
      input = "input re-made from its image alone";
    }
    let made: { label: Uint8Array; probabilities: Float32Array };
    let native: Uint8Array;
    try {
      made = await runner.predict(job.modelPath, job.image, job.spatialDims, job.settings, job.classes);
      native = nativeLabel(made.probabilities, job.native.properties, job.classes, job.native.post).data;
    } catch (err) {
      return {
        id: ID,
        verdict: "fail",
        message: `${job.modelRel} does not run: ${(err as Error).message}`,
        evidence: [job.modelRel],
      };
    }
    for (const [what, got, stored] of [
      ["grid", made.label, job.grid],
      ["native", native, job.native.data],
    ] as const)
      if (got.length !== stored.length)
        return {
          id: ID,
          verdict: "fail",
          message: `${job.modelRel} predicts ${got.length} voxels on the ${what} grid of ${job.caseId}, the stored map has ${stored.length}`,
          evidence: [job.modelRel],
        };
    const onGrid = gridDice(made.label, job.grid);
    const inNative = gridDice(native, job.native.data);
    const what = `${job.stage} ${job.caseId}: ${input}, Dice ${onGrid.toFixed(4)} on the grid, ${inNative.toFixed(4)} in native space`;
    if (onGrid < 0.99) {
      failed.push(`${what}: ${job.gridRel} < 0.99, the model did not make these predictions`);
      evidence.push(job.modelRel, job.gridRel);
    } else if (inNative < 0.99) {
      failed.push(
        `${what}: ${job.native.rel} < 0.99, the case was scored on a prediction the model did not make`,
      );
      evidence.push(job.modelRel, job.native.rel);
    } else lines.push(what);
  }
  for (const job of packaged) {
    let label: Uint8Array;
    try {
      label = await runner.predictCase(job.packagePath, job.images, job.tta);
    } catch (err) {
      return {
        id: ID,
        verdict: "fail",
        message: `${job.packagePath} does not run on ${job.images[0]}: ${(err as Error).message}`,
        evidence: [job.predictionRel],
      };
    }
    if (label.length !== job.stored.length)
      return {
        id: ID,
        verdict: "fail",
        message: `${job.packagePath} predicts ${label.length} voxels for ${job.id}, ${job.predictionRel} has ${job.stored.length}`,
        evidence: [job.predictionRel],
      };
    const dice = gridDice(label, job.stored);
    const role = job.role ? `${job.role} ` : "";
    const what = `${job.stage} ${role}${job.id}: Dice ${dice.toFixed(4)} with the ${role}package's prediction`;
    if (dice < 0.99) {
      failed.push(`${what}: ${job.predictionRel} < 0.99, ${job.claim}`);
      evidence.push(job.predictionRel);
    } else lines.push(what);
  }
  const taken = jobs.length + packaged.length + leftOut.length;
  const drawn =
    (taken === candidates
      ? `every case (${candidates})`
      : `${taken} of ${candidates} cases, drawn at random`) +
    (leftOut.length ? `; left out: ${leftOut.join("; ")}` : "");
  if (failed.length) return { id: ID, verdict: "fail", message: `${failed.join("; ")} (${drawn})`, evidence };
  return {
    id: ID,
    verdict: "pass",
    message: `re-run on CPU: ${lines.join("; ")} (${drawn})`,
    evidence: [
      ...jobs.flatMap((j) => [j.modelRel, j.gridRel, j.native.rel]),
      ...packaged.map((j) => j.predictionRel),
    ],
  };
}
