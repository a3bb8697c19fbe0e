// The smaller commands: skills, graph, plan --json, run --json (NDJSON events), doctor, usage errors.
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BIN, cli, ROOT, TEST_SKILLS } from "./support/cli.js";
import { python } from "./support/oracle.js";
import { makeWorkspace } from "./support/workspace.js";

const CHAIN = `${ROOT}tests/pipelines/chain.yaml`;

describe("cli", () => {
  it("skills lists the project's and the extra folder's skills; show prints inputs and outputs", () => {
    const list = cli(["skills", "--skills-dir", TEST_SKILLS], { cwd: ROOT });
    expect(list.code).toBe(0);
    for (const id of ["selftest", "emit", "combine", "sleeper", "liar", "gpu-needy"])
      expect(list.stdout).toMatch(new RegExp(`^${id} `, "m"));
    const show = cli(["skills", "show", "emit", "--skills-dir", TEST_SKILLS], { cwd: ROOT });
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/--count {2}\{"type":"integer","minimum":0\} {2}\(default 0\)/);
    expect(show.stdout).toMatch(/text: out\.txt/);
    const unknown = cli(["skills", "show", "nope"], { cwd: ROOT });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^error: unknown skill 'nope'; expected one of: .*selftest/);
  });

  it("a reader that closes the pipe early is no error: plan exits 0 and a run still finishes", async () => {
    const ws = makeWorkspace();
    ws.write("data/input.txt", "x\n");
    // Both pipes closed before the command writes a byte: every write of plan and run fails (EPIPE).
    const closed = (args: string[]) =>
      new Promise<{ code: number | null; dir: string }>((done) => {
        const child = spawn(process.execPath, [BIN, ...args, "--skills-dir", TEST_SKILLS], {
          cwd: ws.dir,
          stdio: ["ignore", "pipe", "pipe"],
        });
        child.stdout.destroy();
        child.stderr.destroy();
        child.on("close", (code) => done({ code, dir: ws.dir }));
      });
    expect((await closed(["plan", CHAIN])).code).toBe(0);
    expect((await closed(["run", CHAIN])).code).toBe(0);
    // The run went on to its end although nobody read its progress.
    expect(ws.statuses(ws.latestRun("chain"))).toMatchObject({ last: "succeeded" });
  });

  it("graph prints Mermaid; validate --json lists the instances", () => {
    const g = cli(["graph", CHAIN, "--smoke", "--skills-dir", TEST_SKILLS], { cwd: ROOT });
    expect(g.code).toBe(0);
    expect(g.stdout).toContain("first --> fan_all");
    const v = cli(["validate", CHAIN, "--json", "--skills-dir", TEST_SKILLS], { cwd: ROOT });
    expect(JSON.parse(v.stdout)).toEqual({
      ok: true,
      pipeline: "chain",
      mode: "full",
      profile: null,
      stages: ["first", "fan[fold=0]", "fan[fold=1]", "fan[fold=2]", "gather", "last"],
    });
  });

  it("run --json streams NDJSON events, and the gathered values are right", () => {
    const ws = makeWorkspace();
    ws.write("data/input.txt", "12345\n");
    const r = cli(["run", CHAIN, "--json", "--skills-dir", ws.skills], { cwd: ws.dir });
    expect(r.code).toBe(0);
    const events = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(events[0]).toMatchObject({ event: "run-start", pipeline: "chain", resumed: false });
    expect(events.at(-1)).toMatchObject({ event: "run-end", status: "succeeded", counts: { succeeded: 6 } });
    const progress = events.filter((e) => e.event === "stage-progress" && e.stage === "fan[fold=2]");
    expect(progress.map((e) => e.data)).toEqual([
      { event: "step", epoch: 1, of: 2, loss: 1 },
      { event: "step", epoch: 2, of: 2, loss: 0.5 },
    ]);
    const ends = Object.fromEntries(
      events.filter((e) => e.event === "stage-end").map((e) => [e.stage, e.status]),
    );
    expect(Object.values(ends).every((s) => s === "succeeded")).toBe(true);
    // first.value = scale = 10; fan[fold=k] = 10k; gather = 0 + 10 + 20; last = 31; source has 6 bytes.
    const runDir = events.at(-1).run_dir as string;
    const out = (stage: string) =>
      JSON.parse(python<string>(`OUTPUT = open(INPUT).read()`, `${runDir}/stages/${stage}/output.json`));
    expect(out("first")).toMatchObject({ value: 10, source_bytes: 6 });
    expect(out("gather")).toMatchObject({ sum: 30, count: 3 });
    expect(out("last").value).toBe(31);
  });

  it("doctor reports the Python runtime and exits 0 when torch is there", () => {
    const r = cli(["doctor", "--json"], { cwd: ROOT });
    const report = JSON.parse(r.stdout) as {
      checks: { name: string; ok: boolean; detail: string; fix?: string }[];
    };
    const py = report.checks.find((c) => c.name === "python (torch + numpy)");
    expect(py?.ok).toBe(true);
    expect(py?.detail).toMatch(/torch \d/);
    // A real export of a tiny network (Debian's torch 1.13 writes opset 17).
    expect(report.checks.find((c) => c.name === "onnx export")).toMatchObject({
      ok: true,
      detail: "model.onnx writes (opset 17)",
    });
    expect(r.code).toBe(0);
  });

  it("doctor fails, with the reason, when torch cannot write model.onnx", () => {
    // A torch whose TorchScript exporter is gone, as a newer release may ship: a sitecustomize
    // on the child's PYTHONPATH replaces torch.onnx.export.
    const hook = mkdtempSync(join(tmpdir(), "medpipe-doctor-hook-"));
    writeFileSync(
      join(hook, "sitecustomize.py"),
      [
        "import torch.onnx",
        "def _gone(*args, **kwargs):",
        '    raise RuntimeError("the TorchScript-based ONNX exporter was removed")',
        "torch.onnx.export = _gone",
        "",
      ].join("\n"),
    );
    const r = cli(["doctor", "--json"], { cwd: ROOT, env: { PYTHONPATH: hook } });
    const report = JSON.parse(r.stdout) as { checks: { name: string; ok: boolean; detail: string }[] };
    const check = report.checks.find((c) => c.name === "onnx export");
    expect(check?.ok).toBe(false);
    expect(check?.detail).toMatch(
      /cannot write model\.onnx, so every training stage would fail at packaging: RuntimeError: the TorchScript-based ONNX exporter was removed$/,
    );
    expect(r.code).toBe(1);
  });

  it("usage errors exit 2", () => {
    expect(cli(["run"], { cwd: ROOT }).code).toBe(2);
    expect(cli(["frobnicate"], { cwd: ROOT }).code).toBe(2);
    const jobs = cli(["run", CHAIN, "--jobs", "0", "--skills-dir", TEST_SKILLS], { cwd: ROOT });
    expect(jobs.code).toBe(2);
    expect(jobs.stderr).toMatch(/--jobs 0: expected a positive integer/);
    expect(cli(["--help"], { cwd: ROOT }).code).toBe(0);
  });

  it("bad flags read as flags: run-script's missing or repeated input, folder flags that name a file, evaluate's keys", () => {
    const dir = mkdtempSync(join(tmpdir(), "medpipe-flags-"));
    const file = join(dir, "afile");
    writeFileSync(file, "not a folder\n");
    const refused = [
      [
        ["run-script", "analyze"],
        "error: analyze: missing --dataset VALUE (dataset: the dataset - an MSD or nnU-Net raw folder, a folder of 2D .npy pairs, a datalist .json or a .csv)",
      ],
      [
        ["run-script", "analyze", "--dataset", "a", "--dataset", "b"],
        "error: analyze: --dataset given twice; expected it once (a list as one JSON value)",
      ],
      [
        ["run-script", "--runs-dir", "afile/sub", "selftest"],
        `error: --runs-dir ${file}/sub: ${file} is a file, so no folder can be made there`,
      ],
      [
        ["run", CHAIN, "--skills-dir", TEST_SKILLS, "--runs-dir", "afile", "--set", `source=${file}`],
        `error: --runs-dir ${file}: is a file; expected a folder (new or existing)`,
      ],
      [
        ["fixtures", "make", "heart", "--out", "afile"],
        `error: --out ${file}: is a file; expected a folder (new or existing)`,
      ],
    ] as const;
    for (const [args, line] of refused) {
      const r = cli([...args], { cwd: dir });
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr).toBe(`${line}\n`);
    }
    expect(existsSync(join(dir, "runs"))).toBe(false);
    // toJson in src/evaluate/format.ts writes these four keys.
    expect(cli(["evaluate", "--help"], { cwd: dir }).stdout).toContain("{cases, summary, definition, notes}");
  });

  it("evaluate's note names at most 20 unscored prediction labels", () => {
    const dir = mkdtempSync(join(tmpdir(), "medpipe-notes-"));
    const pred = join(dir, "pred.npy");
    const gt = join(dir, "gt.npy");
    // An intensity-like prediction (values 0..39) against a binary reference (label 1 only).
    python(
      "import numpy as np\nv = np.arange(64 * 64).reshape(64, 64)\n" +
        "np.save(INPUT['pred'], (v % 40).astype(np.uint8))\nnp.save(INPUT['gt'], (v % 2).astype(np.uint8))",
      { pred, gt },
    );
    const r = cli(["evaluate", "--pred", pred, "--gt", gt, "--json"], { cwd: dir });
    expect(r.code).toBe(0);
    const first20 = Array.from({ length: 20 }, (_, i) => i + 2).join(", ");
    expect(JSON.parse(r.stdout).notes).toEqual([
      `label ${first20} and 18 more: in predictions but not scored (in no reference; use --labels to score)`,
    ]);
  });

  it("settings that cannot work are errors naming them, not silently replaced", () => {
    const dir = mkdtempSync(join(tmpdir(), "medpipe-settings-"));
    const missing = join(dir, "nonexist");
    const refused = [
      [
        ["run", CHAIN, "--skills-dir", missing],
        {},
        `error: --skills-dir ${missing}: no such folder (expected a folder of skills)`,
      ],
      [
        ["skills"],
        { PIPELINE_SKILLS_PATH: `${TEST_SKILLS}:${missing}` },
        `error: PIPELINE_SKILLS_PATH ${missing}: no such folder (expected a folder of skills)`,
      ],
      [
        ["run-script", "selftest"],
        { MEDPIPE_KILL_GRACE_MS: "abc" },
        "error: MEDPIPE_KILL_GRACE_MS=abc: expected whole milliseconds in 0..2147483647 (default 5000)",
      ],
      [
        ["run", CHAIN, "--executor", "slurm", "--skills-dir", TEST_SKILLS],
        { PATH: missing },
        "error: --executor slurm: sbatch, squeue, scancel not found on PATH; expected a machine that can submit Slurm jobs",
      ],
    ] as const;
    for (const [args, env, line] of refused) {
      const r = cli([...args], { cwd: dir, env });
      expect(r.code, args.join(" ")).toBe(2);
      expect(r.stderr).toBe(`${line}\n`);
    }
    // Refused before a run folder was made.
    expect(existsSync(join(dir, "runs"))).toBe(false);

    const python = { PIPELINE_PYTHON: join(dir, "nopython") };
    const why = `PIPELINE_PYTHON=${python.PIPELINE_PYTHON}: not found (when set, no other Python is tried)`;
    const run = cli(["run-script", "selftest"], { cwd: dir, env: python });
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(why);
    const doctor = cli(["doctor", "--json"], { cwd: dir, env: python });
    expect(doctor.code).toBe(1);
    const checks = (JSON.parse(doctor.stdout) as { checks: { name: string; ok: boolean; detail: string }[] })
      .checks;
    expect(checks.find((c) => c.name === "python (torch + numpy)")).toMatchObject({ ok: false, detail: why });
  });
});
