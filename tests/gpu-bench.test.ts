// The GPU benchmarks run once, in one call on a lent machine, so a broken script costs that call.
// Here on the CPU: the commands gpu-all.sh would run carry the issues' reference settings, and
// augment_cost.py (the data-versus-compute breakdown it runs after heart-cv) runs and adds up.
import { spawnSync } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "./support/cli.js";
import { ORACLE_PYTHON } from "./support/oracle.js";

describe("GPU benchmark scripts", () => {
  it("gpu-all.sh --dry-run prints the three benchmarks with the reference settings", () => {
    const out = mkdtempSync(join(tmpdir(), "gpu-all-dry-"));
    const r = spawnSync("bash", ["eval/bench/gpu-all.sh", "--dry-run"], {
      cwd: ROOT,
      env: { ...process.env, OUT: out },
      encoding: "utf8",
    });
    expect(r.status).toBe(0);
    // Issue 5: 16 full-size cases, 5 folds x 20 epochs, patch 160x160x80.
    expect(r.stdout).toMatch(/fixtures make heart --cases 16 --size 320\\,320\\,110/);
    expect(r.stdout).toMatch(
      /run pipelines\/heart-cv\.yaml .*--set folds=5 --set epochs=20 --set patch_size=\\\[160\\,160\\,80\\\]/,
    );
    // Issue 7: an absurd patch for the OOM case; issue 9: at least 200 training slices of 256x256.
    expect(r.stdout).toMatch(/finetune .*--patch_size \\\[768\\,768\\,768\\\]/);
    expect(r.stdout).toMatch(/fixtures make tissue2d --cases 334 --size 256\\,256/);
    expect(r.stdout).toMatch(/slices 334 of 256,256: 60\/20\/20 into train\//); // 200 training slices
    expect(r.stdout).toMatch(/=== summary \(dry\)/);
  });

  it("augment_cost.py times every planned augmentation and the training step, and its ratio adds up", () => {
    const r = spawnSync(
      ORACLE_PYTHON,
      [
        "eval/bench/augment_cost.py",
        "--patch",
        "32,32,16",
        "--batch",
        "2",
        "--repeats",
        "1",
        "--threads",
        "1",
      ],
      {
        cwd: ROOT,
        env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
        encoding: "utf8",
        timeout: 120_000,
      },
    );
    if (r.status !== 0) console.error(r.stderr);
    expect(r.status).toBe(0);
    const result = JSON.parse(r.stdout) as {
      device: string;
      patch: number[];
      ms: Record<string, number>;
      data_over_compute: number;
    };
    expect(result.device).toBe("cpu");
    expect(result.patch).toEqual([32, 32, 16]);
    const names = ["flip", "affine", "gamma", "noise", "blur", "bias_field", "shift"];
    const expected = [
      "cut",
      ...names,
      ...names.map((n) => `${n}@p1`),
      "augment",
      "fwd_bwd",
      "fwd_bwd_channels_last",
    ];
    expect(Object.keys(result.ms).sort()).toEqual([...expected].sort());
    for (const [name, value] of Object.entries(result.ms)) {
      expect(Number.isFinite(value) && value >= 0, `${name}: ${value}`).toBe(true);
    }
    const ms = (name: string) => result.ms[name] ?? Number.NaN;
    expect(result.data_over_compute).toBeCloseTo((ms("cut") + ms("augment")) / ms("fwd_bwd"), 10);
  });
});
