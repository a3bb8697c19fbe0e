// Loading a model package's model.onnx into one onnxruntime-node session (CPU execution
// provider) and presenting it as a WindowModel. The graph export_onnx.py writes has one
// input "image" (B, C, *spatial) and the output "logits" (B, K, *spatial), plus, for two
// classes, "foreground" (B, 1, *spatial), the class-1 probability; other names are accepted
// when the graph has a single input and output, so any equivalent export works.

import { stat } from "node:fs/promises";
import { join } from "node:path";
import { InferenceSession, Tensor } from "onnxruntime-node";
import { firstLine, InferenceError } from "./errors.js";
import type { WindowBatchOutput, WindowModel } from "./model.js";

export interface LoadModelOptions {
  /** Threads for one operator (onnxruntime's intra-op pool). Default: onnxruntime's (all cores). */
  intraOpThreads?: number;
}

export interface OnnxModel extends WindowModel {
  readonly session: InferenceSession;
  readonly inputName: string;
  readonly outputName: string;
  /** The graph's "foreground" output (a two-class model's class-1 probability), or null. */
  readonly foregroundName: string | null;
  /** Classes the model declares on its output, or null when symbolic (then known after the first run). */
  readonly outputChannels: number | null;
  /** Frees the native session; the model cannot run afterwards. */
  release(): Promise<void>;
}

/** The ONNX file for `path`: the file itself, or `model.onnx` inside a model package folder. */
async function resolveModelFile(path: string): Promise<string> {
  const info = await stat(path).catch(() => null);
  if (!info) throw new InferenceError(path, "no such model file or model package");
  const file = info.isDirectory() ? join(path, "model.onnx") : path;
  if (file !== path && !(await stat(file).catch(() => null))?.isFile())
    throw new InferenceError(file, "no such model file (the model package has no model.onnx)");
  return file;
}

function tensorShape(
  meta: InferenceSession.ValueMetadata | undefined,
): ReadonlyArray<number | string> | null {
  return meta?.isTensor ? meta.shape : null;
}

/** A declared dimension, or null when the graph leaves it symbolic (a name) or unknown. */
function fixedDim(shape: ReadonlyArray<number | string> | null, axis: number): number | null {
  const v = shape?.[axis];
  return typeof v === "number" && v > 0 ? v : null;
}

/** The graph's one image input: "image" if present, else the only input. */
function pickName(names: readonly string[], preferred: string, file: string, what: string): string {
  if (names.includes(preferred)) return preferred;
  if (names.length === 1) return names[0]!;
  throw new InferenceError(
    file,
    `cannot tell which ${what} to use: none is named "${preferred}" among [${names.join(", ")}]`,
  );
}

/**
 * Loads `path` (a model.onnx file or a model package folder) into an onnxruntime-node
 * session on the CPU. Errors are InferenceErrors of one line naming the file.
 */
export async function loadModel(path: string, options: LoadModelOptions = {}): Promise<OnnxModel> {
  const file = await resolveModelFile(path);
  const sessionOptions: InferenceSession.SessionOptions = {
    executionProviders: ["cpu"],
    graphOptimizationLevel: "all",
    // One window batch is one call: parallelism inside operators is what helps.
    executionMode: "sequential",
    interOpNumThreads: 1,
    // The arena reuses freed blocks from one window to the next. A memory pattern would
    // pre-plan one block for all of a window's intermediates, allocated next to the
    // arena's blocks of the first run: measured at patch 160×160×80, it raised the peak
    // RSS by 80 MB (324 vs 242 MiB) for no gain in speed.
    enableCpuMemArena: true,
    enableMemPattern: false,
    // No spinning between runs: a pool thread that spins after a window slowed the window
    // bookkeeping that follows in JavaScript (accumulation 22 → 14 ms per 160×160×80 window
    // on the 2-core machine of eval/bench/RESULTS.md) by more than waking it costs the run.
    extra: { session: { intra_op: { allow_spinning: "0" } } },
  };
  if (options.intraOpThreads !== undefined) {
    if (!Number.isInteger(options.intraOpThreads) || options.intraOpThreads < 1)
      throw new RangeError(`intraOpThreads must be an integer >= 1, got ${options.intraOpThreads}`);
    sessionOptions.intraOpNumThreads = options.intraOpThreads;
  }
  let session: InferenceSession;
  try {
    session = await InferenceSession.create(file, sessionOptions);
  } catch (err) {
    throw new InferenceError(file, `not a loadable ONNX model (${firstLine(err)})`);
  }
  try {
    return wrapSession(session, file);
  } catch (err) {
    await session.release();
    throw err;
  }
}

function wrapSession(session: InferenceSession, file: string): OnnxModel {
  const inputName = pickName(session.inputNames, "image", file, "input");
  const outputName = pickName(session.outputNames, "logits", file, "output");
  const inMeta = session.inputMetadata.find((m) => m.name === inputName);
  const outMeta = session.outputMetadata.find((m) => m.name === outputName);
  if (inMeta?.isTensor && inMeta.type !== "float32")
    throw new InferenceError(file, `the model's input "${inputName}" is ${inMeta.type}, expected float32`);
  const inShape = tensorShape(inMeta);
  if (inShape && inShape.length > 0 && (inShape.length < 3 || inShape.length > 5))
    throw new InferenceError(
      file,
      `the model's input "${inputName}" has rank ${inShape.length}; expected (batch, channels, 1-3 spatial axes)`,
    );
  const rank = inShape && inShape.length > 0 ? inShape.length : null;

  const foregroundName = session.outputNames.includes("foreground") ? "foreground" : null;

  const fetch = async (
    name: string,
    input: Float32Array,
    dims: readonly number[],
  ): Promise<WindowBatchOutput> => {
    let result: InferenceSession.OnnxValueMapType;
    try {
      result = await session.run({ [inputName]: new Tensor("float32", input, dims) }, [name]);
    } catch (err) {
      throw new InferenceError(file, `inference failed on input [${dims.join(", ")}] (${firstLine(err)})`);
    }
    const out = result[name];
    if (!(out instanceof Tensor) || out.type !== "float32" || !(out.data instanceof Float32Array))
      throw new InferenceError(file, `the model's output "${name}" is not a float32 tensor`);
    return { data: out.data, dims: out.dims };
  };

  return {
    source: file,
    session,
    inputName,
    outputName,
    foregroundName,
    inputChannels: fixedDim(inShape, 1),
    outputChannels: fixedDim(tensorShape(outMeta), 1),
    spatialDims: rank === null ? null : rank - 2,
    run: (input, dims) => fetch(outputName, input, dims),
    ...(foregroundName ? { runForeground: (input, dims) => fetch(foregroundName, input, dims) } : {}),
    release: () => session.release(),
  };
}
