// Faults with real processes: a stage killed with -9, Ctrl-C on the engine, a timeout, an
// output.json that breaks its schema, a GPU that is not there.
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { cli, cliAsync, ROOT } from "./support/cli.js";
import { alive, makeWorkspace } from "./support/workspace.js";

async function waitFor<T>(f: () => T | undefined, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 50));
  }
}

function pids(dir: string, stage: string): [number, number] | undefined {
  const f = join(dir, `${stage}.pids`);
  if (!existsSync(f)) return undefined;
  const parts = readFileSync(f, "utf8").trim().split(" ").map(Number);
  return parts.length === 2 ? (parts as [number, number]) : undefined;
}

const SLOW = (sleepMs: number, extra = "") => `
name: slow
params: { sleep: ${sleepMs} }
stages:
  a: { skill: emit, with: { value: 1 } }
  slow:
    skill: sleeper
    ${extra}
    with: { pid_dir: pids, sleep_ms: "\${params.sleep}" }
  after: { skill: emit, needs: [slow], with: { value: "\${a.value}" } }
`;

describe("faults", () => {
  it("kill -9 of a stage: no output.json, run failed; --resume reruns only it and its dependents", async () => {
    const ws = makeWorkspace();
    ws.write("pids/.keep", "");
    const manifest = ws.write("slow.yaml", SLOW(2500));
    const run = cliAsync(["run", manifest, "--skills-dir", ws.skills], { cwd: ws.dir });
    const [stagePid, grandchild] = await waitFor(() => pids(join(ws.dir, "pids"), "slow"));
    process.kill(stagePid, "SIGKILL");
    const r = await run.done;
    expect(r.code).toBe(1);
    const dir = ws.latestRun("slow");
    expect(JSON.parse(readFileSync(join(dir, "run.json"), "utf8")).status).toBe("failed");
    const rec = ws.evidence(dir).stages.slow;
    expect(rec?.status).toBe("failed");
    expect(rec?.reason).toBe("killed by SIGKILL");
    expect(existsSync(join(dir, "stages/slow"))).toBe(false);
    expect(readdirSync(join(dir, "failed/slow"))).toEqual(["attempt-1"]);
    expect(existsSync(join(dir, "failed/slow/attempt-1/output.json"))).toBe(false);
    expect(ws.statuses(dir).after).toBe("skipped");
    await waitFor(() => (alive(grandchild) ? undefined : true), 5000); // its group went with it

    const resumed = cli(["run", manifest, "--resume", "--skills-dir", ws.skills], { cwd: ws.dir });
    expect(resumed.code).toBe(0);
    expect(resumed.stdout.trim().split("\n").pop()).toBe(dir); // the same run, continued
    expect(ws.statuses(dir)).toEqual({ a: "cached", slow: "succeeded", after: "succeeded" });
    expect(existsSync(join(dir, "stages/slow/output.json"))).toBe(true);
    // why compares the rerun with the attempt it replaced in this run: the first attempt wrote
    // its pids into pid_dir, so that input's content is what changed
    const why = cli(["why", dir, "slow"], { cwd: ws.dir });
    expect(why.stdout).toMatch(
      /^slow: succeeded \(compared with its earlier attempt in this run\)\n {2}- content of input 'pid_dir' changed \(sha256 [0-9a-f]{12}… → [0-9a-f]{12}…\)\n$/,
    );

    // Resuming with a changed param replaces the stage, keeping the old result aside.
    const again = cli(["run", manifest, "--resume", "--set", "sleep=10", "--skills-dir", ws.skills], {
      cwd: ws.dir,
    });
    expect(again.code).toBe(0);
    expect(ws.statuses(dir)).toEqual({ a: "cached", slow: "succeeded", after: "succeeded" });
    expect(readdirSync(join(dir, "superseded/slow"))).toHaveLength(1);
    expect(JSON.parse(readFileSync(join(dir, "stages/slow/output.json"), "utf8")).slept_ms).toBe(10);
    expect(cli(["why", dir, "slow"], { cwd: ws.dir }).stdout).toMatch(
      /^ {2}- input 'sleep_ms' changed: 2500 → 10$/m,
    );
  });

  it("Ctrl-C: every stage process group ends (SIGKILL after the grace period), run interrupted, exit 130", async () => {
    const ws = makeWorkspace();
    ws.write("pids/.keep", "");
    const manifest = ws.write("slow.yaml", SLOW(60_000).replace("ignore_sigterm", "x"));
    const stubborn = manifest.replace(".yaml", "-stubborn.yaml");
    ws.write(
      "slow-stubborn.yaml",
      SLOW(60_000).replace(
        'sleep_ms: "${params.sleep}" }',
        'sleep_ms: "${params.sleep}", ignore_sigterm: true }',
      ),
    );
    const run = cliAsync(["run", stubborn, "--skills-dir", ws.skills], {
      cwd: ws.dir,
      env: { MEDPIPE_KILL_GRACE_MS: "500" },
    });
    const [stagePid, grandchild] = await waitFor(() => pids(join(ws.dir, "pids"), "slow"));
    run.child.kill("SIGINT");
    const r = await run.done;
    expect(r.code).toBe(130);
    expect(alive(stagePid)).toBe(false);
    await waitFor(() => (alive(grandchild) ? undefined : true), 5000);
    const dir = ws.latestRun("slow");
    expect(JSON.parse(readFileSync(join(dir, "run.json"), "utf8")).status).toBe("interrupted");
    expect(ws.statuses(dir).slow).toBe("interrupted");
    expect(existsSync(join(dir, "stages/slow"))).toBe(false);
  });

  it("a second Ctrl-C kills a stage that ignores SIGTERM at once, not after the grace period", async () => {
    const ws = makeWorkspace();
    ws.write("pids/.keep", "");
    const manifest = ws.write(
      "slow.yaml",
      SLOW(60_000).replace(
        'sleep_ms: "${params.sleep}" }',
        'sleep_ms: "${params.sleep}", ignore_sigterm: true }',
      ),
    );
    const run = cliAsync(["run", manifest, "--skills-dir", ws.skills], {
      cwd: ws.dir,
      env: { MEDPIPE_KILL_GRACE_MS: "60000" },
    });
    const [stagePid] = await waitFor(() => pids(join(ws.dir, "pids"), "slow"));
    run.child.kill("SIGINT");
    await new Promise((r) => setTimeout(r, 1000));
    expect(alive(stagePid)).toBe(true); // it ignored the SIGTERM, and its grace is a minute
    const second = Date.now();
    run.child.kill("SIGINT");
    const r = await run.done;
    expect(r.code).toBe(130);
    expect(Date.now() - second).toBeLessThan(30_000); // a hang guard, not a speed target
    expect(alive(stagePid)).toBe(false);
    expect(ws.statuses(ws.latestRun("slow")).slow).toBe("interrupted");
  });

  it("a timeout fails the stage with reason 'timeout'", () => {
    const ws = makeWorkspace();
    ws.write("pids/.keep", "");
    const manifest = ws.write("slow.yaml", SLOW(60_000, "timeout: 1s"));
    const started = Date.now();
    const r = cli(["run", manifest, "--skills-dir", ws.skills], {
      cwd: ws.dir,
      env: { MEDPIPE_KILL_GRACE_MS: "500" },
    });
    expect(r.code).toBe(1);
    expect(Date.now() - started).toBeLessThan(30_000);
    const rec = ws.evidence(ws.latestRun("slow")).stages.slow;
    expect(rec?.reason).toMatch(/^timeout after 1\.0 s$/);
    const [, grandchild] = pids(join(ws.dir, "pids"), "slow") as [number, number];
    expect(alive(grandchild)).toBe(false);
  });

  it("an output.json that breaks its schema fails the stage, naming the schema path; retries are recorded", () => {
    const ws = makeWorkspace();
    const manifest = ws.write(
      "liar.yaml",
      'name: liar\nstages:\n  lie: { skill: liar, retries: 1, with: { dice: "high" } }\n',
    );
    const r = cli(["run", manifest, "--skills-dir", ws.skills], { cwd: ws.dir });
    expect(r.code).toBe(1);
    const dir = ws.latestRun("liar");
    const rec = ws.evidence(dir).stages.lie;
    expect(rec?.status).toBe("failed");
    expect(rec?.attempts).toBe(2);
    expect(rec?.reason).toBe(
      "output.json does not match tests/skills/liar/liar.output.schema.json: /metrics/dice must be number (schema path #/properties/metrics/properties/dice/type)".replace(
        "tests/skills",
        rel(ws.skills),
      ),
    );
    expect(existsSync(join(dir, "stages/lie"))).toBe(false);
    expect(readdirSync(join(dir, "failed/lie")).sort()).toEqual(["attempt-1", "attempt-2"]);
    expect(existsSync(join(dir, "failed/lie/attempt-1/output.json.rejected"))).toBe(true);
    expect(r.stderr).toMatch(/✖ lie {2}failed/);
  });

  it("gpu: required fails clearly without a GPU and gets the one CUDA_VISIBLE_DEVICES offers", () => {
    const ws = makeWorkspace();
    const manifest = ws.write("gpu.yaml", "name: gpu\nstages:\n  g: { skill: gpu-needy }\n");
    const none = cli(["run", manifest, "--skills-dir", ws.skills], {
      cwd: ws.dir,
      env: { CUDA_VISIBLE_DEVICES: "" },
    });
    expect(none.code).toBe(1);
    expect(ws.evidence(ws.latestRun("gpu")).stages.g?.reason).toMatch(
      /^needs a GPU \(resources.gpu: required\)/,
    );
    const one = cli(["run", manifest, "--skills-dir", ws.skills], {
      cwd: ws.dir,
      env: { CUDA_VISIBLE_DEVICES: "3" },
    });
    expect(one.code).toBe(0);
    const out = JSON.parse(readFileSync(join(ws.latestRun("gpu"), "stages/g/output.json"), "utf8"));
    expect(out.value).toBe("3");
    expect(out.stages_per_gpu).toBe("1");
    // Sharing is not part of a stage's key (it changes no result): a fresh workspace, not a cache hit.
    const other = makeWorkspace();
    const m2 = other.write("gpu.yaml", "name: gpu\nstages:\n  g: { skill: gpu-needy }\n");
    const shared = cli(["run", m2, "--skills-dir", other.skills, "--stages-per-gpu", "4"], {
      cwd: other.dir,
      env: { CUDA_VISIBLE_DEVICES: "3" },
    });
    expect(shared.code).toBe(0);
    const again = JSON.parse(readFileSync(join(other.latestRun("gpu"), "stages/g/output.json"), "utf8"));
    expect(again.stages_per_gpu).toBe("4");
  });

  it("stages_per_gpu lets that many GPU stages share a device at once; --stages-per-gpu overrides it", () => {
    const ws = makeWorkspace();
    const manifest = ws.write(
      "share.yaml",
      [
        "name: share",
        "stages_per_gpu: 2",
        "params: { tag: a }",
        "stages:",
        "  g:",
        "    skill: emit",
        '    foreach: { i: "${range(4)}" }',
        '    with: { value: "${params.tag}${i}", sleep_ms: 1500 }',
        "    resources: { gpu: required }",
        "",
      ].join("\n"),
    );
    /** Per device: how many stage processes ran on it at most at the same time. */
    const sharing = (dir: string): Record<string, number> => {
      // A stage's record starts before it waits for a device; its process ran for wall_s before it
      // ended (give or take the output checks after it, hence 200 ms of slack: sharing overlaps 1.5 s).
      const spans = Object.values(ws.evidence(dir).stages).map((s) => {
        const end = Date.parse(s.ended as string);
        return { device: s.device as string, from: end - (s.wall_s as number) * 1000, end };
      });
      const most: Record<string, number> = {};
      for (const s of spans) {
        const along = spans.filter((o) => o.device === s.device && o.from <= s.from && s.from + 200 < o.end);
        most[s.device] = Math.max(most[s.device] ?? 0, along.length);
      }
      return most;
    };
    const run = (...extra: string[]) =>
      cli(["run", manifest, "--skills-dir", ws.skills, "--jobs", "4", ...extra], {
        cwd: ws.dir,
        env: { CUDA_VISIBLE_DEVICES: "0,1" },
      });
    expect(run().code).toBe(0);
    const shared = ws.latestRun("share");
    expect(sharing(shared)).toEqual({ "0": 2, "1": 2 });
    expect(JSON.parse(readFileSync(join(shared, "run.json"), "utf8")).gpus).toEqual({
      devices: ["0", "1"],
      stages_per_gpu: 2,
    });
    expect(run("--stages-per-gpu", "1", "--set", "tag=b").code).toBe(0);
    const alone = ws.latestRun("share");
    expect(sharing(alone)).toEqual({ "0": 1, "1": 1 });
    expect(JSON.parse(readFileSync(join(alone, "run.json"), "utf8")).gpus.stages_per_gpu).toBe(1);
    const bad = run("--stages-per-gpu", "0");
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toBe("error: --stages-per-gpu 0: expected a positive integer");
  });
});

