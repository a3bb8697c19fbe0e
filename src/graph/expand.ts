// Stages → a DAG of stage instances (foreach fan-out), in a stable topological order. Pure.

import { ManifestError } from "../manifest/diagnostics.js";
import type { Value } from "../manifest/expr.js";
import type { PipelineSpec, StageRef, StageSpec } from "../manifest/pipeline.js";

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
