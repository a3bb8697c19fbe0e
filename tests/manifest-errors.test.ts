// Malformed manifests through the real CLI: each error names file:line:col, says what was
// expected, exits 2 and shows no stack trace. Positions are those of the offending text.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cli, positionOf, TEST_SKILLS } from "./support/cli.js";

interface Case {
  name: string;
  yaml: string;
  /** Text whose first occurrence is where the error must point. */
  at: string;
  message: RegExp;
  expected: RegExp;
  args?: string[];
}

const cases: Case[] = [
  {
    name: "bad YAML",
    yaml: "name: t\nstages:\n  a: { skill: emit, with: { value: [1, 2 }\n",
    at: "}\n",
    message: /Flow sequence|flow|Missing|Unexpected/i,
    expected: /valid YAML/,
  },
  {
    name: "unknown skill",
    yaml: "name: t\nstages:\n  a:\n    skill: emitt\n    with: { value: 1 }\n",
    at: "emitt",
    message: /unknown skill 'emitt'/,
    expected: /one of: .*emit/,
  },
  {
    name: "unknown input",
    yaml: "name: t\nstages:\n  a:\n    skill: emit\n    with:\n      value: 1\n      colour: red\n",
    at: "colour",
    message: /unknown input 'colour' for skill 'emit'/,
    expected: /one of: value, source, count, sleep_ms/,
  },
  {
    name: "wrong type",
    yaml: "name: t\nstages:\n  a:\n    skill: emit\n    with:\n      value: 1\n      count: many\n",
    at: "many",
    message: /input 'count'.*"many"/,
    expected: /an integer/,
  },
  {
    name: "wrong type through a param",
    yaml: 'name: t\nparams:\n  n: "3x"\nstages:\n  a:\n    skill: emit\n    with: { value: 1, count: "${params.n}" }\n',
    at: '"${params.n}"',
    message: /input 'count'.*"3x"/,
    expected: /an integer/,
  },
  {
    // b also reads a's output, known only once a has run: the param is still checked up front
    name: "wrong type through a param, beside an upstream input",
    yaml: 'name: t\nparams:\n  n: "3x"\nstages:\n  a: { skill: emit, with: { value: 1 } }\n  b:\n    skill: emit\n    with: { value: "${a.value}", count: "${params.n}" }\n',
    at: '"${params.n}"',
    message: /stage 'b' \(skill emit\): wrong type for input 'count'.*"3x"/,
    expected: /an integer/,
  },
  {
    name: "dangling reference",
    yaml: 'name: t\nstages:\n  a:\n    skill: emit\n    with: { value: "${nosuch.value}" }\n',
    at: "nosuch",
    message: /unknown name 'nosuch'/,
    expected: /a stage id \(a\)/,
  },
  {
    name: "unknown output of a stage",
    yaml: 'name: t\nstages:\n  a: { skill: emit, with: { value: 1 } }\n  b:\n    skill: emit\n    with: { value: "${a.nope}" }\n',
    at: "a.nope",
    message: /stage 'a' \(skill emit\) has no output 'nope'/,
    expected: /one of: text, value, source_bytes/,
  },
  {
    name: "cycle",
    yaml: 'name: t\nstages:\n  a:\n    skill: emit\n    with: { value: "${b.value}" }\n  b:\n    skill: emit\n    with: { value: "${a.value}" }\n',
    at: "a.value",
    message: /dependency cycle: a → b → a/,
    expected: /only one way/,
  },
  {
    name: "foreach that is not a list",
    yaml: 'name: t\nparams: { folds: 3 }\nstages:\n  a:\n    skill: emit\n    foreach: { fold: "${params.folds}" }\n    with: { value: "${fold}" }\n',
    at: '"${params.folds}"',
    message: /foreach 'fold' must give a non-empty list.*number 3/,
    expected: /range\(params.folds\)/,
  },
  {
    name: "foreach with repeated values",
    yaml: 'name: t\nstages:\n  a:\n    skill: emit\n    foreach: { fold: [1, 1] }\n    with: { value: "${fold}" }\n',
    at: "[1, 1]",
    message: /repeats the value 1/,
    expected: /distinct values/,
  },
  {
    name: "duplicate stage id",
    yaml: "name: t\nstages:\n  a: { skill: emit, with: { value: 1 } }\n  a: { skill: emit, with: { value: 2 } }\n",
    at: "a: { skill: emit, with: { value: 2",
    message: /duplicate key/,
    expected: /a unique key/,
  },
  {
    name: "missing required input",
    yaml: "name: t\nstages:\n  a:\n    skill: combine\n    with:\n      files: []\n",
    at: "with",
    message: /missing required input 'values' of skill 'combine'/,
    expected: /values: \.\.\./,
  },
  {
    name: "unknown top-level field",
    yaml: "name: t\nstagez: {}\nstages:\n  a: { skill: emit, with: { value: 1 } }\n",
    at: "stagez",
    message: /unknown field 'stagez'/,
    expected: /one of: name, description, params, stages_per_gpu, profiles, stages/,
  },
  {
    name: "missing stages",
    yaml: "name: t\nparams: {}\n",
    at: "name",
    message: /missing field 'stages'/,
    expected: /a 'stages' field/,
  },
  {
    name: "unknown param",
    yaml: 'name: t\nparams: { epochs: 2 }\nstages:\n  a: { skill: emit, with: { value: "${params.epoch}" } }\n',
    at: "params.epoch}",
    message: /unknown param 'epoch'/,
    expected: /one of: epochs/,
  },
  {
    name: "bad expression",
    yaml: 'name: t\nstages:\n  a: { skill: emit, with: { value: "${1 + }" } }\n',
    at: '}" }',
    message: /expression ends too early/,
    expected: /a name, number, string/,
  },
  {
    name: "invalid stage id",
    yaml: "name: t\nstages:\n  Bad-Id: { skill: emit, with: { value: 1 } }\n",
    at: "Bad-Id",
    message: /invalid name 'Bad-Id'/,
    expected: /lower-case letters/,
  },
  {
    name: "needs an unknown stage",
    yaml: "name: t\nstages:\n  a: { skill: emit, with: { value: 1 } }\n  b:\n    skill: emit\n    needs: [a, z]\n    with: { value: 2 }\n",
    at: "z]",
    message: /needs unknown stage 'z'/,
    expected: /one of: a, b/,
  },
  {
    name: "unset environment variable",
    yaml: 'name: t\nparams:\n  root: "${env.MEDPIPE_TEST_UNSET}/data"\nstages:\n  a: { skill: emit, with: { value: "${params.root}" } }\n',
    at: "MEDPIPE_TEST_UNSET}",
    message: /environment variable MEDPIPE_TEST_UNSET is not set$/,
    // not the names of every variable that is set
    expected: /^MEDPIPE_TEST_UNSET set in the environment, or --set root=VALUE$/,
  },
  {
    name: "bad timeout",
    yaml: "name: t\nstages:\n  a:\n    skill: emit\n    timeout: 10 minutes\n    with: { value: 1 }\n",
    at: "10 minutes",
    message: /invalid value for 'stages.a.timeout'/,
    expected: /seconds, or a duration like 90s/,
  },
  {
    name: "foreach variable outside its stage",
    yaml: 'name: t\nstages:\n  a:\n    skill: emit\n    foreach: { fold: [0, 1] }\n    with: { value: "${fold}" }\n  b: { skill: emit, with: { value: "${fold}" } }\n',
    at: 'fold}" } }',
    message: /unknown name 'fold'/,
    expected: /a stage id/,
  },
  {
    name: "stages_per_gpu below 1",
    yaml: "name: t\nstages_per_gpu: 0\nstages:\n  a: { skill: emit, with: { value: 1 } }\n",
    at: "0\n",
    message: /'stages_per_gpu' must be >= 1/,
    expected: /a value that is >= 1/,
  },
  {
    name: "negative retries",
    yaml: "name: t\nstages:\n  a:\n    skill: emit\n    retries: -1\n    with: { value: 1 }\n",
    at: "-1",
    message: /'stages.a.retries' must be >= 0/,
    expected: /a value that is >= 0/,
  },
  {
    name: "reserved stage id",
    yaml: "name: t\nstages:\n  params: { skill: emit, with: { value: 1 } }\n",
    at: "params:",
    message: /'params' is reserved/,
    expected: /another stage id/,
  },
  {
    name: "profile param that does not exist",
    yaml: "name: t\nparams: { a: 1 }\nprofiles:\n  smoke: { params: { b: 2 } }\nstages:\n  s: { skill: emit, with: { value: 1 } }\n",
    at: "b: 2",
    message: /profile sets unknown param 'b'/,
    expected: /one of: a/,
    args: ["--smoke"],
  },
  {
    name: "no stages",
    yaml: "name: t\nstages: {}\n",
    at: "{}",
    message: /'stages' is empty/,
    expected: /^at least 1 entry$/,
  },
  {
    name: "a profile key no profile sets",
    yaml: 'name: t\nstages:\n  s: { skill: emit, with: { value: "${profile.nope}" } }\n',
    at: "profile.nope",
    message: /no profile defines 'nope'/,
    expected: /none sets any/,
  },
  {
    name: "an output the skill lacks, each name listed once",
    yaml: 'name: t\nstages:\n  s: { skill: emit, with: { value: 1 } }\n  u: { skill: emit, with: { value: "${s.nope}" } }\n',
    at: "s.nope",
    message: /stage 's' \(skill emit\) has no output 'nope'/,
    expected: /^one of: text, value, source_bytes$/,
  },
  {
    name: "an empty foreach list",
    yaml: "name: t\nstages:\n  s: { skill: emit, foreach: { v: [] }, with: { value: 1 } }\n",
    at: "[]",
    message: /foreach 'v' must give a non-empty list .*, got an empty list/,
    expected: /range\(params\.folds\)/,
  },
  {
    name: "foreach value that would leave the run folder",
    yaml: 'name: t\nparams: { tag: "a/../../../x" }\nstages:\n  e:\n    skill: emit\n    foreach: { v: ["${params.tag}"] }\n    with: { value: 1 }\n',
    at: '"${params.tag}"',
    message: /foreach 'v' value "a\/\.\.\/\.\.\/\.\.\/x" contains a path separator/,
    expected: /strings without \/ \\ \[ \] , =/,
  },
  {
    name: "range too long",
    yaml: 'name: t\nstages:\n  e:\n    skill: emit\n    foreach: { f: "${range(100000000)}" }\n    with: { value: 1 }\n',
    at: "range(",
    message: /range\(100000000\) would give 100000000 values/,
    expected: /at most 10000 values/,
  },
  {
    // Caught before a's instances run, not when b starts
    name: "a fanned-out stage's list fed to a string input",
    yaml: 'name: t\nstages:\n  a: { skill: emit, foreach: { f: [x, y] }, with: { value: 1 } }\n  b: { skill: emit, with: { value: 1, source: "${a.text}" } }\n',
    at: "a.text",
    message:
      /stage 'a' fans out \(foreach\), so \$\{a\.text\} is a list of 2 values, while input 'source' of skill emit expects a string/,
    expected: /one instance indexed .*or an input that takes a list/,
  },
  {
    name: "a fanned-out stage's list placed inside a string",
    yaml: 'name: t\nstages:\n  a: { skill: emit, foreach: { f: [x, y, z] }, with: { value: 1 } }\n  b: { skill: emit, with: { value: "v-${a.value}" } }\n',
    at: "a.value",
    message: /so \$\{a\.value\} is a list of 3 values, which cannot be placed inside a string/,
    expected: /an input that takes a list, or one instance indexed/,
  },
  {
    name: "a single file path fed to a list input",
    yaml: 'name: t\nstages:\n  a: { skill: emit, with: { value: 1 } }\n  b: { skill: combine, with: { values: [1], files: "${a.text}" } }\n',
    at: "a.text",
    message:
      /\$\{a\.text\} is a single path \(stage 'a' does not fan out\), while input 'files' of skill combine expects a list/,
    expected: /a list/,
  },
];