function rel(abs: string): string {
  return relative(ROOT, abs);
}

describe("one process per run folder", () => {
  it("a --resume while the run goes on is refused, naming the holder; the lock goes at the end, also on SIGTERM", async () => {
    const ws = makeWorkspace();
    ws.write("pids/.keep", "");
    const manifest = ws.write("slow.yaml", SLOW(3000));
    const first = cliAsync(["run", manifest, "--skills-dir", ws.skills], { cwd: ws.dir });
    await waitFor(() => pids(join(ws.dir, "pids"), "slow"));
    const dir = ws.latestRun("slow");
    const holder = JSON.parse(readFileSync(join(dir, "run.lock"), "utf8"));
    expect(holder).toMatchObject({ pid: first.child.pid, host: hostname() });

    const second = cli(["run", manifest, "--resume", "--skills-dir", ws.skills], { cwd: ws.dir });
    expect(second.code).toBe(2);
    expect(second.stderr.trim().split("\n")).toHaveLength(1);
    expect(second.stderr).toContain(
      `${dir} is in use by another pipeline process (pid ${first.child.pid} on `,
    );
    expect(JSON.parse(readFileSync(join(dir, "run.json"), "utf8")).status).toBe("running");

    const r = await first.done;
    expect(r.code).toBe(0);
    expect(JSON.parse(readFileSync(join(dir, "run.json"), "utf8")).status).toBe("succeeded");
    expect(ws.statuses(dir)).toEqual({ a: "succeeded", slow: "succeeded", after: "succeeded" });
    expect(existsSync(join(dir, "run.lock"))).toBe(false);

    // A lock whose process is gone (on this host) is taken over, with a note.
    const gone = spawnSync(process.execPath, ["-e", ""]).pid as number;
    writeFileSync(
      join(dir, "run.lock"),
      JSON.stringify({ pid: gone, host: hostname(), started: "2026-01-01T00:00:00.000Z" }),
    );
    // What that dead engine left mid-stage goes aside with the resume, not to stay beside results.
    ws.write(relative(ws.dir, join(dir, "stages/.tmp/slow-deadbeef/partial.txt")), "half\n");
    const resumed = cli(["run", manifest, "--resume", "--skills-dir", ws.skills], { cwd: ws.dir });
    expect(resumed.code).toBe(0);
    expect(resumed.stderr).toContain(
      `note: ${dir}: taking over the lock of pid ${gone}, which is no longer running`,
    );
    expect(existsSync(join(dir, "run.lock"))).toBe(false);
    expect(existsSync(join(dir, "stages/.tmp"))).toBe(false);
    expect(readFileSync(join(dir, "superseded/.tmp/slow-deadbeef/partial.txt"), "utf8")).toBe("half\n");

    // Interrupted: the lock is removed all the same.
    const third = cliAsync(["run", ws.write("slow.yaml", SLOW(60_000)), "--skills-dir", ws.skills], {
      cwd: ws.dir,
      env: { MEDPIPE_KILL_GRACE_MS: "500" },
    });
    const next = await waitFor(() => {
      const d = ws.latestRun("slow");
      return d !== dir && existsSync(join(d, "run.lock")) ? d : undefined;
    });
    await waitFor(() => (existsSync(join(next, "stages/.tmp")) ? true : undefined));
    third.child.kill("SIGTERM");
    expect((await third.done).code).toBe(130);
    expect(existsSync(join(next, "run.lock"))).toBe(false);
  });
});
