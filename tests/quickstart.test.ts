// The README's first command, as a new user runs it: the heart-cv smoke profile end to end on the
// embedded micro fixture — analyze, plan, preprocess, two CV folds trained with torch on CPU, the
// final model, the CV summary and the verifier — then a second run that comes from the cache.
import { existsSync, readFileSync } from "node:fs";
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
    const manifest = join(ROOT, "pipelines/heart-cv.yaml");
    const r = cli(["run", manifest, "--smoke", "--runs-dir", runs], { cwd: ROOT });
    expect(r.stderr).toMatch(/succeeded: 8 succeeded/);
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
      "final",
      "summary",
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
    // Every case is held out by exactly one fold, and each held-out case has a native-space prediction.
    const plan = JSON.parse(readFileSync(join(runDir, "stages/plan/plan.json"), "utf8"));
    const held = plan.split.folds.flatMap((f: { val: string[] }) => f.val).sort();
    expect(held).toEqual(plan.dataset.cases.map((c: { id: string }) => c.id).sort());
    for (const f of plan.split.folds as { fold: number; val: string[] }[])
      for (const id of f.val)
        expect(existsSync(join(runDir, `stages/cv[fold=${f.fold}]/predictions/${id}.nii.gz`))).toBe(true);
    const final = JSON.parse(readFileSync(join(runDir, "stages/final/output.json"), "utf8"));
    expect(final).toMatchObject({ skill: "cv-train", fold: "all", mode: "smoke", performance: null });
    for (const f of ["model.onnx", "weights.safetensors", "plan.json", "model_card.json"])
      expect(existsSync(join(runDir, "stages/final/model", f))).toBe(true);
    // The verify stage ran last and passed; so does the verifier from outside, its output included.
    const verdict = JSON.parse(readFileSync(join(runDir, "stages/verify/output.json"), "utf8"));
    expect(verdict.verdict).toBe("pass");
    const outside = cli(["verify", runDir, "--json"], { cwd: ROOT });
    expect(outside.code).toBe(0);
    // A second run changes nothing and so runs nothing but the verifier, which audits each run.
    const again = cli(["run", manifest, "--smoke", "--runs-dir", runs], { cwd: ROOT });
    expect(again.stderr).toMatch(/succeeded: 7 cached, 1 succeeded/);
    // Generous: the run takes 30-60 s on 2 idle cores and up to twice that beside other test files.
  }, 300_000);
});
