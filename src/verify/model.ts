// model.predictions: the model package really made the stored predictions. One held-out case
// (the smallest of the first fold that has grid predictions) is predicted again from its
// preprocessed image.npy with the plan's inference settings, and the argmax is compared with the
// grid label map the stage kept (grid/<case>.label.npy); Dice >= 0.99 passes.
//
// Running an ONNX graph needs the onnxruntime addon, which a verifier sandboxed by Node's
// permission model may not load. So this module never imports it: the caller passes a
// GridModelRunner (onnx-runner.ts has the project's one) to verifyRunWithModel; without one the
// check is skipped and says why.
import type { RunContext } from "./context.js";
import type { Pack } from "./pack.js";
import { parseNpy } from "./readers.js";
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
   * The argmax label map (first axis fastest, spatial shape of `image`) of the ONNX model at
   * `modelPath` on `image`, an image.npy-layout array (x, y[, z], C) of float32.
   */
  predict(
    modelPath: string,
    image: { data: Float32Array; shape: number[] },
    spatialDims: number,
    settings: GridSettings,
  ): Promise<Uint8Array>;
}

export interface ModelJob {
  stage: string;
  caseId: string;
  modelRel: string;
  modelPath: string;
  image: { data: Float32Array; shape: number[] };
  grid: Uint8Array;
  gridRel: string;
  spatialDims: number;
  settings: GridSettings;
}

const ID = "model.predictions";

/** The case to re-predict and everything needed, read (and hashed) now; or why not. */
export function prepareModelCheck(pack: Pack, ctx: RunContext): ModelJob | CheckResult {
  const skipped = (message: string): CheckResult => ({ id: ID, verdict: "skipped", message, evidence: [] });
  const t = ctx.train.find((s) => s.out.fold !== "all" && s.out.per_case.some((c) => c.grid_prediction));
  if (!t) return skipped("no training stage kept grid predictions of held-out cases");
  const plan = ctx.plan?.json;
  if (!plan || !ctx.data) return skipped("no plan.json or preprocessed data in this run");
  const inf = plan.inference ?? {};
  const patch = plan.patch_size ?? [];
  const spatialDims = plan.spatial_dims ?? patch.length;
  let best: { id: string; grid: string; image: ReturnType<typeof parseNpy>; rel: string; i: number } | null =
    null;
  for (const [i, c] of t.out.per_case.entries()) {
    if (!c.grid_prediction) continue;
    const rel = `${ctx.data}/${c.id}/image.npy`;
    if (!pack.exists(rel)) continue;
    const image = parseNpy(pack.bytes(rel), rel);
    const n = image.shape.slice(0, spatialDims).reduce((a, b) => a * b, 1);
    const m = best ? best.image.shape.slice(0, spatialDims).reduce((a, b) => a * b, 1) : Infinity;
    if (n < m) best = { id: c.id, grid: c.grid_prediction, image, rel, i };
  }
  if (!best) return skipped(`${t.stage}: no preprocessed image of its held-out cases`);
  const gridRel = `${t.dir}/${best.grid}`;
  const modelRel = `${t.dir}/${(t.out.model?.path ?? "model/").replace(/\/?$/, "/")}model.onnx`;
  const fail = (message: string, where: string): CheckResult => ({
    id: ID,
    verdict: "fail",
    message,
    evidence: [where],
  });
  const blocked = ctx.taint.blocking([
    modelRel,
    gridRel,
    best.rel,
    `${t.dir}/output.json#/model`,
    `${t.dir}/output.json#/per_case/${best.i}/grid_prediction`,
    `${ctx.plan?.rel}#/inference`,
    `${ctx.plan?.rel}#/patch_size`,
  ]);
  if (blocked)
    return {
      id: ID,
      verdict: "skipped",
      message: skipLine({ what: modelRel, blocked }),
      evidence: [blocked.pointer],
    };
  if (!pack.exists(gridRel)) return fail(`${gridRel} is missing`, gridRel);
  if (!pack.exists(modelRel)) return fail(`${modelRel} is missing`, modelRel);
  const grid = parseNpy(pack.bytes(gridRel), gridRel);
  if (!(best.image.data instanceof Float32Array) || !best.image.fortranOrder)
    return fail(`${best.rel} is not a Fortran-order float32 image`, best.rel);
  if (!(grid.data instanceof Uint8Array) || grid.shape.some((s, k) => s !== best.image.shape[k]))
    return fail(`${gridRel} is not a uint8 map on the image's grid`, gridRel);
  pack.sha256(modelRel); // hashed here; the runner reads the same file by path
  return {
    stage: t.stage,
    caseId: best.id,
    modelRel,
    modelPath: `${pack.dir}/${modelRel}`,
    image: { data: best.image.data, shape: best.image.shape },
    grid: grid.data,
    gridRel,
    spatialDims,
    settings: {
      patch,
      overlap: inf.overlap ?? 0.5,
      mode: inf.mode ?? "gaussian",
      swBatchSize: inf.sw_batch_size ?? 1,
      tta: inf.tta ?? false,
    },
  };
}

/** Mean Dice over the foreground classes either map uses (1 when neither has any). */
export function gridDice(a: Uint8Array, b: Uint8Array): number {
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

export async function runModelCheck(job: ModelJob, runner: GridModelRunner): Promise<CheckResult> {
  let label: Uint8Array;
  try {
    label = await runner.predict(job.modelPath, job.image, job.spatialDims, job.settings);
  } catch (err) {
    return {
      id: ID,
      verdict: "fail",
      message: `${job.modelRel} does not run: ${(err as Error).message}`,
      evidence: [job.modelRel],
    };
  }
  if (label.length !== job.grid.length)
    return {
      id: ID,
      verdict: "fail",
      message: `${job.modelRel} predicts ${label.length} voxels, the grid map has ${job.grid.length}`,
      evidence: [job.modelRel],
    };
  const dice = gridDice(label, job.grid);
  const what = `${job.stage} ${job.caseId}: ${job.modelRel} re-run on CPU vs ${job.gridRel}, Dice ${dice.toFixed(4)}`;
  return dice >= 0.99
    ? { id: ID, verdict: "pass", message: what, evidence: [job.modelRel, job.gridRel] }
    : {
        id: ID,
        verdict: "fail",
        message: `${what} < 0.99: the model did not make these predictions`,
        evidence: [job.modelRel, job.gridRel],
      };
}
