// checkpoint.onnx-weights: the model.onnx of every package the run made computes with the
// package's weights.safetensors and with nothing else. The ONNX graph is what infer runs and what
// a user deploys; the safetensors weights are what the other checkpoint checks and finetune.claims
// vouch for. Without this link a package could ship any network (another fold's, the initial
// one) beside the right weights, and a final model, which predicts nothing during the run, would
// never be caught.
//
// The comparison is by content, never by name: the export may rename, deduplicate or reshape a
// tensor. The export also rewrites three layers for onnxruntime (src/py/medpipe/export_onnx.py),
// so a checkpoint tensor is in the graph in one of these forms:
// - verbatim: a graph tensor with the same float32 bytes;
// - a transposed convolution's kernel [cin, cout, k...] as a sub-pixel convolution's
//   [cout * r, cin, k'...]: the same nonzero values (each tap used once), rearranged, zeros added;
// - its bias repeated for each of the r output phases;
// - a PReLU's single shared slope as a LeakyRelu node's alpha.
// And every float tensor of more than one value the graph holds is one of those, or one of the
// constants the export adds: all ones or all zeros (the scale and shift of an instance norm without
// affine parameters), or only 0 and -1e4 (the mask of classes no label value stands for, nets.py).
import { createHash } from "node:crypto";
import type { Evidence } from "../evidence/evidence.js";
import { type OnnxTensor, parseOnnx } from "../evidence/onnx.js";
import { parseSafetensors, type SafetensorsFile } from "../evidence/safetensors.js";
import { type RunContext, verdictOf } from "./context.js";
import type { Pack } from "./pack.js";
import { runPackages } from "./packages.js";
import type { Skip } from "./taint.js";
import type { CheckResult } from "./types.js";

const ID = "checkpoint.onnx-weights";
/** nets.py's MASK_LOGIT as float32. */
const MASK_LOGIT = -1e4;

const f32 = (b: Buffer): Float32Array => {
  const copy = new Uint8Array(b); // aligned
  return new Float32Array(copy.buffer, 0, copy.length / 4);
};

const digest = (b: Buffer) => createHash("sha256").update(b).digest("hex");

function nonzeroCount(v: Float32Array): number {
  let n = 0;
  for (let i = 0; i < v.length; i++) if (v[i] !== 0) n++;
  return n;
}

function sortedNonzero(v: Float32Array): Float32Array {
  const out = new Float32Array(nonzeroCount(v));
  let j = 0;
  for (let i = 0; i < v.length; i++) if (v[i] !== 0) out[j++] = v[i] as number;
  return out.sort();
}

