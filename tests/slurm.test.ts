// The Slurm executor against a real single-node cluster (munge + slurmctld + slurmd from
// Debian, started by ../shared/slurm/local-cluster.sh with one GPU declared as GRES).
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, cliAsync, ROOT } from "./support/cli.js";
import { makeWorkspace, type Workspace } from "./support/workspace.js";

const CLUSTER_SCRIPT = join(ROOT, "../shared/slurm/local-cluster.sh");
const clusterDir = mkdtempSync(join(tmpdir(), "medpipe-slurm-"));
let slurmConf: string | null = null;
let why = "";

function start(): void {
  if (!existsSync(CLUSTER_SCRIPT)) {
    why = `${CLUSTER_SCRIPT} is missing`;
    return;
  }
  const r = spawnSync("bash", [CLUSTER_SCRIPT, "start", clusterDir], { encoding: "utf8", timeout: 300_000 });
  const m = /export SLURM_CONF=(\S+)/.exec(r.stdout);
  if (r.status === 0 && m) slurmConf = m[1] as string;
  else why = `the local cluster did not start: ${(r.stderr || r.stdout).trim().split("\n").pop()}`;
}
start();
if (!slurmConf) console.warn(`\n*** SKIPPING the Slurm tests: ${why} ***\n`);

describe.skipIf(!slurmConf)("slurm executor", () => {
  let ws: Workspace;
  let cluster: string;
  const env = () => ({ SLURM_CONF: slurmConf as string, MEDPIPE_KILL_GRACE_MS: "500" });
  const run = (manifest: string, ...extra: string[]) =>
    cli(["run", manifest, "--skills-dir", ws.skills, "--executor", "slurm", "--cluster", cluster, ...extra], {
      cwd: ws.dir,
      env: env(),
    });
  const jobs = (runDir: string) =>
    readFileSync(join(runDir, "slurm/jobs.ndjson"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { stage: string; job_id: string });

  beforeAll(() => {
    ws = makeWorkspace();
    ws.write("data/input.txt", "slurm\n");
    ws.write("pids/.keep", "");
    cluster = ws.write(
      "cluster.yaml",
      "partition: main\nmax_cpus_per_task: 1\npoll_interval_s: 0.3\nmax_poll_interval_s: 1\nfs_wait_s: 5\n",
    );
  });
  afterAll(() => {
    spawnSync("bash", [CLUSTER_SCRIPT, "stop", clusterDir]);
  });

  it("runs a pipeline with its fan-out as one job array; the evidence verifies and a local rerun reuses it all", () => {
    const r = run(join(ROOT, "tests/pipelines/chain.yaml"));
    expect(r.stderr).toMatch(/succeeded: 6 succeeded/);
    expect(r.code).toBe(0);
    const dir = r.stdout.trim().split("\n").pop() as string;
    const fan = jobs(dir).filter((j) => j.stage.startsWith("fan["));
    const parent = fan[0]?.job_id.split("_")[0];
    expect(fan.map((j) => j.job_id)).toEqual([`${parent}_0`, `${parent}_1`, `${parent}_2`]);
    const last = JSON.parse(readFileSync(join(dir, "stages/last/output.json"), "utf8"));
    expect(last.value).toBe(31);
    const v = cli(["verify", dir, "--skills-dir", ws.skills], { cwd: ws.dir });
    expect(v.code).toBe(0);
    const local = cli(["run", join(ROOT, "tests/pipelines/chain.yaml"), "--skills-dir", ws.skills], {
      cwd: ws.dir,
    });
    expect(local.stderr).toMatch(/succeeded: 6 cached/);
  });

  it("runs the heart-cv smoke pipeline with its folds as one job array, verifiable like a local run", () => {
    const manifest = join(ROOT, "pipelines/heart-cv.yaml");
    const runs = join(ws.dir, "runs");
    const r = cli(
      ["run", manifest, "--smoke", "--runs-dir", runs, "--executor", "slurm", "--cluster", cluster],
      // The three trainings share the cluster's one GPU, so they run one after another.
      { cwd: ROOT, env: env(), timeoutMs: 540_000 },
    );
    expect(r.code).toBe(0);
    const dir = r.stdout.trim().split("\n").pop() as string;
    const folds = jobs(dir).filter((j) => j.stage.startsWith("cv["));
    expect(folds).toHaveLength(2);
    expect(new Set(folds.map((j) => j.job_id.split("_")[0])).size).toBe(1);
    expect(cli(["verify", dir], { cwd: ws.dir }).code).toBe(0);
    const local = cli(["run", manifest, "--smoke", "--runs-dir", runs], { cwd: ROOT, timeoutMs: 540_000 });
    expect(local.code).toBe(0);
    const again = ws.statuses(local.stdout.trim().split("\n").pop() as string);
    // the verifier audits each run afresh (cache: false); every other stage comes from the cache
    const { verify, ...rest } = again;
    expect(verify).toBe("succeeded");
    expect(Object.values(rest).every((s) => s === "cached")).toBe(true);
  }, 600_000);

  it("gives a GPU stage the device Slurm assigned", () => {
    const m = ws.write("gpu.yaml", "name: gpu\nstages:\n  g: { skill: gpu-needy }\n");
    const r = run(m);
    expect(r.code).toBe(0);
    const out = JSON.parse(readFileSync(join(ws.latestRun("gpu"), "stages/g/output.json"), "utf8"));
    expect(out.value).toBe("0");
  });

  it("a stage that exits non-zero fails with its exit code and stderr", () => {
    const m = ws.write("crash.yaml", "name: crash\nstages:\n  c: { skill: crash, with: { code: 7 } }\n");
    expect(run(m).code).toBe(1);
    const rec = ws.evidence(ws.latestRun("crash")).stages.c;
    expect(rec?.reason).toMatch(
      /^Slurm job \d+ ended FAILED with exit code 7: crashing on purpose with exit code 7$/,
    );
  });

  it("a job the cluster can never start fails with Slurm's reason instead of waiting forever", () => {
    const m = ws.write(
      "huge.yaml",
      "name: huge\nstages:\n  h: { skill: emit, resources: { cpus: 512 }, with: { value: 1 } }\n",
    );
    const plain = ws.write("plain.yaml", "partition: main\npoll_interval_s: 0.3\nmax_poll_interval_s: 1\n");
    const r = cli(["run", m, "--skills-dir", ws.skills, "--executor", "slurm", "--cluster", plain], {
      cwd: ws.dir,
      env: env(),
    });
    expect(r.code).toBe(1);
    expect(ws.evidence(ws.latestRun("huge")).stages.h?.reason).toMatch(
      /^Slurm cannot start job \d+ \(pending: PartitionConfig\)|^could not start .*sbatch failed/,
    );
  });

  it("a stage over its time limit fails with reason timeout", () => {
    const m = ws.write(
      "slow.yaml",
      "name: slow\nstages:\n  s: { skill: sleeper, timeout: 2s, with: { pid_dir: pids, sleep_ms: 60000 } }\n",
    );
    expect(run(m).code).toBe(1);
    expect(ws.evidence(ws.latestRun("slow")).stages.s?.reason).toBe("timeout after 2.0 s");
  });

  it("a job cancelled from outside with scancel fails as CANCELLED", async () => {
    const m = ws.write(
      "cancel.yaml",
      "name: cancel\nstages:\n  s: { skill: sleeper, with: { pid_dir: pids, sleep_ms: 60000 } }\n",
    );
    const running = cliAsync(
      ["run", m, "--skills-dir", ws.skills, "--executor", "slurm", "--cluster", cluster],
      { cwd: ws.dir, env: env() },
    );
    let id: string | undefined;
    for (let i = 0; i < 200 && !id; i++) {
      await new Promise((r) => setTimeout(r, 100));
      try {
        id = jobs(ws.latestRun("cancel"))[0]?.job_id;
      } catch {
        id = undefined;
      }
    }
    expect(id).toBeDefined();
    await new Promise((r) => setTimeout(r, 1500));
    execFileSync("scancel", [id as string], { env: { ...process.env, ...env() } });
    const r = await running.done;
    expect(r.code).toBe(1);
    expect(ws.evidence(ws.latestRun("cancel")).stages.s?.reason).toMatch(
      new RegExp(`^Slurm job ${id} ended CANCELLED`),
    );
  });

  it("--resume after the engine was killed re-attaches to the running job instead of resubmitting it", async () => {
    const m = ws.write(
      "reattach.yaml",
      "name: reattach\nstages:\n  s: { skill: sleeper, with: { pid_dir: pids, sleep_ms: 5000 } }\n  after: { skill: emit, needs: [s], with: { value: 2 } }\n",
    );
    const running = cliAsync(
      ["run", m, "--skills-dir", ws.skills, "--executor", "slurm", "--cluster", cluster],
      {
        cwd: ws.dir,
        env: env(),
      },
    );
    let dir = "";
    for (let i = 0; i < 200 && !dir; i++) {
      await new Promise((r) => setTimeout(r, 100));
      try {
        if (jobs(ws.latestRun("reattach")).length) dir = ws.latestRun("reattach");
      } catch {
        dir = "";
      }
    }
    await new Promise((r) => setTimeout(r, 1000));
    running.child.kill("SIGKILL");
    await running.done;
    const r = run(m, "--resume");
    expect(r.code).toBe(0);
    expect(jobs(dir).filter((j) => j.stage === "s")).toHaveLength(1);
    expect(ws.statuses(dir)).toEqual({ s: "succeeded", after: "succeeded" });
    expect(JSON.parse(readFileSync(join(dir, "stages/s/output.json"), "utf8")).slept_ms).toBe(5000);
  });
});
