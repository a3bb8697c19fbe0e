// `pipeline eval run-trusted` through the real CLI: a real skill in smoke mode on a committed
// fixture, the verifier on its evidence, and a summary whose digests are those of the files.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cli, ROOT } from "./support/cli.js";
import { python } from "./support/oracle.js";

interface Summary {
  skill: string;
  mode: string;
  run_dir: string;
  run_status: string;
  verdict: string;
  checks: { id: string; verdict: string; message: string }[];
  judged: Record<string, string>;
}

describe("pipeline eval run-trusted", () => {
  it("runs analyze on the heart fixture in smoke mode, verifies it and records every judged file's sha256", () => {
    const out = join(mkdtempSync(join(tmpdir(), "medpipe-rt-")), "out");
    const r = cli(
      ["eval", "run-trusted", "skills/analyze", "--fixture", "fixtures/heart_micro", "--out", out],
      {
        cwd: ROOT,
      },
    );
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split("\n").at(-1)).toBe(`pass: ${join(out, "trust_summary.json")}`);
    expect(readdirSync(out).sort()).toEqual(["skill_run", "trust_summary.json"]);
    const s = JSON.parse(readFileSync(join(out, "trust_summary.json"), "utf8")) as Summary;
    expect([s.skill, s.mode, s.run_dir, s.run_status, s.verdict]).toEqual([
      "analyze",
      "smoke",
      "skill_run",
      "succeeded",
      "pass",
    ]);
    const run = JSON.parse(readFileSync(join(out, "skill_run/run.json"), "utf8")) as { mode: string };
    expect(run.mode).toBe("smoke");
    expect(s.checks.filter((c) => c.verdict === "fail")).toEqual([]);
    expect(s.checks.find((c) => c.id === "integrity.artifacts")?.verdict).toBe("pass");
    // The verifier's own report sits in the run, as `pipeline verify` leaves it.
    expect(existsSync(join(out, "skill_run/verify/report.json"))).toBe(true);
    // Every file of the run's stages was judged, and each digest is the file's (hashlib).
    const digests = python(
      `
import hashlib, os
root = INPUT["out"]
files = []
for d, _, names in os.walk(os.path.join(root, "skill_run", "stages")):
    files += [os.path.relpath(os.path.join(d, n), root) for n in names]
OUTPUT = {f: hashlib.sha256(open(os.path.join(root, f), "rb").read()).hexdigest() for f in files}
`,
      { out },
    ) as Record<string, string>;
    expect(Object.keys(digests).length).toBeGreaterThan(3);
    for (const [f, sha] of Object.entries(digests)) expect(s.judged[f], f).toBe(sha);
  }, 60_000);

  it("refuses a non-empty --out, an unknown skill and a missing fixture with exit 2, writing nothing", () => {
    const base = mkdtempSync(join(tmpdir(), "medpipe-rt-"));
    const full = join(base, "full");
    mkdirSync(full);
    writeFileSync(join(full, "keep.txt"), "x");
    const run = (skill: string, fixture: string, out: string) =>
      cli(["eval", "run-trusted", skill, "--fixture", fixture, "--out", out], { cwd: ROOT });
    const a = run("skills/analyze", "fixtures/heart_micro", full);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain(`--out ${full}: not empty`);
    expect(readdirSync(full)).toEqual(["keep.txt"]);
    const b = run("skills/nope", "fixtures/heart_micro", join(base, "b"));
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/skills\/nope: not a script declared by a skill manifest/);
    expect(existsSync(join(base, "b"))).toBe(false);
    const c = run("skills/analyze", "fixtures/nope", join(base, "c"));
    expect(c.code).toBe(2);
    expect(c.stderr).toContain("--fixture fixtures/nope: no such folder");
    expect(existsSync(join(base, "c"))).toBe(false);
  });
});