function sameValues(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The problems of one package: checkpoint tensors not in the graph, graph weights not from it. */
export function compareOnnxWeights(weights: SafetensorsFile, onnxBytes: Buffer, onnxRel: string): string[] {
  const graph = parseOnnx(onnxBytes, onnxRel);
  const pool: OnnxTensor[] = [...graph.initializers, ...graph.constants].filter((t) => t.float32);
  const byDigest = new Map<string, OnnxTensor[]>();
  for (const t of pool) {
    const d = digest(t.float32 as Buffer);
    byDigest.set(d, [...(byDigest.get(d) ?? []), t]);
  }
  const used = new Set<OnnxTensor>();
  const alphas = graph.nodes.filter((n) => n.op === "LeakyRelu" && n.floats.alpha !== undefined);
  const usedAlphas = new Set<number>();
  const missing: string[] = [];
  const problems: string[] = [];
  for (const t of weights.tensors) {
    if (t.dtype !== "F32") {
      problems.push(`${t.name} is ${t.dtype}, the export is float32`);
      continue;
    }
    const bytes = weights.data.subarray(t.begin, t.end);
    const same = byDigest.get(digest(bytes));
    if (same) {
      for (const p of same) used.add(p);
      continue;
    }
    const values = f32(bytes);
    const count = values.length;
    let found: OnnxTensor | undefined;
    if (t.shape.length >= 3) {
      // A transposed convolution [cin, cout, k...] rewritten as [cout * r, cin, k'...].
      const [cin, cout] = t.shape as [number, number];
      const want = sortedNonzero(values);
      // Sorting is the cost: only graph tensors holding as many nonzero values are sorted.
      found = pool.find(
        (p) =>
          !used.has(p) &&
          p.dims.length === t.shape.length &&
          p.dims[1] === cin &&
          (p.dims[0] as number) % cout === 0 &&
          (p.dims[0] as number) > cout &&
          nonzeroCount(f32(p.float32 as Buffer)) === want.length &&
          sameValues(sortedNonzero(f32(p.float32 as Buffer)), want),
      );
    } else if (t.shape.length === 1 && count > 1) {
      // Its bias, each value repeated for the r phases.
      found = pool.find((p) => {
        if (used.has(p) || p.dims.length !== 1 || (p.dims[0] as number) % count !== 0) return false;
        const r = (p.dims[0] as number) / count;
        const v = f32(p.float32 as Buffer);
        return r > 1 && v.every((x, i) => x === values[Math.floor(i / r)]);
      });
    } else if (count === 1) {
      const k = alphas.findIndex((n, i) => !usedAlphas.has(i) && n.floats.alpha === values[0]);
      if (k >= 0) {
        usedAlphas.add(k);
        continue;
      }
    }
    if (found) used.add(found);
    else missing.push(`${t.name} [${t.shape.join(",")}]`);
  }
  if (missing.length)
    problems.push(
      `${missing.length} of ${weights.tensors.length} tensors of the weights are not in ${onnxRel}, e.g. ${missing.slice(0, 2).join(", ")}`,
    );
  const foreign = pool.filter((p) => {
    if (used.has(p) || (p.float32 as Buffer).length <= 4) return false;
    const v = f32(p.float32 as Buffer);
    return !(v.every((x) => x === 1) || v.every((x) => x === 0 || x === MASK_LOGIT));
  });
  if (foreign.length)
    problems.push(
      `${onnxRel} computes with ${foreign.length} tensor(s) not in the weights, e.g. ${foreign
        .slice(0, 2)
        .map((p) => `${p.name || "(unnamed)"} [${p.dims.join(",")}]`)
        .join(", ")}`,
    );
  return problems;
}

export function checkOnnxWeights(pack: Pack, ctx: RunContext, evidence: Evidence): CheckResult {
  const packages = runPackages(ctx, evidence, pack);
  if (packages.length === 0)
    return { id: ID, verdict: "skipped", message: "no model package in this run", evidence: [] };
  const problems: { what: string; where: string }[] = [];
  const skips: Skip[] = [];
  for (const { dir, claim } of packages) {
    const onnxRel = `${dir}model.onnx`;
    const weightsRel = `${dir}weights.safetensors`;
    const blocked = ctx.taint.blocking([claim, onnxRel, weightsRel]);
    if (blocked) {
      skips.push({ what: onnxRel, blocked });
      continue;
    }
    for (const rel of [onnxRel, weightsRel])
      if (!pack.exists(rel)) problems.push({ what: `${rel} is missing`, where: rel });
    if (!pack.exists(onnxRel) || !pack.exists(weightsRel)) continue;
    try {
      const weights = parseSafetensors(pack.bytes(weightsRel), weightsRel);
      for (const what of compareOnnxWeights(weights, pack.bytes(onnxRel), onnxRel))
        problems.push({ what, where: onnxRel });
    } catch (err) {
      problems.push({ what: (err as Error).message, where: onnxRel });
    }
  }
  return verdictOf(
    ID,
    problems,
    `${packages.length} package(s): each model.onnx computes with its weights.safetensors and nothing else`,
    packages.map((p) => `${p.dir}model.onnx`),
    skips,
  );
}
