// The verifier on a real run of the test skills, and on tampered copies of it: each tamper is
// caught by exactly the check meant for it, and the clean run passes.
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { type Evidence, rootHash } from "../src/evidence/evidence.js";
import { cli, ROOT } from "./support/cli.js";
import { makeWorkspace, type Workspace } from "./support/workspace.js";

const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

let ws: Workspace;
let clean: string;
let n = 0;

/** A copy of the clean run, changed by `tamper`. */
function tampered(tamper: (dir: string) => void): string {
  const dir = join(ws.dir, "tampered", String(n++));
  cpSync(clean, dir, { recursive: true });
  rmSync(join(dir, "verify"), { recursive: true, force: true });
  tamper(dir);
  return dir;
}

/** An adversary who edits a file and then re-records its digests so that evidence.json agrees. */
function forge(dir: string, stage: string, file: string, edit: (text: string) => string): void {
  const path = join(dir, "stages", stage, file);
  writeFileSync(path, edit(readFileSync(path, "utf8")));
  const evPath = join(dir, "evidence.json");
  const ev = JSON.parse(readFileSync(evPath, "utf8")) as Evidence;
  const rec = ev.stages[stage];
  if (!rec) throw new Error(`no stage ${stage}`);
  const bytes = readFileSync(path);
  for (const a of rec.artifacts)
    if (a.path === file) Object.assign(a, { sha256: sha(bytes), bytes: bytes.length });
  if (file === "output.json") rec.output_json_sha256 = sha(bytes);
  ev.root_hash = rootHash(ev);
  writeFileSync(evPath, JSON.stringify(ev, null, 2));
}

/** run.json rewritten with `edit` applied, as a hand edit after the run would leave it. */
function editRun(dir: string, edit: (run: Record<string, unknown>) => void): void {
  const p = join(dir, "run.json");
  const run = JSON.parse(readFileSync(p, "utf8")) as Record<string, unknown>;
  edit(run);
  writeFileSync(p, JSON.stringify(run, null, 2));
}

function verify(dir: string) {
  const r = cli(["verify", dir, "--json", "--skills-dir", ws.skills], { cwd: ws.dir });
  const report = JSON.parse(r.stdout) as {
    verdict: string;
    checks: { id: string; verdict: string; message: string; evidence: string[] }[];
  };
  return { code: r.code, report, failed: report.checks.filter((c) => c.verdict === "fail").map((c) => c.id) };
}

