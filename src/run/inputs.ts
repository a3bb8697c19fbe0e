// Resolving a stage instance's inputs: templates rendered against params, env, profile, its
// foreach values and its upstream stages' outputs. Two renderings come out: the values the
// script receives (absolute paths) and the values its cache key is made of (stable across runs).
import { existsSync } from "node:fs";
import { isAbsolute, join, relative, resolve } from "node:path";
import type { ValidateFunction } from "ajv";
import type { Graph, StageNode } from "../graph/expand.js";
import { type Diagnostic, ManifestError } from "../manifest/diagnostics.js";
import type { Scope, Value } from "../manifest/expr.js";
import { type PipelineSpec, resolveAt } from "../manifest/pipeline.js";
import { ajv, findings } from "../manifest/schema.js";
import type { InputSchema, Skill } from "../skills/types.js";
import { isRequiredInput } from "../skills/types.js";

/** What `${stage...}` reads: for the script, and for the cache key. */
export interface Namespace {
  exec: Record<string, Value>;
  key: Record<string, Value>;
}

const UPSTREAM = /^@[0-9a-f]{64}\//;

/** A finished stage's outputs: its output.json fields, and its declared files as paths. */
export function stageNamespace(
  skill: Skill,
  dir: string,
  output: Record<string, Value>,
  cacheKey: string,
): Namespace {
  const exec: Record<string, Value> = { ...output };
  const key: Record<string, Value> = { ...output };
  for (const [name, rel] of Object.entries(skill.manifest.outputs.files ?? {})) {
    const clean = rel.replace(/\/+$/, "");
    exec[name] = join(dir, clean);
    key[name] = `@${cacheKey}/${clean}`;
  }
  return { exec, key };
}

export interface ResolvedInputs {
  exec: Record<string, Value>;
  key: Record<string, Value>;
  /** Absolute paths of user-supplied files and folders, by input name, to hash into the key. */
  paths: Record<string, string[]>;
}

export interface ResolveContext {
  spec: PipelineSpec;
  graph: Graph;
  namespaces: Map<string, Namespace>;
  env: Record<string, string | undefined>;
  workspace: string;
}

/**
 * `only`: resolve and check just these inputs (those that read no upstream stage, before the run);
 * by default every input.
 */
export function resolveInputs(node: StageNode, c: ResolveContext, only?: Set<string>): ResolvedInputs {
  const scopeFor =
    (which: "exec" | "key"): Scope =>
    (root) => {
      if (root === "params") return c.spec.params;
      if (root === "env") return envObject(c.env);
      if (root === "profile") return c.spec.profileValues;
      if (root in node.bindings) return node.bindings[root] as Value;
      const ids = c.graph.instances.get(root);
      if (!ids) return undefined;
      const list = ids.map((id) => {
        const ns = c.namespaces.get(id);
        if (!ns) throw new Error(`internal: ${node.id} reads ${id} before it finished`);
        return ns[which];
      });
      return c.graph.fanned.get(root) ? list : (list[0] as Value);
    };
  const exec: Record<string, Value> = {};
  const key: Record<string, Value> = {};
  const paths: Record<string, string[]> = {};
  const problems: Diagnostic[] = [];
  for (const [name, src] of Object.entries(node.spec.inputs)) {
    if (only && !only.has(name)) continue;
    try {
      const e = resolveAt(src, c.spec.source, scopeFor("exec"));
      const k = resolveAt(src, c.spec.source, scopeFor("key"));
      const schema = node.spec.skill.manifest.inputs[name] as InputSchema;
      if (e === null && !isRequiredInput(schema)) continue;
      const found: string[] = [];
      // An empty path would resolve to the workspace itself (a `--set dataset=` gone wrong).
      let empty = false;
      mapPaths(schema, e, (p) => {
        empty ||= p.trim() === "";
        return p;
      });
      if (empty) {
        problems.push(
          c.spec.source.diagnostic(
            src.path,
            `stage '${node.id}' (skill ${node.spec.skill.manifest.id}): input '${name}' is an empty path`,
            "a file or folder path",
          ),
        );
        continue;
      }
      exec[name] = mapPaths(schema, e, (p) => (isAbsolute(p) ? p : resolve(c.workspace, p)));
      key[name] = mapPaths(schema, k, (p) => {
        if (UPSTREAM.test(p)) return p;
        const abs = isAbsolute(p) ? p : resolve(c.workspace, p);
        found.push(abs);
        const rel = relative(c.workspace, abs);
        return rel.startsWith("..") ? abs : rel;
      });
      if (found.length) paths[name] = found;
    } catch (err) {
      if (err instanceof ManifestError) problems.push(...err.diagnostics);
      else throw err;
    }
  }
  if (problems.length) throw new ManifestError(problems);
  const invalid = checkTypes(c.spec, node, exec, only);
  if (invalid.length) throw new ManifestError(invalid);
  return { exec, key, paths };
}

