// The verifier on ONE real smoke run of heart-cv and on tampered copies of it: each trap of the
// issue is caught by exactly the one check that owns it (the others pass, or are skipped naming
// that check), the untouched run passes every check, and verifying takes well under 30 s. Traps
// that must get past integrity re-record digests the way an adversary would (evidence.json, the
// stage's own artifact list, the root hash).
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { isAbsolute, join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gatherFolds } from "../src/cvtrain/gather.js";
import { scoreCase } from "../src/cvtrain/native.js";
import { meanMetrics, summarizeScores } from "../src/cvtrain/summary.js";
import type { Evidence } from "../src/evidence/evidence.js";
import { digestOfDigests, readSafetensors, tensorDigests } from "../src/evidence/safetensors.js";
import { readNifti } from "../src/imaging/index.js";
import { loadSkills, skillDirs } from "../src/skills/registry.js";
import { verifyRun, verifyRunWithModel } from "../src/verify/index.js";
import { onnxGridRunner } from "../src/verify/onnx-runner.js";
import type { VerifyReport } from "../src/verify/types.js";
import { cli, ROOT } from "./support/cli.js";
import { at, forge, forgeJson, type Json, sha, stageFile } from "./support/forge.js";
import { python } from "./support/oracle.js";

const skills = loadSkills(skillDirs([]));
const F0 = "cv[fold=0]";
const F1 = "cv[fold=1]";

let tmp: string;
let clean: string;
let n = 0;

/** A copy of the clean run, changed by `tamper`. */
function tampered(tamper: (dir: string) => void): string {
  const dir = join(tmp, "tampered", String(n++));
  cpSync(clean, dir, { recursive: true });
  rmSync(join(dir, "verify"), { recursive: true, force: true });
  tamper(dir);
  return dir;
}

const failed = (r: VerifyReport) => r.checks.filter((c) => c.verdict === "fail").map((c) => c.id);

