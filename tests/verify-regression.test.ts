// `pipeline verify --reference` on real runs of the test skills (the range rule is the same for
// any `measured` value), and the sanity profile's configuration check before a run starts.
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { cli, ROOT } from "./support/cli.js";
import { makeWorkspace, type Workspace } from "./support/workspace.js";

let ws: Workspace;
let full: string;
let smoke: string;

interface Report {
  verdict: string;
  quality: { judged: boolean };
  checks: { id: string; verdict: string; message: string; evidence: string[] }[];
}

function verify(run: string, ...args: string[]) {
  const r = cli(["verify", run, "--json", "--skills-dir", ws.skills, ...args], { cwd: ws.dir });
  const report = r.stdout ? (JSON.parse(r.stdout) as Report) : null;
  return {
    code: r.code,
    stderr: r.stderr,
    report,
    check: report?.checks.find((c) => c.id === "regression.reference"),
  };
}

/** A reference whose one metric judges the gather stage's sum (30 in this pipeline: 0+10+20). */
function reference(name: string, centre: number, tolerance: number): string {
  return ws.write(
    `refs/${name}.yaml`,
    [
      `id: ${name}`,
      "source: { document: the chain test pipeline, result: the sum of its fan values }",
      "configuration: { folds: 3 }",
      "metrics:",
      `  sum: { centre: ${centre}, tolerance: ${tolerance}, measured: "combine:/sum" }`,
      "  unmeasured: { centre: 1, tolerance: 0.1 }",
      "reasoning: a test reference; the sum of three emitted values is exact, so no spread is expected.",
      "",
    ].join("\n"),
  );
}

describe("verify --reference", () => {
  beforeAll(() => {
    ws = makeWorkspace();
    ws.write("data/input.txt", "abc\n");
    const chain = join(ROOT, "tests/pipelines/chain.yaml");
    expect(cli(["run", chain, "--skills-dir", ws.skills], { cwd: ws.dir }).code).toBe(0);
    full = ws.latestRun("chain");
    expect(cli(["run", chain, "--smoke", "--skills-dir", ws.skills], { cwd: ws.dir }).code).toBe(0);
    smoke = ws.latestRun("chain");
    expect(smoke).not.toBe(full);
  });

  it("passes a value inside the range, and reports what the run does not measure", () => {
    const v = verify(full, "--reference", reference("inside", 29, 1));
    expect(v.code).toBe(0);
    expect(v.check?.verdict).toBe("pass");
    expect(v.check?.message).toContain("sum 30 in 29 ± 1");
    expect(v.check?.message).toContain("not measured by this run: unmeasured");
    expect(v.check?.evidence).toEqual(["stages/gather/output.json#/sum"]);
    expect(v.report?.quality.judged).toBe(true);
  });

  it("fails a value outside the range, naming it", () => {
    const v = verify(full, "--reference", reference("outside", 40, 5));
    expect(v.code).toBe(1);
    expect(v.check?.verdict).toBe("fail");
    expect(v.check?.message).toContain("sum 30 outside 40 ± 5");
    // The only failing check: the evidence itself is sound.
    expect(v.report?.checks.filter((c) => c.verdict === "fail").map((c) => c.id)).toEqual([
      "regression.reference",
    ]);
  });

  it("reports a smoke run's values and does not judge them (skipped, exit 0)", () => {
    const v = verify(smoke, "--reference", reference("smoke", 40, 5));
    expect(v.code).toBe(0);
    expect(v.check?.verdict).toBe("skipped");
    // fold values 0 and 10 in the smoke profile's two folds
    expect(v.check?.message).toMatch(
      /^smoke run, reported and not judged as quality .*sum 10 outside 40 ± 5/,
    );
    expect(v.report?.quality.judged).toBe(false);
  });

  it("rejects a reference that is not one, and a baseline that is not a run, with exit 2", () => {
    const bad = ws.write("refs/bad.yaml", "id: bad\nmetrics: {}\n");
    const plain = (...args: string[]) =>
      cli(["verify", full, "--skills-dir", ws.skills, ...args], { cwd: ws.dir });
    const r = plain("--reference", bad);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--reference .*bad\.yaml: not a reference \(schemas\/reference\.schema\.json\)/);
    const b = plain("--baseline", join(ws.dir, "data"));
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/--baseline .*data: no run\.json there, expected a run folder/);
  });
});

