import type { Graph } from "./expand.js";

/** The DAG as a Mermaid flowchart; fanned-out stages are drawn as a subgraph of their instances. */
export function toMermaid(g: Graph): string {
  const safe = (id: string): string => id.replace(/[^A-Za-z0-9_]/g, "_");
  // A quote would end Mermaid's label early, and < > read as markup: its entity codes instead.
  const text = (s: string): string => s.replace(/"/g, "#quot;").replace(/</g, "#lt;").replace(/>/g, "#gt;");
  const lines = ["flowchart TD"];
  for (const [stage, ids] of g.instances) {
    const skill = g.byId.get(ids[0] as string)?.spec.skill.manifest.id ?? "";
    if (g.fanned.get(stage)) {
      lines.push(`  subgraph ${safe(stage)}_all["${text(stage)} (${skill}) ×${ids.length}"]`);
      for (const id of ids) lines.push(`    ${safe(id)}["${text(id)}"]`);
      lines.push("  end");
    } else {
      lines.push(`  ${safe(stage)}["${text(stage)}<br/><small>${skill}</small>"]`);
    }
  }
  const seen = new Set<string>();
  for (const n of g.nodes) {
    for (const d of n.deps) {
      const from = g.byId.get(d)?.spec.id as string;
      // Draw stage-to-stage edges once; a gather connects every instance to its consumer.
      const a =
        g.fanned.get(from) && g.fanned.get(n.spec.id)
          ? safe(d)
          : g.fanned.get(from)
            ? `${safe(from)}_all`
            : safe(d);
      const b = g.fanned.get(n.spec.id) && !g.fanned.get(from) ? `${safe(n.spec.id)}_all` : safe(n.id);
      const edge = `  ${a} --> ${b}`;
      if (!seen.has(edge)) {
        seen.add(edge);
        lines.push(edge);
      }
    }
  }
  return `${lines.join("\n")}\n`;
}
