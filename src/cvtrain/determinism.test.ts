// Two real smoke runs of pipelines/heart-cv.yaml into two different runs folders (so nothing
// comes from a cache) must agree: the same CV split in plan.json, the same init digest per fold
// (a fresh seeded init each), the same trained weights and the same per-case metrics — bitwise
// on the CPU, where every op the trainer uses is deterministic. Needs the built dist/ (`npm run
// build`) and a Python with torch; each run takes about a minute.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cli, ROOT } from "../../tests/support/cli.js";

const TRAIN_STAGES = ["cv[fold=0]", "cv[fold=1]", "final"];

interface TrainOut {
  device: string;
  seed: number;
  train_cases: string[];
  val_cases: string[];
  nominal?: { cases: string[] } | null;
  init_digest: string;
  best_digest: string;
  final_digest: string;
  per_case: ({ id: string; seconds?: number } & Record<string, unknown>)[];
}

const dirs: string[] = [];

/** One smoke run into a fresh runs folder; returns its run directory. */
function smokeRun(): string {
  const runs = mkdtempSync(join(tmpdir(), "medpipe-determinism-"));
  dirs.push(runs);
  const r = cli(["run", "pipelines/heart-cv.yaml", "--smoke", "--runs-dir", runs], {
    cwd: ROOT,
    timeoutMs: 200_000,
  });
  if (r.code !== 0) throw new Error(`smoke run failed (${r.code}):\n${r.stderr.slice(-3000)}`);
  expect(r.stderr).toMatch(/succeeded: 8 succeeded/);
  expect(r.stderr).not.toMatch(/\d+ cached/); // a different runs folder: everything ran
  const runDir = r.stdout.trim().split("\n").pop() as string;
  expect(readdirSync(join(runDir, "stages"))).toEqual(expect.arrayContaining(TRAIN_STAGES));
  return runDir;
}

const json = <T>(path: string): T => JSON.parse(readFileSync(path, "utf8")) as T;

/** Per-case results without the wall-clock seconds (the only field allowed to differ). */
const scores = (o: TrainOut) => o.per_case.map(({ seconds: _s, ...rest }) => rest);

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("determinism of the heart-cv smoke pipeline", () => {
  it("gives the same splits, init digests, weights and per-case metrics twice", () => {
    const a = smokeRun();
    const b = smokeRun();
    expect(a).not.toBe(b);

    const planA = json<{ split: { seed: number; folds: unknown[] } }>(join(a, "stages/plan/plan.json"));
    const planB = json<{ split: { seed: number; folds: unknown[] } }>(join(b, "stages/plan/plan.json"));
    expect(planA.split.folds.length).toBe(2);
    expect(planB.split).toEqual(planA.split);

    for (const stage of TRAIN_STAGES) {
      const oa = json<TrainOut>(join(a, "stages", stage, "output.json"));
      const ob = json<TrainOut>(join(b, "stages", stage, "output.json"));
      expect([ob.seed, ob.train_cases, ob.val_cases, ob.nominal?.cases]).toEqual([
        oa.seed,
        oa.train_cases,
        oa.val_cases,
        oa.nominal?.cases,
      ]);
      expect(ob.init_digest).toBe(oa.init_digest);
      if (oa.device === "cpu" && ob.device === "cpu") {
        // Bitwise: the same weights, and the same metric values to the last bit (toEqual on
        // the parsed doubles, and the JSON text they came from).
        expect([ob.best_digest, ob.final_digest]).toEqual([oa.best_digest, oa.final_digest]);
        expect(scores(ob)).toEqual(scores(oa));
        expect(JSON.stringify(scores(ob))).toBe(JSON.stringify(scores(oa)));
      }
    }
    // Fresh init per fold: the folds and the final model start from different weights.
    const inits = TRAIN_STAGES.map((s) => json<TrainOut>(join(a, "stages", s, "output.json")).init_digest);
    expect(new Set(inits).size).toBe(TRAIN_STAGES.length);
  }, 300_000);
});