describe("a sanity run is judged against its reference", () => {
  /** A pipeline whose sanity profile names a reference on the gather stage's sum, verified inside. */
  function sane(w: Workspace, centre: number): string {
    w.write("data/input.txt", "abc\n");
    w.write(
      "refs/sane.yaml",
      [
        "id: sane",
        "source: { document: the test pipeline, result: the sum of its fan values }",
        "configuration: {}",
        `metrics: { sum: { centre: ${centre}, tolerance: 1, measured: "combine:/sum" } }`,
        "reasoning: a test reference; the sum of three emitted values is exact, so no spread is expected.",
        "",
      ].join("\n"),
    );
    return w.write(
      "sane.yaml",
      [
        "name: sane",
        "params: { source: data/input.txt, folds: 3, scale: 10 }",
        "profiles: { sanity: { reference: refs/sane.yaml } }",
        "stages:",
        '  first: { skill: emit, with: { value: "${params.scale}", source: "${params.source}" } }',
        '  fan: { skill: emit, foreach: { fold: "${range(params.folds)}" }, with: { value: "${fold * first.value}", count: 2 } }',
        '  gather: { skill: combine, with: { values: "${fan.value}", files: "${fan.text}" } }',
        '  verify: { skill: verify, with: { reference: "${profile.reference}" } }',
        "",
      ].join("\n"),
    );
  }

  it("by its verify stage and by pipeline verify: inside the range passes", () => {
    const w = makeWorkspace();
    const r = cli(["run", sane(w, 30), "--sanity", "--skills-dir", w.skills], { cwd: w.dir });
    expect(r.code, r.stderr.slice(-1500)).toBe(0);
    const run = w.latestRun("sane");
    const inside = JSON.parse(readFileSync(join(run, "stages/verify/output.json"), "utf8")) as {
      checks: Report["checks"];
    };
    expect(inside.checks.find((c) => c.id === "regression.reference")?.message).toContain("sum 30 in 30 ± 1");
    // From outside, with no --reference: the sanity run's own reference is used.
    const v = cli(["verify", run, "--json", "--skills-dir", w.skills], { cwd: w.dir });
    expect(v.code).toBe(0);
    const report = JSON.parse(v.stdout) as Report;
    expect(report.checks.find((c) => c.id === "regression.reference")?.verdict).toBe("pass");
    expect(report.quality.judged).toBe(true);
  });

  it("outside the range fails the verify stage, and so the run", () => {
    const w = makeWorkspace();
    const r = cli(["run", sane(w, 40), "--sanity", "--skills-dir", w.skills], { cwd: w.dir });
    expect(r.code).toBe(1);
    expect(w.statuses(w.latestRun("sane")).verify).toBe("failed");
    expect(r.stderr + r.stdout).toContain("sum 30 outside 40 ± 1");
  });
});

describe("--sanity: the configuration must be the reference's before the run starts", () => {
  it("refuses a mismatch with exit 2, naming the field, the manifest value and the reference value", () => {
    const runs = join(makeWorkspace().dir, "runs");
    const r = cli(["run", "pipelines/heart-cv.yaml", "--sanity", "--set", "epochs=3", "--runs-dir", runs], {
      cwd: ROOT,
      env: { MSD_ROOT: "/nonexistent" },
    });
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("stage 'plan' epochs is 3, the reference's configuration.epochs is 20");
    expect(r.stderr).toContain("eval/references/heart-cv.yaml");
    // Nothing was started: no run folder.
    expect(existsSync(runs) ? readdirSync(runs) : []).toEqual([]);
  });

  it("refuses a sanity profile that cross-validates another subset of the cases than the reference", () => {
    const w = makeWorkspace();
    const text = readFileSync(join(ROOT, "pipelines/heart-cv.yaml"), "utf8");
    expect(text).toContain("subset: monai-training");
    const m = w.write(
      "pipelines/other-subset.yaml",
      text.replace("subset: monai-training", "subset: monai-validation"),
    );
    // The manifest names the reference by its workspace path.
    w.write(
      "eval/references/heart-cv.yaml",
      readFileSync(join(ROOT, "eval/references/heart-cv.yaml"), "utf8"),
    );
    const r = cli(["validate", m, "--sanity"], { cwd: w.dir, env: { MSD_ROOT: "/nonexistent" } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `stage 'plan' subset is "monai-validation", the reference's configuration.split.subset.name is "monai-training"`,
    );
  });

  it("accepts the manifests whose sanity profile is the reference's configuration", () => {
    for (const m of ["pipelines/heart-cv.yaml", "pipelines/heart-patch.yaml"]) {
      const r = cli(["validate", m, "--sanity"], { cwd: ROOT, env: { MSD_ROOT: "/nonexistent" } });
      expect(r.code, r.stderr).toBe(0);
    }
  });

  it("names a sanity profile without a reference", () => {
    const w = makeWorkspace();
    const m = w.write(
      "p.yaml",
      "name: p\nprofiles: { sanity: { params: {} } }\nstages:\n  a: { skill: emit, with: { value: 1 } }\n",
    );
    writeFileSync(join(w.dir, "data.txt"), "x");
    const r = cli(["validate", m, "--sanity", "--skills-dir", w.skills], { cwd: w.dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--sanity: .*p\.yaml names no reference \(expected profiles\.sanity\.reference/);
  });
});
