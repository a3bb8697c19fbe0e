// analyze → plan end to end through the real CLI (the built dist/: `npm run build` first) on a
// copy of fixtures/heart_micro, then the same on a copy with a broken label: the analyze stage
// fails with one line and leaves its fingerprint.json, listing the problem, in the failed attempt.
import { cpSync, existsSync, readFileSync, truncateSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cli, ROOT } from "../../tests/support/cli.js";
import { python } from "../../tests/support/oracle.js";
import { makeWorkspace } from "../../tests/support/workspace.js";
import type { Analysis } from "../analyze/types.js";
import { planProblems } from "./validate.js";

const MANIFEST = join(ROOT, "tests/pipelines/analyze-plan.yaml");

function workspaceWithFixture() {
  if (!existsSync(join(ROOT, "dist/analyze/index.js"))) throw new Error("run `npm run build` first");
  const ws = makeWorkspace();
  cpSync(join(ROOT, "fixtures/heart_micro"), join(ws.dir, "fixtures/heart_micro"), { recursive: true });
  return ws;
}

describe("analyze → plan through `pipeline run`", () => {
  it("writes a fingerprint and a valid plan, with evidence for both", () => {
    const ws = workspaceWithFixture();
    const r = cli(["run", MANIFEST, "--workdir", ws.dir], { cwd: ROOT });
    expect(r.code, r.stderr).toBe(0);
    const runDir = r.stdout.trim().split("\n").pop()!;
    expect(ws.statuses(runDir)).toEqual({ analyze: "succeeded", plan: "succeeded" });

    const stage = (s: string, f: string): string => join(runDir, "stages", s, f);
    const analyzed = JSON.parse(readFileSync(stage("analyze", "output.json"), "utf8"));
    const analysis = JSON.parse(readFileSync(stage("analyze", "fingerprint.json"), "utf8")) as Analysis;
    expect(analyzed).toMatchObject({ skill: "analyze", status: "succeeded", errors: 0, num_cases: 8 });
    expect(analyzed.fingerprint).toBe(analysis.fingerprint);
    expect(analyzed.warnings).toBe(5); // the fixture's mixed orientations
    // The fingerprint recomputed by Python's hashlib from the files and the documented text.
    const recomputed = python<string>(
      `
import hashlib, json
a = INPUT
text = "medpipe-analyze-fingerprint/1\\nsettings " + json.dumps(a["settings"], sort_keys=True, separators=(",", ":")) + "\\n"
for c in sorted(a["cases"], key=lambda c: c["id"]):
    for role, path in [("image:%d" % i, p) for i, p in enumerate(c["image"])] + [("label", c["label"])]:
        text += "%s\\t%s\\t%s\\n" % (c["id"], role, hashlib.sha256(open(path, "rb").read()).hexdigest())
OUTPUT = hashlib.sha256(text.encode()).hexdigest()
`,
      analysis,
    );
    expect(recomputed).toBe(analysis.fingerprint);

    const plan = JSON.parse(readFileSync(stage("plan", "plan.json"), "utf8"));
    expect(planProblems(plan)).toEqual([]);
    expect(plan.dataset.fingerprint).toBe(analysis.fingerprint);
    expect(plan.patch_size).toEqual(analyzed.patch_size);
    expect(plan.epochs).toBe(2);
    expect(plan.split.folds.map((f: { val: string[] }) => f.val.length)).toEqual([4, 4]);
    const planned = JSON.parse(readFileSync(stage("plan", "output.json"), "utf8"));
    const evidence = ws.evidence(runDir);
    const planArtifact = evidence.stages.plan!.artifacts.find((a) => a.path === "plan.json")!;
    expect(planned.plan_sha256).toBe(planArtifact.sha256);
    expect(planned.folds).toEqual([0, 1]);
  });

  it("a broken label fails the analyze stage with one line and keeps the analysis", () => {
    const ws = workspaceWithFixture();
    const label = join(ws.dir, "fixtures/heart_micro/labelsTr/la_003.nii.gz");
    truncateSync(label, 200);
    const r = cli(["run", MANIFEST, "--workdir", ws.dir], { cwd: ROOT });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /analysis found 1 error\(s\) in 1 case\(s\) or file\(s\) \(first: .*la_003\.nii\.gz: /,
    );
    const runDir = r.stdout.trim().split("\n").pop()!;
    expect(ws.statuses(runDir).analyze).toBe("failed");
    expect(existsSync(join(runDir, "stages/analyze/output.json"))).toBe(false);
    const kept = JSON.parse(
      readFileSync(join(runDir, "failed/analyze/attempt-1/fingerprint.json"), "utf8"),
    ) as Analysis;
    expect(kept.problems.filter((p) => p.severity === "error").map((p) => [p.check, p.file])).toEqual([
      ["unreadable", label],
    ]);
  });
});
