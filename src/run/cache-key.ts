// The cache key of a stage: a hash over everything that can change what the stage produces.
import { existsSync } from "node:fs";
import { join, relative } from "node:path";
import type { KeyParts } from "../evidence/evidence.js";
import { type Hasher, hashJson, listFiles } from "../evidence/hash.js";
import type { Graph, StageNode } from "../graph/expand.js";
import { PROJECT_ROOT } from "../paths.js";
import type { Mode, Skill } from "../skills/types.js";
import { importClosure, packageVersion } from "./import-closure.js";
import type { ResolvedInputs } from "./inputs.js";
import { findPython } from "./python.js";

const codeDigests = new WeakMap<Skill, Record<string, string>>();

export interface KeyContext {
  hasher: Hasher;
  env: Record<string, string | undefined>;
  mode: Mode;
  /** The stage instance the key is for (left out only when no stage is meant). */
  stage?: string;
}

/**
 * What a stage's cache key is made of: the stage's own id, skill, its code, resolved inputs, input contents, environment.
 * The code is the skill's folder, every project module a Node entry imports (directly or not) with
 * the versions of the npm packages they import, the schemas/ folder when one of them can read it,
 * and what the manifest's entrypoint.code adds (what no import reaches: the Python package).
 */
export async function keyParts(
  ctx: KeyContext,
  skill: Skill,
  inputs: ResolvedInputs,
  needs: Record<string, string> = {},
): Promise<KeyParts> {
  let code = codeDigests.get(skill);
  if (!code) {
    code = {};
    for (const rel of listFiles(skill.dir, (r) => r.endsWith(".md") || r.startsWith("__pycache__")))
      code[rel] = (await ctx.hasher.file(join(skill.dir, rel))).sha256;
    if (skill.manifest.entrypoint.interpreter === "node") {
      const closure = importClosure(join(skill.dir, skill.manifest.entrypoint.script));
      for (const file of closure.files) {
        const rel = relative(PROJECT_ROOT, file);
        if (relative(skill.dir, file).startsWith("..")) code[rel] = (await ctx.hasher.file(file)).sha256;
      }
      // dist/paths.js is how a module finds schemas/ (read at run time, never imported).
      if (closure.files.some((f) => relative(PROJECT_ROOT, f) === join("dist", "paths.js")))
        code.schemas = await ctx.hasher.path(join(PROJECT_ROOT, "schemas"));
      for (const name of closure.packages) {
        const version = packageVersion(PROJECT_ROOT, name);
        if (version) code[`npm:${name}`] = version;
      }
    }
    for (const extra of skill.manifest.entrypoint.code ?? []) {
      const p = join(PROJECT_ROOT, extra);
      if (!existsSync(p)) throw new Error(`skill ${skill.manifest.id}: code path not found: ${extra}`);
      code[extra] = await ctx.hasher.path(p);
    }
    codeDigests.set(skill, code);
  }
  const hashes: Record<string, string> = {};
  for (const [name, paths] of Object.entries(inputs.paths)) {
    const digests: string[] = [];
    for (const p of paths) {
      if (!existsSync(p)) throw new Error(`input '${name}': no such file or folder: ${p}`);
      digests.push(await ctx.hasher.path(p));
    }
    hashes[name] = digests.length === 1 ? (digests[0] as string) : hashJson(digests);
  }
  const environment: Record<string, string> = { node: process.version };
  // A Node entry that runs a Python trainer depends on the Python side as much as a Python entry.
  const m = skill.manifest;
  if (m.entrypoint.interpreter === "python" || (m.requires?.python_modules?.length ?? 0) > 0) {
    const py = findPython(ctx.env as NodeJS.ProcessEnv).runtime;
    if (py) Object.assign(environment, { python: py.python, torch: py.torch, numpy: py.numpy });
    // Where it can run changes the numbers (CUDA kernels, bf16): a CPU result is no GPU result.
    if (py && (m.resources?.gpu ?? "none") !== "none") environment.gpu = py.gpus[0] ?? "none";
  }
  // Unset and empty are one value: the skills read both as "not given".
  for (const name of m.cache_env ?? []) {
    const value = ctx.env[name];
    if (value) environment[`env.${name}`] = value;
  }
  return {
    ...(ctx.stage === undefined ? {} : { stage: ctx.stage }),
    skill: `${skill.manifest.id}@${skill.manifest.version}`,
    mode: ctx.mode,
    code,
    inputs: inputs.key,
    hashes,
    needs,
    environment,
  };
}

/** The keys of the instances of every stage a node `needs`, by instance id. */
export function needsKeys(
  node: StageNode,
  graph: Graph,
  keyOf: (id: string) => string | null,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const ref of node.spec.refs) {
    if (ref.via !== "needs") continue;
    for (const id of graph.instances.get(ref.stage) ?? []) out[id] = keyOf(id) ?? "";
  }
  return out;
}
