// The cache matrix on real runs of the test skills: exactly the stages whose key changed rerun.
import { createHash } from "node:crypto";
import { appendFileSync, existsSync, readdirSync, readFileSync, utimesSync } from "node:fs";
import { basename, join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { Hasher } from "../src/evidence/hash.js";
import { keyParts } from "../src/run/cache-key.js";
import { loadSkills, skillDirs } from "../src/skills/registry.js";
import type { Skill } from "../src/skills/types.js";
import { cli, ROOT } from "./support/cli.js";
import { itWithOracle, ORACLE_PYTHON, python } from "./support/oracle.js";
import { makeWorkspace, type Workspace } from "./support/workspace.js";

const MANIFEST = `
name: matrix
params: { a: 1, b: 2, source: data/input.txt }
stages:
  left: { skill: emit, with: { value: "\${params.a}" } }
  right: { skill: emit, with: { value: "\${params.b}", source: "\${params.source}" } }
  join: { skill: combine, with: { values: ["\${left.value}", "\${right.value}"], files: ["\${right.text}"] } }
  tail: { skill: emit, with: { value: "\${join.sum}" } }
  other: { skill: combine, with: { values: [1, 2] } }
`;

describe("cache matrix", () => {
  let ws: Workspace;
  let manifest: string;
  const run = (...extra: string[]) => {
    const r = cli(["run", manifest, "--skills-dir", ws.skills, ...extra], { cwd: ws.dir });
    expect(r.stderr).not.toMatch(/internal error/);
    return r;
  };
  const ran = (runDir: string) =>
    Object.entries(ws.statuses(runDir))
      .filter(([, s]) => s === "succeeded")
      .map(([k]) => k)
      .sort();

  beforeAll(() => {
    ws = makeWorkspace();
    manifest = ws.write("pipelines/matrix.yaml", MANIFEST);
    ws.write("data/input.txt", "first\n");
    const r = run();
    expect(r.code).toBe(0);
  });

  it("a first run runs everything; the last stdout line is the run folder", () => {
    const first = ws.latestRun("matrix");
    expect(ran(first)).toEqual(["join", "left", "other", "right", "tail"]);
    const tail = JSON.parse(readFileSync(join(first, "stages/tail/output.json"), "utf8"));
    expect(tail.value).toBe(3); // 1 + 2, computed by the stages themselves
  });

  it("an unchanged rerun runs nothing", () => {
    const r = run();
    expect(r.code).toBe(0);
    const dir = r.stdout.trim().split("\n").pop() as string;
    expect(dir).toBe(ws.latestRun("matrix"));
    expect(ran(dir)).toEqual([]);
    expect(Object.values(ws.statuses(dir)).every((s) => s === "cached")).toBe(true);
    // cached stages are complete copies in the new run folder
    expect(existsSync(join(dir, "stages/join/joined.txt"))).toBe(true);
  });

  it("a changed param reruns that stage and the dependents whose inputs change", () => {
    const plan = cli(["plan", manifest, "--set", "a=5", "--skills-dir", ws.skills], { cwd: ws.dir });
    expect(plan.code).toBe(0);
    expect(plan.stdout).toMatch(/^run +left .*input 'value' changed: 1 → 5$/m);
    expect(plan.stdout).toMatch(/^cached +right /m);
    expect(plan.stdout).toMatch(/^run +join .*after left runs$/m);
    expect(run("--set", "a=5").code).toBe(0);
    const dir = ws.latestRun("matrix");
    expect(ran(dir)).toEqual(["join", "left", "tail"]);
    const why = cli(["why", dir, "tail"], { cwd: ws.dir });
    expect(why.stdout).toMatch(/input 'value' changed: 3 → 7/);
  });

  it("touching an input file without changing it reruns nothing", () => {
    const later = new Date(Date.now() + 60_000);
    utimesSync(join(ws.dir, "data/input.txt"), later, later);
    expect(run().code).toBe(0);
    expect(ran(ws.latestRun("matrix"))).toEqual([]);
  });

  it("changing an input file's content reruns its consumer and what reads its files", () => {
    ws.write("data/input.txt", "second\n");
    expect(run().code).toBe(0);
    const dir = ws.latestRun("matrix");
    expect(ran(dir)).toEqual(["join", "right"]); // tail reads join.sum, which did not change
    const why = cli(["why", dir, "right"], { cwd: ws.dir });
    expect(why.stdout).toMatch(/content of input 'source' changed/);
    const whyJoin = cli(["why", dir, "join"], { cwd: ws.dir });
    expect(whyJoin.stdout).toMatch(/input 'files': the upstream output it reads changed/);
  });

  it("a stage's evidence digests its input files as they are now, reusing the engine's digests", () => {
    const digestOf = (text: string) => createHash("sha256").update(text).digest("hex");
    const sourceDigest = (runDir: string) =>
      JSON.parse(readFileSync(join(runDir, "stages/right/output.json"), "utf8")).inputs.hashes.source;
    expect(sourceDigest(ws.latestRun("matrix"))).toBe(digestOf("second\n"));
    // Same size, rewritten in place (same inode): the saved digest no longer applies.
    ws.write("data/input.txt", "secund\n");
    expect(run().code).toBe(0);
    const dir = ws.latestRun("matrix");
    expect(ran(dir)).toContain("right");
    expect(sourceDigest(dir)).toBe(digestOf("secund\n"));
  });

  it("editing a skill's code reruns that skill's stages", () => {
    appendFileSync(join(ws.skills, "combine/scripts/run.js"), "\n// an edit\n");
    expect(run().code).toBe(0);
    const dir = ws.latestRun("matrix");
    expect(ran(dir)).toEqual(["join", "other"]);
    const why = cli(["why", dir, "other", "--json"], { cwd: ws.dir });
    expect(JSON.parse(why.stdout).reasons).toEqual(["skill code changed: scripts/run.js"]);
  });

  it("a variable the skill lists in cache_env is part of its key; unset and empty are one value", () => {
    const runWith = (flavour: string) =>
      cli(["run", manifest, "--skills-dir", ws.skills], {
        cwd: ws.dir,
        env: { MEDPIPE_TEST_FLAVOUR: flavour },
      });
    expect(runWith("salty").code).toBe(0);
    const salty = ws.latestRun("matrix");
    expect(ran(salty)).toEqual(["join", "other"]); // combine's stages; emit lists no variable
    const why = cli(["why", salty, "other", "--json"], { cwd: ws.dir });
    expect(JSON.parse(why.stdout).reasons).toEqual([
      "environment changed: env.MEDPIPE_TEST_FLAVOUR (none) → salty",
    ]);
    expect(runWith("salty").code).toBe(0);
    expect(ran(ws.latestRun("matrix"))).toEqual([]);
    // Empty is unset: the keys of the run before "salty" again, found in the cache.
    expect(runWith("").code).toBe(0);
    expect(ran(ws.latestRun("matrix"))).toEqual([]);
    const from = ws.evidence(ws.latestRun("matrix")).stages.other?.cached_from ?? "";
    expect(from).toMatch(/\/stages\/other$/);
    expect(from.startsWith(basename(salty))).toBe(false);
  });

  it("evidence.json records digests and a root hash that covers them", () => {
    const e = ws.evidence(ws.latestRun("matrix"));
    const join1 = e.stages.join;
    expect(join1?.artifacts.map((a) => a.path).sort()).toEqual([
      "joined.txt",
      "logs/stderr.log",
      "logs/stdout.log",
      "output.json",
    ]);
    expect(e.root_hash).toMatch(/^[0-9a-f]{64}$/);
    const joined = readFileSync(join(ws.latestRun("matrix"), "stages/join/joined.txt"));
    expect(join1?.artifacts.find((a) => a.path === "joined.txt")?.sha256).toBe(
      createHash("sha256").update(joined).digest("hex"),
    );
  });
});

describe("cache key environment", () => {
  const skills = loadSkills(skillDirs([]));
  const parts = (id: string, env: Record<string, string | undefined>) =>
    keyParts({ hasher: new Hasher(), env, mode: "full" }, skills.get(id) as Skill, {
      exec: {},
      key: {},
      paths: {},
    });

  itWithOracle("torch", "numpy")(
    "a Node entry that runs a Python trainer (requires.python_modules) carries the Python, torch and numpy versions and the GPU it may use",
    async () => {
      const versions = python<Record<string, string>>(
        "import sys, numpy, torch\nOUTPUT = {'python': sys.version.split()[0], 'numpy': numpy.__version__, 'torch': torch.__version__,\n          'gpu': torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}",
      );
      const env = { PIPELINE_PYTHON: ORACLE_PYTHON };
      for (const id of ["cv-train", "finetune"])
        expect((await parts(id, env)).environment).toEqual({
          node: process.version,
          ...versions,
        });
      // A Node skill that runs no Python depends on Node alone.
      expect((await parts("evaluate", env)).environment).toEqual({ node: process.version });
    },
  );

  it("holds every module a Node entry imports, its npm packages, schemas/ and entrypoint.code", async () => {
    const code = (await parts("cv-train", {})).code;
    // cv-train's config reads the label -> class rule through an import chain no list names.
    expect(code["dist/plan/classes.js"]).toBe(
      createHash("sha256")
        .update(readFileSync(join(ROOT, "dist/plan/classes.js")))
        .digest("hex"),
    );
    expect(code["scripts/run.js"]).toMatch(/^[0-9a-f]{64}$/); // the skill's own folder
    expect(code["src/py/medpipe"]).toMatch(/^[0-9a-f]{64}$/); // entrypoint.code: started, never imported
    const infer = (await parts("infer", {})).code;
    const ort = JSON.parse(readFileSync(join(ROOT, "node_modules/onnxruntime-node/package.json"), "utf8"));
    expect(infer["npm:onnxruntime-node"]).toBe(ort.version);
    expect(infer.schemas).toMatch(/^[0-9a-f]{64}$/); // plan.json is checked against schemas/ at run time
    expect(Object.keys(infer).some((k) => k.startsWith("npm:node:"))).toBe(false);
  });

  it("finetune's key holds NPROC_PER_NODE when it is set", async () => {
    const env = { PIPELINE_PYTHON: ORACLE_PYTHON };
    expect((await parts("finetune", { ...env, NPROC_PER_NODE: "2" })).environment["env.NPROC_PER_NODE"]).toBe(
      "2",
    );
    expect((await parts("finetune", { ...env, NPROC_PER_NODE: "" })).environment).not.toHaveProperty(
      "env.NPROC_PER_NODE",
    );
  });
});

describe("a result belongs to its stage and its run", () => {
  const PAIR =
    "name: own\nstages:\n  plan: { skill: emit, with: { value: 7 } }\n  twin: { skill: emit, with: { value: 7 } }\n";
  const verifyRun = (ws: Workspace, dir: string) =>
    cli(["verify", dir], { cwd: ws.dir, env: { PIPELINE_SKILLS_PATH: ws.skills } });

  it("two stages alike in skill and inputs both run; a renamed stage reruns and its run verifies", () => {
    const ws = makeWorkspace();
    const first = ws.write("own.yaml", PAIR);
    expect(cli(["run", first, "--skills-dir", ws.skills], { cwd: ws.dir }).code).toBe(0);
    const one = ws.latestRun("own");
    expect(ws.statuses(one)).toEqual({ plan: "succeeded", twin: "succeeded" });
    expect(JSON.parse(readFileSync(join(one, "stages/twin/output.json"), "utf8")).stage).toBe("twin");

    const renamed = ws.write("own.yaml", PAIR.replace("  plan:", "  planning:"));
    expect(cli(["run", renamed, "--skills-dir", ws.skills], { cwd: ws.dir }).code).toBe(0);
    const two = ws.latestRun("own");
    expect(ws.statuses(two)).toEqual({ planning: "succeeded", twin: "cached" });
    expect(ws.evidence(two).stages.planning?.key_parts?.stage).toBe("planning");
    const v = verifyRun(ws, two);
    expect(v.stdout).toMatch(/^pass: /m);
    expect(v.code).toBe(0);
  });

  it("--resume moves the folder of a stage the manifest no longer has to superseded/", () => {
    const ws = makeWorkspace();
    const m = ws.write("own.yaml", PAIR);
    expect(cli(["run", m, "--skills-dir", ws.skills], { cwd: ws.dir }).code).toBe(0);
    ws.write("own.yaml", PAIR.replace("  plan:", "  planning:"));
    const r = cli(["run", m, "--resume", "--skills-dir", ws.skills], { cwd: ws.dir });
    expect(r.code).toBe(0);
    const dir = ws.latestRun("own");
    expect(readdirSync(join(dir, "stages")).sort()).toEqual(["planning", "twin"]);
    expect(readdirSync(join(dir, "superseded/plan"))).toHaveLength(1);
    expect(verifyRun(ws, dir).code).toBe(0);
  });

  it("a verify stage is never taken from the cache: each run audits itself", () => {
    const ws = makeWorkspace();
    const m = ws.write(
      "audited.yaml",
      "name: audited\nstages:\n  a: { skill: emit, with: { value: 1 } }\n  check: { skill: verify }\n",
    );
    const dirs = ["--skills-dir", ws.skills, "--skills-dir", join(ROOT, "skills")];
    for (let i = 0; i < 2; i++) expect(cli(["run", m, ...dirs], { cwd: ws.dir }).code).toBe(0);
    const second = ws.latestRun("audited");
    expect(ws.statuses(second)).toEqual({ a: "cached", check: "succeeded" });
    const report = JSON.parse(readFileSync(join(second, "stages/check/report.json"), "utf8"));
    expect(report.run_id).toBe(basename(second));
    const plan = cli(["plan", m, ...dirs], { cwd: ws.dir });
    expect(plan.stdout).toMatch(/^run +check .*always runs: skill verify declares cache: false$/m);
  });
});