const validators = new WeakMap<Skill, ValidateFunction>();

function inputValidator(skill: Skill): ValidateFunction {
  let v = validators.get(skill);
  if (!v) {
    const inputs = skill.manifest.inputs;
    v = ajv().compile({
      type: "object",
      properties: inputs,
      required: Object.keys(inputs).filter((n) => isRequiredInput(inputs[n] as InputSchema)),
    });
    validators.set(skill, v);
  }
  return v;
}

function checkTypes(
  spec: PipelineSpec,
  node: StageNode,
  values: Record<string, Value>,
  only?: Set<string>,
): Diagnostic[] {
  const validate = inputValidator(node.spec.skill);
  if (validate(values)) return [];
  const doc = node.spec.skill.manifest;
  // Checking part of the inputs: what the others (not resolved yet) would say is not known.
  const concerns = (e: NonNullable<typeof validate.errors>[number]) =>
    !only ||
    only.has(
      e.keyword === "required"
        ? String((e.params as { missingProperty?: unknown }).missingProperty)
        : (e.instancePath.split("/")[1] ?? ""),
    );
  return findings((validate.errors ?? []).filter(concerns)).map((f) => {
    const name = String(f.path[0] ?? "");
    const src = node.spec.inputs[name];
    const got = name in values ? ` (got ${JSON.stringify(values[name])})` : "";
    return {
      ...(src
        ? location(spec.source.diagnostic(src.path, ""))
        : { file: node.spec.skill.manifestPath, line: 1, col: 1 }),
      message: `stage '${node.id}' (skill ${doc.id}): ${f.message.replace(/'([^']+)'/, "input '$1'")}${got}`,
      ...(f.expected ? { expected: f.expected } : {}),
    };
  });
}

/**
 * Checks every input that needs no upstream output now (of every stage, also of those with other
 * inputs that do), so `validate` and `run` stop a wrong value before any stage runs. `pathsExist`:
 * also that the files and folders they name exist (for a run; a manifest may be validated or
 * drawn where its data are not).
 */
export function checkStaticInputs(
  spec: PipelineSpec,
  graph: Graph,
  env: Record<string, string | undefined>,
  workspace: string,
  opts: { pathsExist: boolean },
): void {
  const problems: Diagnostic[] = [];
  for (const node of graph.nodes) {
    const upstream = node.spec.refs.filter((r) => r.via === "input").map((r) => r.path);
    const own = Object.entries(node.spec.inputs)
      .filter(([, src]) => !upstream.some((p) => src.path.every((seg, i) => p[i] === seg)))
      .map(([name]) => name);
    try {
      const resolved = resolveInputs(
        node,
        { spec, graph, namespaces: new Map(), env, workspace },
        new Set(own),
      );
      // A stage that only orders after another (`needs:`) may read what that one leaves behind.
      if (opts.pathsExist && !node.spec.refs.some((r) => r.via === "needs"))
        problems.push(...missingPaths(spec, node, resolved, workspace));
    } catch (err) {
      if (err instanceof ManifestError) problems.push(...err.diagnostics);
      else throw err;
    }
  }
  if (problems.length) throw new ManifestError(dedupe(problems));
}

/** The user-supplied files and folders of a stage that do not exist, each at its input's position. */
function missingPaths(
  spec: PipelineSpec,
  node: StageNode,
  resolved: ResolvedInputs,
  workspace: string,
): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const [name, paths] of Object.entries(resolved.paths)) {
    const src = node.spec.inputs[name];
    for (const p of paths) {
      if (existsSync(p)) continue;
      out.push({
        ...(src
          ? location(spec.source.diagnostic(src.path, ""))
          : { file: node.spec.skill.manifestPath, line: 1, col: 1 }),
        message: `stage '${node.id}' (skill ${node.spec.skill.manifest.id}): input '${name}': no such file or folder: ${p}`,
        expected: `an existing file or folder; relative paths resolve against the workspace, ${workspace} (the current folder, or --workdir)`,
      });
    }
  }
  return out;
}

function location(d: Diagnostic): { file: string; line: number; col: number } {
  return { file: d.file, line: d.line, col: d.col };
}

function dedupe(list: Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return list.filter((d) => {
    const k = `${d.line}:${d.col}:${d.message}`;
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

function mapPaths(schema: InputSchema, v: Value, f: (p: string) => string): Value {
  if (schema.format === "path" && typeof v === "string") return f(v);
  const items = schema.items as InputSchema | undefined;
  if (items?.format === "path" && Array.isArray(v)) return v.map((x) => (typeof x === "string" ? f(x) : x));
  return v;
}

function envObject(env: Record<string, string | undefined>): Record<string, Value> {
  const out: Record<string, Value> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v;
  return out;
}