describe("verify: training checks on a real heart-cv smoke run", () => {
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), "medpipe-vt-"));
    const r = cli(["run", "pipelines/heart-cv.yaml", "--smoke", "--runs-dir", join(tmp, "runs")], {
      cwd: ROOT,
      timeoutMs: 240_000,
    });
    expect(r.code, r.stderr).toBe(0);
    const base = join(tmp, "runs", "heart-cv");
    clean = join(base, readdirSync(base)[0] as string);
  }, 300_000);

  afterAll(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it("passes the untouched run, ONNX spot check included, in under 30 s", async () => {
    const t0 = performance.now();
    const r = await verifyRunWithModel(clean, skills, onnxGridRunner);
    const seconds = (performance.now() - t0) / 1000;
    console.log(`verify (all checks, ONNX spot check included): ${seconds.toFixed(2)} s`);
    expect(failed(r)).toEqual([]);
    expect(r.checks.filter((c) => c.verdict !== "pass")).toEqual([]);
    const ids = r.checks.map((c) => c.id);
    for (const id of [
      "cv.folds",
      "checkpoint.finite",
      "checkpoint.best-of-trace",
      "checkpoint.not-initial",
      "claims.per-case",
      "claims.aggregates",
      "checkpoint.onnx-weights",
      "package.card",
      "model.predictions",
      "smoke.no-quality-claims",
    ])
      expect(r.checks.find((c) => c.id === id)?.verdict, id).toBe("pass");
    expect(new Set(ids).size).toBe(ids.length);
    expect(r.quality.judged).toBe(false); // smoke: metrics informational
    expect(seconds).toBeLessThan(30);
    // The CLI (no native addon, model.predictions skipped) on the same run.
    const c0 = performance.now();
    const v = cli(["verify", clean, "--json"], { cwd: ROOT });
    console.log(`pipeline verify (CLI): ${((performance.now() - c0) / 1000).toFixed(2)} s`);
    expect(v.code, v.stdout.slice(0, 2000)).toBe(0);
  }, 60_000);

  it("model.predictions draws held-out cases from every fold, each re-run by its own fold's model", async () => {
    const plan = JSON.parse(readFileSync(join(clean, "stages/plan/plan.json"), "utf8")) as {
      split: { folds: { fold: number; val: string[] }[] };
    };
    const heldOut = (fold: number) => plan.split.folds.find((f) => f.fold === fold)?.val ?? [];
    let evidence: string[] = [];
    const check = async (opts: Parameters<typeof verifyRunWithModel>[3]) => {
      const r = await verifyRunWithModel(clean, skills, onnxGridRunner, opts);
      const c = r.checks.find((x) => x.id === "model.predictions");
      expect(c?.verdict, c?.message).toBe("pass");
      evidence = c?.evidence ?? [];
      return c?.message as string;
    };
    const cases = (message: string) =>
      [...message.matchAll(/(cv\[fold=\d\]) (\S+):/g)].map((m) => `${m[1]} ${m[2]}`);
    // The draw picks the first candidate (fold 0's first held-out case) or the last (fold 1's last).
    const first = await check({ draw: () => 0 });
    expect(first).toMatch(/\(1 of 8 cases, drawn at random\)$/);
    expect(cases(first)).toEqual([`cv[fold=0] ${heldOut(0)[0]}`]);
    const last = await check({ draw: (n) => n - 1 });
    expect(cases(last)).toEqual([`cv[fold=1] ${heldOut(1)[heldOut(1).length - 1]}`]);
    // Two drawn without replacement; every case with "all", each fold's with its own model.
    expect(cases(await check({ modelChecks: 2, draw: (n) => n - 1 }))).toEqual([
      `cv[fold=0] ${heldOut(0)[0]}`,
      `cv[fold=1] ${heldOut(1)[heldOut(1).length - 1]}`,
    ]);
    const all = await check({ modelChecks: "all" });
    expect(all).toMatch(/\(every case \(8\)\)$/);
    expect(cases(all).sort()).toEqual(
      [...heldOut(0).map((id) => `cv[fold=0] ${id}`), ...heldOut(1).map((id) => `cv[fold=1] ${id}`)].sort(),
    );
    for (const fold of [0, 1]) {
      expect(evidence).toContain(`stages/cv[fold=${fold}]/model/model.onnx`);
      for (const id of heldOut(fold))
        expect(evidence).toContain(`stages/cv[fold=${fold}]/grid/${id}.label.npy`);
    }
    // The CLI's --model-checks: a count or all, else a usage error.
    const bad = cli(["verify", clean, "--model-checks", "0"], { cwd: ROOT });
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim()).toBe("error: --model-checks 0: expected a count >= 1 or all");
  }, 120_000);

  it("reports a smoke run against the reference and a baseline, never judging it (skipped, exit 0)", () => {
    const v = cli(
      ["verify", clean, "--json", "--reference", "eval/references/heart-cv.yaml", "--baseline", clean],
      { cwd: ROOT },
    );
    expect(v.code).toBe(0);
    const r = JSON.parse(v.stdout) as VerifyReport;
    const ref = r.checks.find((c) => c.id === "regression.reference");
    const base = r.checks.find((c) => c.id === "regression.baseline");
    expect(ref?.verdict).toBe("skipped");
    expect(ref?.message).toMatch(
      /^smoke run, reported and not judged as quality against heart-cv: dsc 0\.\d+ /,
    );
    expect(base?.verdict).toBe("skipped");
    expect(base?.message).toMatch(/^this run is a smoke run: .* 0 worse beyond tolerance/);
    expect(r.quality.judged).toBe(false);
  });

  it("judges a run against a baseline: worse by more than two standard errors of the baseline's mean fails", () => {
    // The baseline's pooled Dice and its tolerance, from the fold outputs' per-case values (numpy).
    const oracle = python(
      `
import glob
import numpy as np
vals = []
for p in sorted(glob.glob(INPUT["run"] + "/stages/cv[[]fold=*[]]/output.json")):
    for c in json.load(open(p))["per_case"]:
        vals += [l["metrics"]["dice"] for l in c["labels"] if l["label"] == 1]
v = np.array(vals, dtype=np.float64)
OUTPUT = {"mean": float(v.mean()), "tol": float(2 * v.std(ddof=1) / np.sqrt(len(v))), "n": len(v)}
`,
      { run: clean },
    ) as { mean: number; tol: number; n: number };
    expect(oracle.n).toBe(8);
    // The check is only judged outside smoke mode; these copies say "full" in run.json to reach
    // that branch on the real smoke outputs (integrity.run-record fails them, which is not what
    // this test looks at: regression results are judged all the same).
    const asFull = (d: string) => {
      const p = join(d, "run.json");
      writeFileSync(p, readFileSync(p, "utf8").replace('"mode": "smoke"', '"mode": "full"'));
    };
    const run = tampered(asFull);
    const baseline = (factor: number) =>
      tampered((d) => {
        asFull(d);
        const p = stageFile(d, "summary", "output.json");
        const j = JSON.parse(readFileSync(p, "utf8")) as Json;
        const m = at<Json>(j, "performance", "mean", "1");
        expect(m.dice as number).toBeCloseTo(oracle.mean, 12);
        m.dice = oracle.mean + factor * oracle.tol; // the baseline was better by this much
        writeFileSync(p, JSON.stringify(j, null, 2));
      });
    const judge = (b: string) =>
      verifyRun(run, skills, { baseline: b }).checks.find((c) => c.id === "regression.baseline");
    const within = judge(baseline(0.9));
    expect(within?.verdict, within?.message).toBe("pass");
    const beyond = judge(baseline(1.1));
    expect(beyond?.verdict).toBe("fail");
    expect(beyond?.message).toMatch(
      /^1 of \d+ value\(s\) worse than the baseline beyond its tolerance: summary label 1 dice /,
    );
    expect(beyond?.evidence).toEqual(["stages/summary/output.json#/performance/mean/1/dice"]);
  });

  // The twelve traps of the issue, each with the one check that owns it. Variants show the
  // ownership rule: an adversary who does not re-record digests is integrity's alone (the
  // checks that would read the altered file leave it unjudged); one who does is the semantic
  // check's alone (the checks downstream of its finding leave that part unjudged).
  const traps: {
    name: string;
    tamper: (d: string) => void;
    caughtBy: string;
    /** Checks that must be skipped because they depend on what the owner found false. */
    skipped?: string[];
  }[] = [
    {
      name: "1a. a per-case Dice edited in output.json, digests left alone",
      tamper: (d) => {
        const p = stageFile(d, F0, "output.json");
        const j = JSON.parse(readFileSync(p, "utf8")) as Json;
        const m = at<Json>(j, "per_case", 0, "labels", 0, "metrics");
        m.dice = (m.dice as number) + 0.01;
        writeFileSync(p, JSON.stringify(j, null, 2));
      },
      caughtBy: "integrity.artifacts",
      // Nothing in that output.json is evidence any more: every check that reads it skips it.
      skipped: [
        "outputs.schema",
        "outputs.artifact-claims",
        "cv.folds",
        "checkpoint.best-of-trace",
        "checkpoint.not-initial",
        "claims.per-case",
        "claims.aggregates",
        "checkpoint.onnx-weights",
        "package.card",
        "smoke.no-quality-claims",
      ],
      // model.predictions re-runs fold 1's cases and leaves fold 0's, which that file no longer vouches for
    },
    {
      name: "1b. a per-case Dice edited in output.json, digests re-recorded",
      tamper: (d) =>
        forgeJson(d, F0, "output.json", (j) => {
          const m = at<Json>(j, "per_case", 0, "labels", 0, "metrics");
          m.dice = (m.dice as number) + 0.01;
        }),
      caughtBy: "claims.per-case",
      // The fold and pooled summaries summarise the false value: not judged twice.
      skipped: ["claims.aggregates"],
    },
    {
      name: "1c. a fold's mean Dice edited in its performance, digests re-recorded",
      tamper: (d) =>
        forgeJson(d, F0, "output.json", (j) => {
          const m = at<Json>(j, "performance", "mean", "1");
          m.dice = (m.dice as number) + 0.05;
        }),
      caughtBy: "claims.aggregates",
      // The fold's model card repeats that performance: not judged against a false value.
      skipped: ["package.card"],
    },
    {
      name: "2. a prediction voxel changed",
      tamper: (d) => {
        const p = stageFile(d, F0, "predictions/la_001.nii.gz");
        const nii = gunzipSync(readFileSync(p));
        const offset = nii.readFloatLE(108); // vox_offset of a NIfTI-1 header
        const i = offset + Math.floor((nii.length - offset) / 2);
        nii[i] = nii[i] ? 0 : 1;
        forge(d, F0, "predictions/la_001.nii.gz", gzipSync(nii));
      },
      caughtBy: "claims.per-case",
      skipped: ["claims.aggregates"],
    },
    {
      name: "3. the best checkpoint replaced by the initial weights, re-serialized in another tensor order",
      tamper: (d) => {
        const best = stageFile(d, F0, "checkpoints/best.safetensors");
        const out = JSON.parse(readFileSync(stageFile(d, F0, "output.json"), "utf8")) as {
          init_digest: string;
        };
        const plan = readFileSync(stageFile(d, "plan", "plan.json"), "utf8");
        const target = join(tmp, `init-${n}.safetensors`);
        python(
          `
sys.path.insert(0, INPUT["py"])
from medpipe.nets import build_network
import struct
from medpipe.safetensors_io import build_header, dtype_name, read_metadata, tensor_bytes
plan = json.loads(INPUT["plan"])
model = build_network(plan["network"], seed=INPUT["seed"])
state = {k: t.detach().contiguous() for k, t in model.state_dict().items()}
# save_file would normalise the order, so the file is laid out here: tensors in reverse name
# order, with the best checkpoint's own metadata; only the tensor values give it away.
names = sorted(state, reverse=True)
blobs = [tensor_bytes(state[k]) for k in names]
entries = [(k, dtype_name(state[k].dtype), tuple(state[k].shape), len(b)) for k, b in zip(names, blobs)]
header, _ = build_header(entries, read_metadata(INPUT["best"]))
with open(INPUT["out"], "wb") as f:
    f.write(struct.pack("<Q", len(header)) + header + b"".join(blobs))
`,
          { py: join(ROOT, "src/py"), plan, seed: 42, out: target, best },
        );
        const file = readSafetensors(target);
        // The trap is what it says: the initial weights, in a file that is not byte-identical.
        expect(digestOfDigests(tensorDigests(file))).toBe(out.init_digest);
        const layout = (f: ReturnType<typeof readSafetensors>) =>
          [...f.tensors].sort((a, b) => a.begin - b.begin).map((t) => t.name);
        expect(layout(file)).not.toEqual(layout(readSafetensors(best)));
        forge(d, F0, "checkpoints/best.safetensors", readFileSync(target));
      },
      caughtBy: "checkpoint.not-initial",
      // The package no longer holds the best weights it names: its graph is not judged against them.
      skipped: ["checkpoint.onnx-weights", "package.card"],
    },
    {
      name: "4. a NaN written into a weight (its digests re-recorded)",
      tamper: (d) => {
        const p = stageFile(d, F1, "checkpoints/last.safetensors");
        const buf = readFileSync(p);
        const f = readSafetensors(p);
        const t = f.tensors.find((x) => x.dtype === "F32" && x.end - x.begin >= 8);
        if (!t) throw new Error("no F32 tensor");
        buf.writeFloatLE(Number.NaN, 8 + Number(buf.readBigUInt64LE(0)) + t.begin + 4);
        writeFileSync(p, buf);
        const digest = digestOfDigests(tensorDigests(readSafetensors(p)));
        forge(d, F1, "checkpoints/last.safetensors", buf);
        forgeJson(d, F1, "output.json", (j) => {
          j.final_digest = digest;
          at<Json>(j, "checkpoints", "last").digest = digest;
        });
      },
      caughtBy: "checkpoint.finite",
      skipped: ["checkpoint.not-initial"],
    },
    {
      name: "5a. a held-out case added to its fold's training list in plan.json",
      tamper: (d) =>
        forgeJson(d, "plan", "plan.json", (j) => {
          at<string[]>(j, "split", "folds", 0, "train").push("la_001");
        }),
      caughtBy: "cv.split",
      // The stages are compared with the plan's folds, which cv.split found false.
      skipped: ["cv.folds", "package.card"],
    },
    {
      name: "5b. a held-out case added to the training list a cv-train stage records",
      tamper: (d) =>
        forgeJson(d, F0, "output.json", (j) => {
          at<string[]>(j, "train_cases").push("la_001");
        }),
      caughtBy: "cv.folds",
    },
    {
      name: "6. a file deleted",
      tamper: (d) => rmSync(stageFile(d, F1, "predictions/la_003.nii.gz")),
      caughtBy: "integrity.artifacts",
      skipped: ["claims.per-case"],
    },
    {
      // The summary's pooled numbers lack that fold's cases when recomputed: not the summary's fault.
      name: "6b. a fold's output.json deleted",
      tamper: (d) => rmSync(stageFile(d, F1, "output.json")),
      caughtBy: "integrity.artifacts",
      skipped: ["claims.aggregates"],
    },
    {
      name: "6c. a fold's output.json cut short (not JSON)",
      tamper: (d) => writeFileSync(stageFile(d, F1, "output.json"), "{"),
      caughtBy: "integrity.artifacts",
      skipped: ["outputs.schema", "outputs.artifact-claims", "claims.aggregates", "smoke.no-quality-claims"],
    },
    {
      // The stages ran in smoke mode; run.json now says otherwise, so neither the stages' mode
      // nor the smoke rule is judged against it.
      name: "6d. run.json's mode changed from smoke to full after the run",
      tamper: (d) => {
        const p = join(d, "run.json");
        writeFileSync(p, readFileSync(p, "utf8").replace('"mode": "smoke"', '"mode": "full"'));
      },
      caughtBy: "integrity.run-record",
      skipped: ["outputs.schema", "smoke.no-quality-claims"],
    },
    {
      name: "7. an extra file",
      tamper: (d) => writeFileSync(stageFile(d, "summary", "better-results.json"), "{}"),
      caughtBy: "integrity.artifacts",
    },
    {
      name: "8. the recommended checkpoint is the last epoch's, not the trace's best",
      // In this run the best EMA is the last epoch, so the trap is built the other way round:
      // the trace (and every claim made from it) now peaks at epoch 1, while best.safetensors
      // stays epoch 2's weights — the last epoch recommended in place of the best.
      tamper: (d) => {
        let e1: Json = {};
        forgeJson(d, F0, "trace.json", (j) => {
          const v = at<Json[]>(j, "validations");
          e1 = v[0] as Json;
          Object.assign(v[1] as Json, { dice: 0.01, ema: (e1.ema as number) * 0.5 });
          j.best = { epoch: 1, dice: e1.dice, ema: e1.ema };
        });
        forgeJson(d, F0, "output.json", (j) => {
          j.best = { epoch: 1, dice: e1.dice, ema: e1.ema };
          j.training_best = e1.ema;
        });
      },
      caughtBy: "checkpoint.best-of-trace",
      // best.safetensors is known to be the wrong weights: its digests are not judged again.
      skipped: ["checkpoint.not-initial"],
    },
    {
      name: "9. a smoke run claiming quality",
      tamper: (d) =>
        forgeJson(d, "summary", "output.json", (j) => {
          j.quality_claim = true;
        }),
      caughtBy: "smoke.no-quality-claims",
    },
    {
      name: "10a. a recorded sha256 edited in evidence.json",
      tamper: (d) => {
        const p = join(d, "evidence.json");
        const ev = JSON.parse(readFileSync(p, "utf8")) as Evidence;
        (ev.stages[F0]?.artifacts[0] as { sha256: string }).sha256 = sha("forged");
        writeFileSync(p, JSON.stringify(ev, null, 2));
      },
      caughtBy: "integrity.root-hash",
      skipped: ["integrity.run-record", "integrity.artifacts", "outputs.artifact-claims"],
    },
    {
      name: "10b. evidence.json's root hash edited",
      tamper: (d) => {
        const p = join(d, "evidence.json");
        const ev = JSON.parse(readFileSync(p, "utf8")) as Evidence;
        ev.root_hash = sha("forged");
        writeFileSync(p, JSON.stringify(ev, null, 2));
      },
      caughtBy: "integrity.root-hash",
      skipped: ["integrity.run-record", "integrity.artifacts", "outputs.artifact-claims"],
    },
    {
      // The graph no longer holds the package's weights. (model.predictions would notice too when
      // it draws one of this fold's cases; it leaves out what an earlier check found false.)
      name: "11a. the ONNX model swapped for another fold's, digests re-recorded",
      tamper: (d) => forge(d, F0, "model/model.onnx", readFileSync(stageFile(d, F1, "model/model.onnx"))),
      caughtBy: "checkpoint.onnx-weights",
      skipped: ["package.card"],
    },
    {
      name: "11b. the second fold's ONNX model swapped for the first's, digests re-recorded",
      tamper: (d) => forge(d, F1, "model/model.onnx", readFileSync(stageFile(d, F0, "model/model.onnx"))),
      caughtBy: "checkpoint.onnx-weights",
      skipped: ["package.card"],
    },
    {
      // The deliverable: the final model predicts nothing during the run, so only the weights
      // inside its graph tie it to the weights the other checks vouch for.
      name: "11d. the final model's ONNX swapped for a fold's, digests re-recorded",
      tamper: (d) =>
        forge(d, "final", "model/model.onnx", readFileSync(stageFile(d, F0, "model/model.onnx"))),
      caughtBy: "checkpoint.onnx-weights",
      skipped: ["package.card"],
    },
    {
      name: "11c. the ONNX model swapped for another fold's, digests left alone",
      tamper: (d) => cpSync(stageFile(d, F1, "model/model.onnx"), stageFile(d, F0, "model/model.onnx")),
      caughtBy: "integrity.artifacts",
      skipped: ["checkpoint.onnx-weights", "package.card"],
    },
    {
      // What infer reads from the package: the plan at another spacing, without post-processing.
      // The card is made to agree with it, every digest re-recorded.
      name: "11e. the final package's plan.json changed, its model card made to match",
      tamper: (d) => {
        const plan = JSON.parse(readFileSync(stageFile(d, "final", "model/plan.json"), "utf8")) as Json;
        plan.target_spacing = [2, 2, 2];
        at<Json>(plan, "inference").keep_largest_component = false;
        const bytes = Buffer.from(`${JSON.stringify(plan, null, 2)}\n`);
        forge(d, "final", "model/plan.json", bytes);
        forgeJson(d, "final", "model/model_card.json", (card) => {
          Object.assign(card, { target_spacing: plan.target_spacing, inference: plan.inference });
          at<Json>(card, "provenance").plan_sha256 = sha(bytes);
          at<Json>(card, "files")["plan.json"] = sha(bytes);
        });
      },
      caughtBy: "package.card",
    },
    {
      name: "11f. a fold's model card claiming a better held-out Dice than its stage measured",
      tamper: (d) =>
        forgeJson(d, F1, "model/model_card.json", (card) => {
          at<Json>(card, "metrics", "mean", "1").dice = 0.97;
        }),
      caughtBy: "package.card",
    },
    {
      name: "12. the per-case spacing edited",
      tamper: (d) =>
        forgeJson(d, F0, "output.json", (j) => {
          const s = at<number[]>(j, "per_case", 0, "spacing");
          s[0] = (s[0] as number) * 1.1;
        }),
      caughtBy: "claims.per-case",
    },
  ];

  it.each(traps)("catches $name", async (t) => {
    const dir = tampered(t.tamper);
    try {
      // Not left to chance: two cases drawn by a fixed draw, the last of fold 1 and the first of fold 0.
      const r = await verifyRunWithModel(dir, skills, onnxGridRunner, { modelChecks: 2, draw: (k) => k - 1 });
      const summary = JSON.stringify(r.checks.filter((c) => c.verdict !== "pass"));
      expect(failed(r), summary).toEqual([t.caughtBy]);
      expect(r.verdict).toBe("fail");
      // Everything else passes, or is skipped because it depends on what the owner found false.
      const skipped = r.checks.filter((c) => c.verdict === "skipped").map((c) => c.id);
      expect(skipped.sort(), summary).toEqual([...(t.skipped ?? [])].sort());
      for (const c of r.checks.filter((x) => x.verdict === "skipped"))
        expect(c.message, c.id).toContain(`already failed ${t.caughtBy}`);
      expect(r.checks.filter((c) => c.verdict === "warn")).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("catches 14. a held-out case's preprocessed image normalized with its own label, the digests re-recorded", async () => {
    // The input the fold's model is scored on: z-scored over the voxels of the case's label (the
    // rule this project used to apply), which no unlabelled image can give. The run's numbers
    // all still agree; only preprocessing the case's image again shows the input is not its own.
    const plan = JSON.parse(readFileSync(join(clean, "stages/plan/plan.json"), "utf8")) as {
      split: { folds: { fold: number; val: string[] }[] };
    };
    const id = plan.split.folds.find((f) => f.fold === 0)?.val[0] as string;
    const dir = tampered((d) => {
      const imageRel = `data/${id}/image.npy`;
      const bytes = readFileSync(stageFile(d, "preprocess", imageRel));
      const label = readFileSync(stageFile(d, "preprocess", `data/${id}/label.npy`));
      const bodyAt = (b: Buffer) => 10 + b.readUInt16LE(8); // .npy version 1 header
      const x = new Float32Array(
        bytes.buffer.slice(bytes.byteOffset + bodyAt(bytes), bytes.byteOffset + bytes.length),
      );
      const l = label.subarray(bodyAt(label));
      expect(l.length).toBe(x.length); // one channel: the same voxel order
      let sum = 0;
      let count = 0;
      for (let i = 0; i < x.length; i++)
        if (l[i]! > 0) {
          sum += x[i]!;
          count++;
        }
      const mean = sum / count;
      let sq = 0;
      for (let i = 0; i < x.length; i++) if (l[i]! > 0) sq += (x[i]! - mean) ** 2;
      const std = Math.sqrt(sq / count);
      const leaked = Float32Array.from(x, (v) => (v - mean) / std);
      const out = Buffer.concat([bytes.subarray(0, bodyAt(bytes)), Buffer.from(leaked.buffer)]);
      forge(d, "preprocess", imageRel, out);
    });
    try {
      const r = await verifyRunWithModel(dir, skills, onnxGridRunner, { draw: () => 0 });
      expect(failed(r)).toEqual(["model.predictions"]);
      const c = r.checks.find((x) => x.id === "model.predictions");
      expect(c?.message).toMatch(
        new RegExp(
          `^${F0.replace(/[[\]]/g, "\\$&")} ${id}: stages/preprocess/data/${id}/image.npy is not the plan's preprocessing of \\S+${id}\\.nii\\.gz alone \\(largest relative difference [0-9.e+]+\\): the case was scored on an input its image does not give`,
        ),
      );
      expect(c?.evidence).toEqual([`stages/preprocess/data/${id}/image.npy`]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("catches 13. every held-out prediction replaced by its ground truth, every score and summary recomputed to match", async () => {
    // The adversary scores the forged predictions with the project's own code, so that every
    // number agrees with every file; only re-running the model shows the predictions are not its.
    const dir = tampered(() => {});
    try {
      const plan = JSON.parse(readFileSync(stageFile(dir, "plan", "plan.json"), "utf8")) as {
        dataset: { root: string; labels: Record<string, string>; cases: { id: string; label: string }[] };
      };
      const gtOf = (id: string) => {
        const rel = plan.dataset.cases.find((c) => c.id === id)?.label as string;
        return isAbsolute(rel) ? rel : join(plan.dataset.root, rel);
      };
      for (const stage of [F0, F1]) {
        const cases = (
          JSON.parse(readFileSync(stageFile(dir, stage, "output.json"), "utf8")) as {
            per_case: { id: string; prediction: string }[];
          }
        ).per_case;
        const scores: Json[] = [];
        for (const c of cases) {
          forge(dir, stage, c.prediction, readFileSync(gtOf(c.id)));
          const gt = await readNifti(gtOf(c.id));
          const asPrediction = { ...gt, data: Uint8Array.from(gt.data), dtype: "uint8" as const };
          scores.push(
            (await scoreCase(c.id, asPrediction, gtOf(c.id), plan.dataset.labels)) as unknown as Json,
          );
        }
        forgeJson(dir, stage, "output.json", (j) => {
          const perCase = j.per_case as Json[];
          perCase.forEach((c, i) => {
            Object.assign(c, scores[i]);
          });
          j.summary = summarizeScores(perCase as never);
          at<Json>(j, "performance").mean = meanMetrics(j.summary as never);
        });
        // The fold's model card repeats the performance: made to match as well.
        const performance = at<Json>(
          JSON.parse(readFileSync(stageFile(dir, stage, "output.json"), "utf8")),
          "performance",
        );
        forgeJson(dir, stage, "model/model_card.json", (card) => {
          card.metrics = performance;
        });
      }
      const gathered = await gatherFolds([F0, F1].map((s) => stageFile(dir, s, "output.json")));
      forgeJson(dir, "summary", "output.json", (j) => {
        (j.folds as Json[]).forEach((f, i) => {
          f.mean = gathered.folds[i]?.mean;
        });
        Object.assign(j, { cases: gathered.cases, summary: gathered.summary });
        at<Json>(j, "performance").mean = gathered.performance.mean;
      });
      // Nothing else notices: the scores are the files' and the summaries the scores'.
      const before = verifyRun(dir, skills);
      expect(failed(before), JSON.stringify(before.checks.filter((c) => c.verdict === "fail"))).toEqual([]);
      const dice = at<number>(
        JSON.parse(readFileSync(stageFile(dir, "summary", "output.json"), "utf8")),
        "performance",
        "mean",
        "1",
        "dice",
      );
      expect(dice).toBe(1); // a perfect cross-validation, claimed consistently
      const r = await verifyRunWithModel(dir, skills, onnxGridRunner, { modelChecks: 1 });
      expect(failed(r)).toEqual(["model.predictions"]);
      const check = r.checks.find((c) => c.id === "model.predictions");
      expect(check?.message).toMatch(
        /^cv\[fold=\d\] la_\d+: input re-made from its image alone, Dice 1\.0000 on the grid, 0\.\d+ in native space: stages\/cv\[fold=\d\]\/predictions\/la_\d+\.nii\.gz < 0\.99, the case was scored on a prediction the model did not make \(1 of 8 cases, drawn at random\)$/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
