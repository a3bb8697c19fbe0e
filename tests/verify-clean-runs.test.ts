// No false alarm: five real clean runs of heart-cv on the micro fixture, each with its own seed
// (so its own split, initial weights and patches), in the cheapest smoke configuration that
// still exercises every check (tests/pipelines/heart-cv-seeded.yaml), all pass every check of
// the verifier, the ONNX spot check included: no fail, no warn, nothing skipped.
// Cost: about 25 s of CPU per run; see src/verify/README.md.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadSkills, skillDirs } from "../src/skills/registry.js";
import { verifyRunWithModel } from "../src/verify/index.js";
import { onnxGridRunner } from "../src/verify/onnx-runner.js";
import { cli, ROOT } from "./support/cli.js";

const skills = loadSkills(skillDirs([]));
const tmp = mkdtempSync(join(tmpdir(), "medpipe-clean-"));
const splits = new Set<string>();

describe("verify: five clean runs, no false alarm", () => {
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it.each([1, 2, 3, 4, 5])("seed %i: every check passes", async (seed) => {
    const runs = join(tmp, String(seed));
    const r = cli(
      ["run", "tests/pipelines/heart-cv-seeded.yaml", "--smoke", "--set", `seed=${seed}`, "--runs-dir", runs],
      { cwd: ROOT, timeoutMs: 170_000 },
    );
    expect(r.code, r.stderr.slice(-2000)).toBe(0);
    const base = join(runs, "heart-cv-seeded");
    const dir = join(base, readdirSync(base)[0] as string);
    const report = await verifyRunWithModel(dir, skills, onnxGridRunner);
    expect(report.checks.filter((c) => c.verdict !== "pass")).toEqual([]);
    expect(report.checks.map((c) => c.id)).toContain("model.predictions");
    // The seeds really differ: each run held out its own cases in fold 0.
    const split = report.checks.find((c) => c.id === "cv.split");
    expect(split?.verdict).toBe("pass");
    const plan = readFileSync(join(dir, "stages/plan/plan.json"), "utf8");
    splits.add(JSON.stringify((JSON.parse(plan) as { split: { folds: unknown } }).split.folds));
    rmSync(runs, { recursive: true, force: true });
  }, 180_000);

  it("the five seeds gave at least four different splits", () => {
    expect(splits.size).toBeGreaterThanOrEqual(4);
  });
});
