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

/** Most stage instances one stage's foreach may make, and a whole pipeline may hold. */
export const MAX_INSTANCES = 10_000;

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
 * Refuses, before any instance is made, a fan-out too large to run or a foreach value that cannot
 * name a folder: instance ids become paths under the run folder.
 */
function checkFanOut(p: PipelineSpec): void {
  const problems: Diagnostic[] = [];
  let total = 0;
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
    const count = spec.foreach.reduce((n, a) => n * a.values.length, 1);
    const first = spec.foreach[0];
    if (first && count > MAX_INSTANCES) {
      problems.push(
        p.source.diagnostic(
          ["stages", spec.id, "foreach"],
          `stage '${spec.id}' fans out to ${count} instances (${spec.foreach.map((a) => `${a.name}: ${a.values.length}`).join(" × ")})`,
          `at most ${MAX_INSTANCES} instances per stage`,
          { key: true },
        ),
      );
      continue;
    }
    total += count;
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
  if (problems.length === 0 && total > MAX_INSTANCES)
    problems.push(
      p.source.diagnostic(
        ["stages"],
        `the pipeline has ${total} stage instances in all`,
        `at most ${MAX_INSTANCES} stage instances per pipeline`,
        { key: true },
      ),
    );
  if (problems.length) throw new ManifestError(problems);
}

// Kahn's algorithm, always taking the earliest-declared ready node, so the order is stable. The
// instances of a stage share one deps list, so edges are kept per stage, not per instance, and a
// heap holds the ready nodes: a fan-in of thousands of instances would otherwise take minutes.
function topoOrder(nodes: StageNode[]): StageNode[] {
  const index = new Map(nodes.map((n, i) => [n.id, i]));
  const waiting = nodes.map((n) => n.deps.length);
  const groups = new Map<string[], number[]>();
  nodes.forEach((n, i) => {
    const g = groups.get(n.deps);
    if (g) g.push(i);
    else groups.set(n.deps, [i]);
  });
  const dependents: number[][][] = nodes.map(() => []);
  for (const [deps, members] of groups)
    for (const d of deps) {
      const at = index.get(d);
      if (at !== undefined) dependents[at]?.push(members);
    }
  const ready = new MinHeap();
  nodes.forEach((_, i) => {
    if (waiting[i] === 0) ready.push(i);
  });
  const out: StageNode[] = [];
  for (let i = ready.pop(); i !== undefined; i = ready.pop()) {
    out.push(nodes[i] as StageNode);
    for (const members of dependents[i] as number[][])
      for (const next of members) {
        waiting[next] = (waiting[next] as number) - 1;
        if (waiting[next] === 0) ready.push(next);
      }
  }
  return out;
}

class MinHeap {
  private readonly a: number[] = [];
  push(v: number): void {
    const a = this.a;
    a.push(v);
    for (let i = a.length - 1; i > 0; ) {
      const up = (i - 1) >> 1;
      if ((a[up] as number) <= v) break;
      a[i] = a[up] as number;
      a[up] = v;
      i = up;
    }
  }
  pop(): number | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return top;
    a[0] = last;
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < a.length && (a[l] as number) < (a[m] as number)) m = l;
      if (r < a.length && (a[r] as number) < (a[m] as number)) m = r;
      if (m === i) break;
      [a[i], a[m]] = [a[m] as number, a[i] as number];
      i = m;
    }
    return top;
  }
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
