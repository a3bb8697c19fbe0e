// Stages → a DAG of stage instances (foreach fan-out), in a stable topological order. Pure.

import { type Diagnostic, ManifestError } from "../manifest/diagnostics.js";
import type { Value } from "../manifest/expr.js";
import type { ForeachAxis, PipelineSpec, StageRef, StageSpec } from "../manifest/pipeline.js";
import type { Path } from "../manifest/source.js";

export interface StageNode {
  /** Stable instance id: `cv[fold=2]`, or the stage id when not fanned out. */
  id: string;
  spec: StageSpec;
  /** foreach variable values of this instance. */
  bindings: Record<string, Value>;
  /** Instance ids this one waits for. */
  deps: string[];
}

export interface Graph {
  /** Topologically ordered; ties keep manifest order. */
  nodes: StageNode[];
  byId: Map<string, StageNode>;
  /** Instances of each stage, in foreach order (the order a gather yields). */
  instances: Map<string, string[]>;
  /** Whether a reference to this stage yields a list (it fans out). */
  fanned: Map<string, boolean>;
}

// An instance id is a folder name (stages/<id>) and a key of evidence.json: past this many bytes
// (with the `-xxxxxxxx` a running stage's temporary folder adds) it would pass NAME_MAX (255).
const MAX_ID_BYTES = 200;

/**
 * Why a foreach value cannot be part of an instance id, or null. Path separators, NUL and the
 * other control characters would let the folder leave stages/ or break on some filesystem;
 * `[`, `]`, `,` and `=` are the id's own syntax, so two different bindings could share one id.
 */
function unsafeValue(v: string): string | null {
  if (v === "" || v === "." || v === "..") return "is not a usable folder name";
  if (/[/\\]/.test(v)) return "contains a path separator";
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\u0000-\u001f\u007f]/.test(v)) return "contains a control character";
  if (/[[\],=]/.test(v)) return "contains one of [ ] , = (the instance id's own syntax)";
  return null;
}

export function instanceId(stage: string, bindings: Record<string, Value>): string {
  const keys = Object.keys(bindings);
  if (keys.length === 0) return stage;
  return `${stage}[${keys.map((k) => `${k}=${String(bindings[k])}`).join(",")}]`;
}

function expandBindings(spec: StageSpec): Record<string, Value>[] {
  let combos: Record<string, Value>[] = [{}];
  for (const axis of spec.foreach)
    combos = combos.flatMap((c) => axis.values.map((v) => ({ ...c, [axis.name]: v })));
  return combos;
}

export function buildGraph(p: PipelineSpec): Graph {
  findCycle(p);
  checkFanOut(p);
  const instances = new Map<string, string[]>();
  const fanned = new Map<string, boolean>();
  const unordered: StageNode[] = [];
  for (const spec of p.stages) {
    const combos = expandBindings(spec);
    fanned.set(spec.id, spec.foreach.length > 0);
    instances.set(
      spec.id,
      combos.map((b) => instanceId(spec.id, b)),
    );
  }
  for (const spec of p.stages) {
    const upstream = [...new Set(spec.refs.map((r) => r.stage))];
    const deps = upstream.flatMap((s) => instances.get(s) ?? []);
    for (const bindings of expandBindings(spec))
      unordered.push({ id: instanceId(spec.id, bindings), spec, bindings, deps });
  }
  const nodes = topoOrder(unordered);
  return { nodes, byId: new Map(nodes.map((n) => [n.id, n])), instances, fanned };
}

/**
 * Refuses a foreach value that cannot name a folder: instance ids become paths under the run
 * folder.
 */
function checkFanOut(p: PipelineSpec): void {
  const problems: Diagnostic[] = [];
  for (const spec of p.stages) {
    const at = (axis: ForeachAxis): Path => ["stages", spec.id, "foreach", axis.name];
    for (const axis of spec.foreach) {
      // The first bad value of an axis is enough to act on; a long list may hold thousands.
      const i = axis.values.findIndex((v) => unsafeValue(String(v)) !== null);
      const v = axis.values[i];
      if (v !== undefined)
        problems.push(
          p.source.diagnostic(
            [...at(axis), i],
            `foreach '${axis.name}' value ${JSON.stringify(v)} ${unsafeValue(String(v))}; it would be part of the folder name stages/${spec.id}[...]`,
            "numbers, or strings without / \\ [ ] , = or control characters (not '', '.' or '..')",
          ),
        );
    }
    const first = spec.foreach[0];
    if (first && problems.length === 0) {
      // The longest id this stage makes: each axis's longest value.
      const longest = spec.foreach.map((a) =>
        a.values.map(String).reduce((x, y) => (Buffer.byteLength(y) > Buffer.byteLength(x) ? y : x)),
      );
      const id = instanceId(
        spec.id,
        Object.fromEntries(spec.foreach.map((a, i) => [a.name, longest[i] as string])),
      );
      if (Buffer.byteLength(id) > MAX_ID_BYTES)
        problems.push(
          p.source.diagnostic(
            at(first),
            `stage '${spec.id}' would have an instance id of ${Buffer.byteLength(id)} bytes (${id.slice(0, 60)}…), too long for a folder name`,
            `foreach values short enough for ids of at most ${MAX_ID_BYTES} bytes`,
          ),
        );
    }
  }
  if (problems.length) throw new ManifestError(problems);
}

// Kahn's algorithm, always taking the earliest-declared ready node, so the order is stable.
function topoOrder(nodes: StageNode[]): StageNode[] {
  const remaining = new Map(nodes.map((n) => [n.id, new Set(n.deps)]));
  const dependents = new Map<string, string[]>();
  for (const n of nodes) for (const d of n.deps) dependents.set(d, [...(dependents.get(d) ?? []), n.id]);
  const index = new Map(nodes.map((n, i) => [n.id, i]));
  const ready = nodes.filter((n) => n.deps.length === 0).map((n) => n.id);
  const out: StageNode[] = [];
  const byId = new Map(nodes.map((n) => [n.id, n]));
  while (ready.length) {
    ready.sort((a, b) => (index.get(a) ?? 0) - (index.get(b) ?? 0));
    const id = ready.shift() as string;
    out.push(byId.get(id) as StageNode);
    for (const next of dependents.get(id) ?? []) {
      const waiting = remaining.get(next) as Set<string>;
      waiting.delete(id);
      if (waiting.size === 0) ready.push(next);
    }
  }
  return out;
}

/** Reports the first dependency cycle between stages, naming every stage on it. */
function findCycle(p: PipelineSpec): void {
  const state = new Map<string, "open" | "done">();
  const stack: { stage: string; via: StageRef | null }[] = [];
  const byId = new Map(p.stages.map((s) => [s.id, s]));
  const visit = (id: string, via: StageRef | null): void => {
    if (state.get(id) === "done") return;
    if (state.get(id) === "open") {
      const start = stack.findIndex((f) => f.stage === id);
      const loop = [...stack.slice(start).map((f) => f.stage), id];
      const ref = via as StageRef;
      throw new ManifestError([
        p.source.diagnostic(
          ref.path,
          `dependency cycle: ${loop.join(" → ")}`,
          "stages that depend on each other only one way",
          { offset: ref.offset },
        ),
      ]);
    }
    state.set(id, "open");
    stack.push({ stage: id, via });
    for (const r of byId.get(id)?.refs ?? []) visit(r.stage, r);
    stack.pop();
    state.set(id, "done");
  };
  for (const s of p.stages) visit(s.id, null);
}
