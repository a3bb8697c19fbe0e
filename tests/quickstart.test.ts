// The README's first command, as a new user runs it: the heart-cv smoke profile, end to end,
// with the real Python/torch selftest stages found through interpreter discovery.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cli, ROOT } from "./support/cli.js";
import { python } from "./support/oracle.js";
import { makeWorkspace } from "./support/workspace.js";

describe("quick start", () => {
  it("pipeline run pipelines/heart-cv.yaml --smoke succeeds and leaves checkable evidence", () => {
    const ws = makeWorkspace();
    // As the README's command: from the project root, where fixtures/heart_micro is; runs elsewhere.
    const runs = join(ws.dir, "runs");
    const r = cli(["run", join(ROOT, "pipelines/heart-cv.yaml"), "--smoke", "--runs-dir", runs], {
      cwd: ROOT,
    });
    expect(r.stderr).toMatch(/succeeded: 6 succeeded/);
    expect(r.code).toBe(0);
    const runDir = r.stdout.trim().split("\n").pop() as string;
    expect(runDir.startsWith(join(runs, "heart-cv/"))).toBe(true);
    const run = JSON.parse(readFileSync(join(runDir, "run.json"), "utf8"));
    expect(run).toMatchObject({
      status: "succeeded",
      mode: "smoke",
      profile: "smoke",
      params: { dataset: "fixtures/heart_micro", folds: 2, epochs: 2 },
    });
    const evidence = ws.evidence(runDir);
    expect(Object.keys(evidence.stages)).toEqual([
      "analyze",
      "plan",
      "preprocess",
      "cv[fold=0]",
      "cv[fold=1]",
      "verify",
    ]);
    // Digests recomputed by an independent implementation (Python's hashlib) over the files.
    const files = Object.values(evidence.stages).flatMap((s) =>
      s.artifacts.map((a) => ({ path: join(runDir, "stages", s.stage, a.path), sha256: a.sha256 })),
    );
    const recomputed = python<string[]>(
      "import hashlib\nOUTPUT = [hashlib.sha256(open(f['path'], 'rb').read()).hexdigest() for f in INPUT]",
      files,
    );
    expect(recomputed).toEqual(files.map((f) => f.sha256));
    const out = JSON.parse(readFileSync(join(runDir, "stages/cv[fold=1]/output.json"), "utf8"));
    expect(out).toMatchObject({ skill: "selftest", stage: "cv[fold=1]", mode: "smoke", ok: true });
    expect(out.environment.torch).toMatch(/^\d+\.\d+/);
    expect(out.matmul_max_abs_diff).toBeLessThan(1e-9);
    // The verify stage ran last and passed; so does the verifier from outside, its output included.
    const verdict = JSON.parse(readFileSync(join(runDir, "stages/verify/output.json"), "utf8"));
    expect(verdict.verdict).toBe("pass");
    const outside = cli(["verify", runDir, "--json"], { cwd: ROOT });
    expect(outside.code).toBe(0);
    expect(
      JSON.parse(outside.stdout).checks.find((c: { id: string }) => c.id === "outputs.schema").message,
    ).toMatch(/^6 output.json files/);
  });
});
