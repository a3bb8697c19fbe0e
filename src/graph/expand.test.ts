import { describe, expect, it } from "vitest";
import { TEST_SKILLS } from "../../tests/support/cli.js";
import { ManifestError } from "../manifest/diagnostics.js";
import { compilePipeline } from "../manifest/pipeline.js";
import { parseSource } from "../manifest/source.js";
import { loadSkills } from "../skills/registry.js";
import { buildGraph } from "./expand.js";
import { toMermaid } from "./mermaid.js";

const skills = loadSkills([TEST_SKILLS]);
const graphOf = (yaml: string, opts: { profile?: string; sets?: string[] } = {}) =>
  buildGraph(
    compilePipeline(parseSource(yaml, "m.yaml"), skills, {
      profile: opts.profile ?? null,
      mode: "full",
      sets: opts.sets ?? [],
      env: {},
    }),
  );

const CV = `
name: cv
params: { folds: 3, seeds: [1, 2] }
profiles:
  smoke: { params: { folds: 2 } }
stages:
  prep: { skill: emit, with: { value: 1 } }
  cv:
    skill: emit
    foreach: { fold: "\${range(params.folds)}", seed: "\${params.seeds}" }
    with: { value: "\${fold * 10 + seed + prep.value}" }
  summary:
    skill: combine
    with: { values: "\${cv.value}", files: "\${cv.text}" }
  final: { skill: emit, needs: [summary], with: { value: 0 } }
`;

describe("graph", () => {
  it("fans a stage out over the product of its foreach values, with stable ids", () => {
    const g = graphOf(CV);
    expect(g.instances.get("cv")).toEqual([
      "cv[fold=0,seed=1]",
      "cv[fold=0,seed=2]",
      "cv[fold=1,seed=1]",
      "cv[fold=1,seed=2]",
      "cv[fold=2,seed=1]",
      "cv[fold=2,seed=2]",
    ]);
    expect(g.byId.get("cv[fold=2,seed=1]")?.bindings).toEqual({ fold: 2, seed: 1 });
    expect(g.byId.get("cv[fold=2,seed=1]")?.deps).toEqual(["prep"]);
  });

  it("makes a gather depend on every instance, and orders the graph topologically", () => {
    const g = graphOf(CV);
    expect(g.byId.get("summary")?.deps).toHaveLength(6);
    expect(g.byId.get("final")?.deps).toEqual(["summary"]);
    const order = g.nodes.map((n) => n.id);
    for (const n of g.nodes)
      for (const d of n.deps) expect(order.indexOf(d)).toBeLessThan(order.indexOf(n.id));
    expect(order[0]).toBe("prep");
    expect(order[order.length - 1]).toBe("final");
  });

  it("applies profiles and --set before fanning out", () => {
    expect(graphOf(CV, { profile: "smoke" }).instances.get("cv")).toHaveLength(4);
    expect(graphOf(CV, { sets: ["folds=1", "seeds=[7]"] }).instances.get("cv")).toEqual([
      "cv[fold=0,seed=7]",
    ]);
  });

  it("names every stage of a cycle, including through needs", () => {
    const yaml = `
name: c
stages:
  a: { skill: emit, with: { value: "\${c.value}" } }
  b: { skill: emit, with: { value: "\${a.value}" } }
  c: { skill: emit, needs: [b], with: { value: 1 } }
`;
    try {
      graphOf(yaml);
      throw new Error("expected a cycle");
    } catch (err) {
      expect(err).toBeInstanceOf(ManifestError);
      const d = (err as ManifestError).diagnostics[0];
      expect(d?.message).toBe("dependency cycle: a → c → b → a");
      expect(d?.line).toBe(5); // b's reference to a closes the loop
    }
  });

  it("draws Mermaid with fanned-out stages as subgraphs", () => {
    const m = toMermaid(graphOf(CV, { profile: "smoke" }));
    expect(m.startsWith("flowchart TD\n")).toBe(true);
    expect(m).toContain('subgraph cv_all["cv (emit) ×4"]');
    expect(m).toContain("prep --> cv_all");
    expect(m).toContain("cv_all --> summary");
    expect(m).toContain("summary --> final");
  });
});
