import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt } from "../../tests/support/build.js";
import { cli, ROOT } from "../../tests/support/cli.js";
import { ajv, schemaValidator } from "../manifest/schema.js";
import { examplePlan } from "./example-plan.js";
import type { PreprocessedDataset } from "./preprocess.js";

const FIXTURES = join(ROOT, "fixtures");
const ws = mkdtempSync(join(tmpdir(), "medpipe-preprocess-skill-"));
afterAll(() => rmSync(ws, { recursive: true, force: true }));

beforeAll(() => ensureBuilt("preprocess/index.js"), 120_000);

const HEART = ["la_001", "la_002", "la_003", "la_004"];

function writePlan(name: string, plan: Record<string, unknown>): string {
  writeFileSync(join(ws, name), JSON.stringify(plan, null, 2));
  return name;
}

function runScript(args: string[]) {
  const r = cli(["run-script", "--workdir", ws, "preprocess", ...args], { cwd: ws });
  const runDir = r.stdout.trim().split("\n").pop() ?? "";
  return { ...r, runDir, stage: join(runDir, "stages", "preprocess") };
}

function validOutput(path: string): Record<string, unknown> {
  const out = JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  const envelope = schemaValidator("https://medpipe.dev/schemas/evidence/output.schema.json");
  expect(envelope(out), JSON.stringify(envelope.errors)).toBe(true);
  const schema = JSON.parse(
    readFileSync(join(ROOT, "schemas", "skills", "preprocess.output.schema.json"), "utf8"),
  ) as object;
  const payload = ajv().compile(schema);
  expect(payload(out), JSON.stringify(payload.errors)).toBe(true);
  return out;
}

describe("preprocess skill (CLI)", () => {
  it("runs a plan end to end, with a progress event per case, and reuses the result on a rerun", () => {
    const plan = writePlan(
      "plan.json",
      examplePlan({
        cases: HEART.map((id) => ({
          id,
          image: [join(FIXTURES, "heart_micro", "imagesTr", `${id}.nii.gz`)],
          label: join(FIXTURES, "heart_micro", "labelsTr", `${id}.nii.gz`),
        })),
        targetSpacing: [1.25, 1.25, 1.37],
        normalization: { scheme: "zscore", over: "above_mean" },
        labels: { "0": "background", "1": "left atrium" },
      }),
    );
    const r = runScript(["--plan", plan, "--workers", "2"]);
    expect(r.code, r.stderr).toBe(0);
    const out = validOutput(join(r.stage, "output.json")) as {
      cases: Array<{ id: string }>;
      workers: number;
    };
    expect(out.cases.map((c) => c.id)).toEqual(HEART);
    expect(out.workers).toBe(2);
    const dataset = JSON.parse(
      readFileSync(join(r.stage, "data", "dataset.json"), "utf8"),
    ) as PreprocessedDataset;
    expect(dataset.cases.map((c) => c.id)).toEqual(HEART);
    for (const c of dataset.cases) {
      expect(existsSync(join(r.stage, "data", c.image))).toBe(true);
      expect(existsSync(join(r.stage, "data", c.label!))).toBe(true);
      expect(existsSync(join(r.stage, "data", c.id, "properties.json"))).toBe(true);
    }
    const events = readFileSync(join(r.stage, "logs", "stdout.log"), "utf8")
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as { event: string; id: string });
    expect(
      events
        .filter((e) => e.event === "case")
        .map((e) => e.id)
        .sort(),
    ).toEqual(HEART);

    const again = runScript(["--plan", plan, "--workers", "2"]);
    expect(again.code, again.stderr).toBe(0);
    const evidence = JSON.parse(readFileSync(join(again.runDir, "evidence.json"), "utf8")) as {
      stages: Record<string, { status: string }>;
    };
    expect(evidence.stages.preprocess?.status).toBe("cached");
  });

  it("preprocesses another dataset (2D slices) with the same plan", () => {
    cpSync(join(FIXTURES, "tissue2d_micro"), join(ws, "tissue"), { recursive: true });
    const plan = writePlan(
      "plan2d.json",
      examplePlan({
        cases: [],
        targetSpacing: [1, 1],
        normalization: { scheme: "zscore", over: "nonzero" },
        labels: { "0": "background", "1": "CSF", "2": "grey matter", "3": "white matter" },
        channels: ["T1w"],
      }),
    );
    const r = runScript(["--plan", plan, "--dataset", "tissue"]);
    expect(r.code, r.stderr).toBe(0);
    const out = validOutput(join(r.stage, "output.json")) as { source: string; totals: { cases: number } };
    expect(out.source).toBe("dataset");
    const dataset = JSON.parse(
      readFileSync(join(r.stage, "data", "dataset.json"), "utf8"),
    ) as PreprocessedDataset;
    expect(dataset.cases).toHaveLength(20);
    expect(dataset.cases[0]!.shape).toEqual([64, 64]);
    expect(out.totals.cases).toBe(20);
  });

  it("fails with one line naming the file and exit code 1", () => {
    const plan = writePlan(
      "bad.json",
      examplePlan({
        cases: [{ id: "x", image: [join(ws, "missing.nii.gz")], label: null }],
        targetSpacing: [1, 1, 1],
        normalization: { scheme: "zscore", over: "all" },
      }),
    );
    const r = runScript(["--plan", plan]);
    expect(r.code).toBe(1);
    const log = readFileSync(
      join(r.runDir, "failed", "preprocess", "attempt-1", "logs", "stderr.log"),
      "utf8",
    ).trim();
    expect(log.split("\n")).toHaveLength(1);
    expect(log).toMatch(/missing\.nii\.gz: /);
  });
});
