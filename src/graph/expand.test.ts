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

  const refused = (yaml: string): { message: string; expected?: string; line: number; col: number } => {
    try {
      graphOf(yaml);
    } catch (err) {
      expect(err).toBeInstanceOf(ManifestError);
      return (err as ManifestError).diagnostics[0] as { message: string; line: number; col: number };
    }
    throw new Error("expected a manifest error");
  };

  it("refuses a foreach value that cannot be part of a folder name, at the value", () => {
    const bad: [string, RegExp][] = [
      ['"a/../../x"', /value "a\/\.\.\/\.\.\/x" contains a path separator/],
      ['"a\\\\b"', /value "a\\\\b" contains a path separator/],
      ['".."', /value "\.\." is not a usable folder name/],
      ['""', /value "" is not a usable folder name/],
      ['"x\\u0000y"', /contains a control character/],
      ['"1,seed=2"', /contains one of \[ \] , =/],
    ];
    for (const [value, message] of bad) {
      const d = refused(
        `name: f\nstages:\n  s:\n    skill: emit\n    foreach: { v: [ok, ${value}] }\n    with: { value: 1 }\n`,
      );
      expect(d.message).toMatch(message);
      expect([d.line, d.col]).toEqual([5, 24]); // the second list item (its opening quote)
    }
    // through a param, the error points at the template that produced the value
    const d = refused(
      'name: f\nparams: { tag: "a/../../x" }\nstages:\n  s: { skill: emit, foreach: { v: ["${params.tag}"] }, with: { value: 1 } }\n',
    );
    expect([d.line, d.col]).toEqual([4, 36]);
    // numbers, dots inside a value and other punctuation are fine
    const g = graphOf(
      'name: f\nstages:\n  s: { skill: emit, foreach: { v: [0.5, "a.b", "lr-1e+3", "x y"] }, with: { value: 1 } }\n',
    );
    expect(g.instances.get("s")).toEqual(["s[v=0.5]", "s[v=a.b]", "s[v=lr-1e+3]", "s[v=x y]"]);
    const long = refused(
      `name: f\nstages:\n  s: { skill: emit, foreach: { v: [a, ${"x".repeat(200)}] }, with: { value: 1 } }\n`,
    );
    expect(long.message).toMatch(/^stage 's' would have an instance id of 205 bytes/);
  });

  it("refuses a fan-out over 10,000 instances before making them", () => {
    const wide = refused(
      'name: f\nstages:\n  s: { skill: emit, foreach: { a: "${range(200)}", b: "${range(51)}" }, with: { value: 1 } }\n',
    );
    expect(wide.message).toBe("stage 's' fans out to 10200 instances (a: 200 × b: 51)");
    expect(wide.expected).toBe("at most 10000 instances per stage");
    const total = refused(
      'name: f\nstages:\n  s: { skill: emit, foreach: { a: "${range(6000)}" }, with: { value: 1 } }\n  t: { skill: emit, foreach: { a: "${range(4001)}" }, with: { value: 1 } }\n',
    );
    expect(total.message).toBe("the pipeline has 10001 stage instances in all");
  });

  it("orders a 5,000 × 5,000 fan-in quickly, earliest-declared first", () => {
    const t0 = performance.now();
    const g = graphOf(
      'name: f\nstages:\n  a: { skill: emit, foreach: { i: "${range(5000)}" }, with: { value: "${i}" } }\n  b: { skill: emit, foreach: { j: "${range(5000)}" }, with: { value: "${a.value}" } }\n',
    );
    expect(performance.now() - t0).toBeLessThan(5000);
    expect(g.nodes).toHaveLength(10_000);
    expect(g.nodes[0]?.id).toBe("a[i=0]");
    expect(g.nodes[4999]?.id).toBe("a[i=4999]");
    expect(g.nodes[5000]?.id).toBe("b[j=0]");
    expect(g.nodes[9999]?.id).toBe("b[j=4999]");
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

  it("escapes quotes and angle brackets of foreach values in Mermaid labels", () => {
    const m = toMermaid(
      graphOf(`
name: q
stages:
  s: { skill: emit, foreach: { v: ['say "hi"', "a<b>"] }, with: { value: 1 } }
`),
    );
    expect(m).toContain('["s[v=say #quot;hi#quot;]"]');
    expect(m).toContain('["s[v=a#lt;b#gt;]"]');
  });
});