describe("malformed manifests", () => {
  const dir = mkdtempSync(join(tmpdir(), "medpipe-bad-"));
  it.each(cases)("$name", (c) => {
    const file = join(dir, `${c.name.replace(/\W+/g, "-")}.yaml`);
    writeFileSync(file, c.yaml);
    const r = cli(["validate", file, "--skills-dir", TEST_SKILLS, ...(c.args ?? [])], {
      cwd: dir,
    });
    expect(r.code).toBe(2);
    const first = r.stderr.split("\n")[0] as string;
    const pos = positionOf(c.yaml, c.at);
    expect(first).toMatch(new RegExp(`^${escapeRegExp(file)}:${pos.line}:${pos.col}: error: `));
    expect(first).toMatch(c.message);
    expect(r.stderr).toMatch(/expected: /);
    expect(r.stderr.match(/expected: (.*)/)?.[1]).toMatch(c.expected);
    expect(r.stderr).toMatch(new RegExp(`> +${pos.line} \\|`)); // the offending line is shown
    expect(r.stderr).not.toMatch(/\n\s+at .*\(.*:\d+:\d+\)/); // no stack trace
  });

  it("a fanned-out stage's list is accepted where a list is taken, and one instance where one value is", () => {
    const file = join(dir, "shapes.yaml");
    writeFileSync(
      file,
      [
        "name: t",
        "stages:",
        "  a: { skill: emit, foreach: { f: [x, y] }, with: { value: 1 } }",
        "  one: { skill: emit, with: { value: 2 } }",
        '  b: { skill: combine, with: { values: "${a.value}", files: "${a.text}" } }',
        '  c: { skill: emit, with: { value: "v-${one.value}", source: "${a.text[0]}", count: "${len(a.text)}" } }',
        '  d: { skill: combine, with: { values: ["${one.value}"], files: ["${one.text}"] } }',
        "",
      ].join("\n"),
    );
    const r = cli(["validate", file, "--skills-dir", TEST_SKILLS], { cwd: dir });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
  });

  it("--json gives the same diagnostics as JSON", () => {
    const file = join(dir, "json.yaml");
    const yaml = "name: t\nstages:\n  a: { skill: emitt }\n";
    writeFileSync(file, yaml);
    const r = cli(["validate", file, "--json", "--skills-dir", TEST_SKILLS], { cwd: dir });
    expect(r.code).toBe(2);
    const out = JSON.parse(r.stdout) as {
      ok: boolean;
      error: { diagnostics: { line: number; col: number; file: string }[] };
    };
    expect(out.ok).toBe(false);
    const pos = positionOf(yaml, "emitt");
    expect(out.error.diagnostics[0]).toMatchObject({ file, line: pos.line, col: pos.col });
  });

  it("run refuses a path input that does not exist before anything runs; validate does not look", () => {
    const ws = mkdtempSync(join(tmpdir(), "medpipe-paths-"));
    const file = join(ws, "paths.yaml");
    // b also reads a's output: the missing path is found before a runs, not as b's failure after
    const yaml =
      'name: t\nparams:\n  data: fixtures/nope\nstages:\n  a: { skill: emit, with: { value: 1 } }\n  b:\n    skill: emit\n    with: { value: "${a.value}", source: "${params.data}" }\n';
    writeFileSync(file, yaml);
    const v = cli(["validate", file, "--skills-dir", TEST_SKILLS], { cwd: ws });
    expect(v.code).toBe(0); // a manifest may be checked where its data are not
    for (const command of ["run", "plan"]) {
      const r = cli([command, file, "--skills-dir", TEST_SKILLS], { cwd: ws });
      expect(r.code).toBe(2);
      const pos = positionOf(yaml, '"${params.data}"');
      const lines = r.stderr.split("\n");
      expect(lines[0]).toBe(
        `${file}:${pos.line}:${pos.col}: error: stage 'b' (skill emit): input 'source': no such file or folder: ${join(ws, "fixtures/nope")}`,
      );
      expect(lines[1]).toBe(
        `  expected: an existing file or folder; relative paths resolve against the workspace, ${ws} (the current folder, or --workdir)`,
      );
      expect(existsSync(join(ws, "runs"))).toBe(false); // no run folder, nothing half-written
    }
  });

  it("a stage ordered after another by needs is left to look for its path when it runs", () => {
    const ws = mkdtempSync(join(tmpdir(), "medpipe-paths-"));
    const file = join(ws, "needs.yaml");
    writeFileSync(
      file,
      "name: t\nstages:\n  a: { skill: emit, with: { value: 1 } }\n  b: { skill: emit, needs: [a], with: { value: 2, source: later.txt } }\n",
    );
    const r = cli(["run", file, "--skills-dir", TEST_SKILLS], { cwd: ws });
    expect(r.code).toBe(1); // a ran; b failed when it found no later.txt
    expect(r.stderr).toMatch(/✔ a|a +succeeded|a .*ok/);
    expect(r.stderr).toMatch(/later\.txt/);
  });

  it("run refuses a foreach value with a path in it before writing anything", () => {
    const ws = mkdtempSync(join(tmpdir(), "medpipe-esc-"));
    const file = join(ws, "esc.yaml");
    writeFileSync(
      file,
      'name: esc\nparams: { tag: "a/../../../../../escaped" }\nstages:\n  e: { skill: emit, foreach: { v: ["${params.tag}"] }, with: { value: 4242 } }\n',
    );
    const r = cli(["run", file, "--skills-dir", TEST_SKILLS, "--runs-dir", join(ws, "deep/runs")], {
      cwd: ws,
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/contains a path separator/);
    expect(existsSync(join(ws, "deep"))).toBe(false);
    expect(existsSync(join(ws, "escaped]"))).toBe(false);
  });

  it("an unknown profile and an unknown --set param are usage errors", () => {
    const file = join(dir, "ok.yaml");
    writeFileSync(file, "name: t\nparams: { a: 1 }\nstages:\n  s: { skill: emit, with: { value: 1 } }\n");
    const p = cli(["validate", file, "--profile", "nope", "--skills-dir", TEST_SKILLS], { cwd: dir });
    expect(p.code).toBe(2);
    expect(p.stderr).toMatch(/no profile 'nope'/);
    const s = cli(["validate", file, "--set", "b=2", "--skills-dir", TEST_SKILLS], { cwd: dir });
    expect(s.code).toBe(2);
    expect(s.stderr).toMatch(/--set b=2: no param 'b'; expected one of: a/);
  });

  it("a --set value is data: its ${env.*} is not expanded, the manifest's own is", () => {
    const file = join(dir, "echo.yaml");
    writeFileSync(
      file,
      'name: echo\nparams: { a: "${env.MEDPIPE_TEST_SECRET}", b: 1 }\n' +
        'stages:\n  s: { skill: emit, with: { value: ["${params.a}", "${params.b}"] } }\n',
    );
    const env = { MEDPIPE_TEST_SECRET: "hunter2" };
    const own = cli(["run", file, "--skills-dir", TEST_SKILLS, "--runs-dir", join(dir, "runs-own")], {
      cwd: dir,
      env,
    });
    expect(own.code).toBe(0);
    const ownRun = own.stdout.trim().split("\n").pop() as string;
    expect(JSON.parse(readFileSync(join(ownRun, "stages/s/output.json"), "utf8")).value).toEqual([
      "hunter2",
      1,
    ]);
    const set = cli(
      [
        "run",
        file,
        "--set",
        "b=${env.MEDPIPE_TEST_SECRET}",
        "--skills-dir",
        TEST_SKILLS,
        "--runs-dir",
        join(dir, "runs-set"),
      ],
      { cwd: dir, env },
    );
    expect(set.code).toBe(0);
    const setRun = set.stdout.trim().split("\n").pop() as string;
    expect(JSON.parse(readFileSync(join(setRun, "stages/s/output.json"), "utf8")).value).toEqual([
      "hunter2",
      "${env.MEDPIPE_TEST_SECRET}",
    ]);
    expect(JSON.parse(readFileSync(join(setRun, "run.json"), "utf8")).params.b).toBe(
      "${env.MEDPIPE_TEST_SECRET}",
    );
  });

  it("an empty path is refused, not read as the workspace", () => {
    const file = join(dir, "empty-path.yaml");
    writeFileSync(
      file,
      'name: t\nparams: { src: data.txt }\nstages:\n  s: { skill: emit, with: { value: 1, source: "${params.src}" } }\n',
    );
    const r = cli(["plan", file, "--set", "src=", "--skills-dir", TEST_SKILLS], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /error: stage 's' \(skill emit\): input 'source' is an empty path\n {2}expected: a file or folder path/,
    );
  });

  it("--profile smoke and --profile sanity set the mode as --smoke and --sanity do", () => {
    const file = join(dir, "profiles.yaml");
    writeFileSync(
      file,
      "name: t\nparams: { a: 1 }\nprofiles:\n  smoke: { params: { a: 2 } }\n  other: { params: { a: 3 } }\n" +
        "stages:\n  s: { skill: emit, with: { value: 1 } }\n",
    );
    const mode = (...args: string[]) =>
      JSON.parse(cli(["validate", file, "--json", "--skills-dir", TEST_SKILLS, ...args], { cwd: dir }).stdout)
        .mode;
    expect(mode("--profile", "smoke")).toBe("smoke");
    expect(mode("--smoke")).toBe("smoke");
    // A sanity run needs a reference, whichever way it is asked for.
    for (const args of [["--sanity"], ["--profile", "sanity"]]) {
      const r = cli(["validate", file, "--skills-dir", TEST_SKILLS, ...args], { cwd: dir });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/--sanity: .*profiles\.yaml names no reference/);
    }
    expect(mode("--profile", "other")).toBe("full");
    expect(mode()).toBe("full");
  });
});

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