describe("verify", () => {
  beforeAll(() => {
    ws = makeWorkspace();
    ws.write("data/input.txt", "abc\n");
    const r = cli(["run", join(ROOT, "tests/pipelines/chain.yaml"), "--skills-dir", ws.skills], {
      cwd: ws.dir,
    });
    expect(r.code).toBe(0);
    clean = ws.latestRun("chain");
  });

  it("passes the untouched run and writes report.json and report.md", () => {
    const v = verify(clean);
    expect(v.failed).toEqual([]);
    expect(v.code).toBe(0);
    expect(v.report.checks.map((c) => c.id)).toEqual([
      "integrity.evidence-present",
      "integrity.root-hash",
      "integrity.run-record",
      "integrity.artifacts",
      "outputs.schema",
      "outputs.artifact-claims",
      "cv.split",
      "cv.folds",
      "checkpoint.finite",
      "checkpoint.best-of-trace",
      "checkpoint.not-initial",
      "claims.per-case",
      "claims.aggregates",
      "checkpoint.onnx-weights",
      "package.card",
      "model.predictions",
      "smoke.no-quality-claims",
      "run.completed",
    ]);
    expect(readFileSync(join(clean, "verify/report.md"), "utf8")).toMatch(/^# Verification: PASS/);
  });

  const cases: {
    name: string;
    tamper: (dir: string) => void;
    caughtBy: string[];
    pointer?: string;
    message?: RegExp;
  }[] = [
    {
      name: "a value edited in output.json",
      tamper: (d) => {
        const p = join(d, "stages/gather/output.json");
        writeFileSync(p, readFileSync(p, "utf8").replace('"sum": 30', '"sum": 31'));
      },
      caughtBy: ["integrity.artifacts"],
      pointer: "stages/gather/output.json",
    },
    {
      name: "an artifact deleted",
      tamper: (d) => rmSync(join(d, "stages/fan[fold=1]/out.txt")),
      caughtBy: ["integrity.artifacts"],
      pointer: "stages/fan[fold=1]/out.txt",
    },
    {
      name: "an extra file",
      tamper: (d) => writeFileSync(join(d, "stages/last/better-results.json"), "{}"),
      caughtBy: ["integrity.artifacts"],
      pointer: "stages/last/better-results.json",
    },
    {
      name: "a stage folder evidence.json does not know",
      tamper: (d) => cpSync(join(d, "stages/last"), join(d, "stages/bonus"), { recursive: true }),
      caughtBy: ["integrity.artifacts"],
      pointer: "stages/bonus",
    },
    {
      name: "evidence.json's root hash edited",
      tamper: (d) => {
        const p = join(d, "evidence.json");
        const ev = JSON.parse(readFileSync(p, "utf8"));
        ev.root_hash = sha("forged");
        writeFileSync(p, JSON.stringify(ev));
      },
      caughtBy: ["integrity.root-hash"],
    },
    {
      name: "a recorded digest edited in evidence.json",
      tamper: (d) => {
        const p = join(d, "evidence.json");
        const ev = JSON.parse(readFileSync(p, "utf8")) as Evidence;
        (ev.stages.first?.artifacts[0] as { sha256: string }).sha256 = sha("forged");
        writeFileSync(p, JSON.stringify(ev));
      },
      // The records no longer vouch for anything: integrity.artifacts leaves the files unjudged.
      caughtBy: ["integrity.root-hash"],
    },
    {
      name: "a forged output.json that breaks its schema, digests re-recorded",
      tamper: (d) => forge(d, "gather", "output.json", (t) => t.replace('"sum": 30', '"sum": "thirty"')),
      caughtBy: ["outputs.schema"],
      pointer: "stages/gather/output.json",
    },
    {
      name: "a forged artifact whose digest the stage's own output.json contradicts",
      tamper: (d) => forge(d, "first", "out.txt", () => "11\n"),
      caughtBy: ["outputs.artifact-claims"],
      pointer: "stages/first/output.json#/artifacts/0",
    },
    {
      name: "a forged output.json that claims another mode",
      tamper: (d) => forge(d, "last", "output.json", (t) => t.replace('"mode": "full"', '"mode": "sanity"')),
      caughtBy: ["outputs.schema"],
      pointer: "stages/last/output.json#/mode",
    },
    {
      name: "evidence.json cut short (not JSON any more)",
      tamper: (d) => writeFileSync(join(d, "evidence.json"), "{"),
      caughtBy: ["integrity.evidence-present"],
      pointer: "evidence.json",
      message: /^evidence\.json is not valid JSON \(.+\): the run's records cannot be judged$/,
    },
    {
      name: "a param edited in run.json after the run",
      tamper: (d) => editRun(d, (r) => Object.assign(r.params as object, { folds: 5 })),
      caughtBy: ["integrity.run-record"],
      pointer: "run.json#/params/folds",
      message: /^run\.json was edited after its stages were recorded: params\/folds changed /,
    },
    {
      name: "a param added to run.json after the run",
      tamper: (d) => editRun(d, (r) => Object.assign(r.params as object, { epochs: 100 })),
      caughtBy: ["integrity.run-record"],
      pointer: "run.json#/params/epochs",
      message: /: params\/epochs added /,
    },
    {
      name: "run.json's manifest digest edited",
      tamper: (d) => editRun(d, (r) => Object.assign(r, { manifest_sha256: sha("another manifest") })),
      caughtBy: ["integrity.run-record"],
      pointer: "run.json#/manifest_sha256",
    },
    {
      name: "a run marked succeeded although a stage failed",
      tamper: (d) => {
        const p = join(d, "run.json");
        writeFileSync(p, readFileSync(p, "utf8").replace('"status": "succeeded"', '"status": "failed"'));
      },
      caughtBy: ["run.completed"],
    },
  ];

  it.each(cases)("catches $name", (c) => {
    const v = verify(tampered(c.tamper));
    expect(v.failed).toEqual(c.caughtBy);
    expect(v.code).toBe(1);
    if (c.pointer) {
      const check = v.report.checks.find((x) => x.id === c.caughtBy[0]);
      expect(check?.evidence).toContain(c.pointer);
      if (c.message) expect(check?.message).toMatch(c.message);
    }
  });

  it("refuses a path that is not a run folder with one line and exit 2, writing nothing there", () => {
    const file = ws.write("notes.json", "{}\n");
    const folder = join(ws.dir, "not-a-run");
    mkdirSync(join(folder, "stages"), { recursive: true });
    for (const [path, line] of [
      [file, `error: ${file}: a file, expected a run folder\n`],
      [folder, `error: ${folder}: no run.json there, expected a run folder\n`],
    ] as const) {
      const r = cli(["verify", path, "--skills-dir", ws.skills], { cwd: ws.dir });
      expect(r.code).toBe(2);
      expect(r.stderr).toBe(line);
      expect(r.stdout).toBe("");
    }
    // A run whose run.json is damaged cannot say which run it is: refused the same way.
    const damaged = tampered((d) => writeFileSync(join(d, "run.json"), "{"));
    const r = cli(["verify", damaged, "--skills-dir", ws.skills], { cwd: ws.dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /^error: \S+\/run\.json: not valid JSON \([^\n]+\), expected the run's record\n$/,
    );
    expect(existsSync(join(damaged, "verify"))).toBe(false);
    expect(readdirSync(folder)).toEqual(["stages"]);
    expect(existsSync(join(ws.dir, "notes.json", "verify"))).toBe(false);
    const j = cli(["verify", folder, "--json", "--skills-dir", ws.skills], { cwd: ws.dir });
    expect(j.code).toBe(2);
    expect(JSON.parse(j.stdout).error).toMatchObject({ kind: "usage" });
  });
});
