// cv-train and cv-summary end to end through the real CLI (`pipeline run-script`, which also
// validates output.json against the skill's schema), on six heart_micro cases preprocessed for
// real, CPU, 2 epochs, a tiny network. The claims in output.json are then recomputed from the
// files by independent code: nibabel + numpy (predictions over the images, per-case Dice), a
// from-scratch safetensors digest (checkpoints, package), the trace's EMA maximum, and the
// pooled summary.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cli, ROOT } from "../../tests/support/cli.js";
import { itWithOracle, python } from "../../tests/support/oracle.js";
import { examplePlan } from "../preprocess/example-plan.js";
import { preprocessDataset } from "../preprocess/index.js";

const itOracle = itWithOracle("nibabel");

const FIXTURE = join(ROOT, "fixtures", "heart_micro");
const IDS = ["la_001", "la_002", "la_003", "la_004", "la_005", "la_006"];

interface Stage {
  dir: string;
  output: Record<string, unknown> & {
    fold: number | "all";
    per_case: {
      id: string;
      prediction: string;
      spacing: number[];
      labels: { metrics: Record<string, number> }[];
    }[];
    best: { epoch: number; dice: number | null; ema: number | null };
    training_best: number | null;
    init_digest: string;
    best_digest: string;
    final_digest: string;
    performance: unknown;
    summary: { metrics: Record<string, { mean: number; std: number }> }[] | null;
    model: { weights_digest: string };
    train_cases: string[];
    val_cases: string[];
  };
}

let ws: string;
const stages: Record<string, Stage> = {};

/** Runs one skill through `pipeline run-script` and returns its stage folder and output.json. */
function runScript(skill: string, args: string[]): Stage {
  const r = cli(["run-script", skill, ...args], { cwd: ws });
  if (r.code !== 0) throw new Error(`run-script ${skill} failed (${r.code}):\n${r.stderr.slice(-3000)}`);
  const runDir = r.stdout.trim().split("\n").pop() as string;
  const stageDir = join(runDir, "stages", readdirSync(join(runDir, "stages"))[0] as string);
  return { dir: stageDir, output: JSON.parse(readFileSync(join(stageDir, "output.json"), "utf8")) };
}

beforeAll(async () => {
  ws = mkdtempSync(join(tmpdir(), "medpipe-cvtrain-e2e-"));
  const plan = examplePlan({
    cases: IDS.map((id) => ({
      id,
      image: [join(FIXTURE, "imagesTr", `${id}.nii.gz`)],
      label: join(FIXTURE, "labelsTr", `${id}.nii.gz`),
    })),
    targetSpacing: [2, 2, 2],
    normalization: { scheme: "zscore", over: "nonzero" },
    labels: { "0": "background", "1": "left atrium" },
  });
  Object.assign(plan, {
    patch_size: [16, 16, 16],
    network: { family: "unet", channels: [4, 8, 16], strides: [2, 2], num_res_units: 1 },
    optimizer: { name: "adam", lr: 0.01 },
    schedule: { name: "one_cycle" },
    epochs: 20,
    batch_size: 2,
    samples_per_volume: 2,
    sampler: { name: "label", probabilities: null },
    inference: { overlap: 0.5, mode: "hann", tta: true, keep_largest_component: true },
    split: {
      method: "kfold",
      seed: 42,
      k: 2,
      folds: [
        { fold: 0, train: IDS.slice(3), val: IDS.slice(0, 3) },
        { fold: 1, train: IDS.slice(0, 3), val: IDS.slice(3) },
      ],
    },
  });
  writeFileSync(join(ws, "plan.json"), JSON.stringify(plan, null, 2));
  await preprocessDataset({ plan: join(ws, "plan.json"), outDir: join(ws, "data"), workers: 0 });
  // Enough epochs on the folds that the held-out masks are substantial (a Dice of 0 everywhere
  // would make the recomputation below vacuous); the final model only needs to exist.
  const common = ["--plan", "plan.json", "--data", "data", "--device", "cpu"];
  for (const fold of ["0", "1"])
    stages[fold] = runScript("cv-train", [
      ...common,
      "--fold",
      fold,
      "--epochs",
      "15",
      "--samples_per_volume",
      "4",
    ]);
  // The final model also carries a time budget that its first epoch outlasts: 3 epochs asked, 1 run.
  stages.all = runScript("cv-train", [
    ...common,
    "--fold",
    "all",
    "--epochs",
    "3",
    "--time_limit_s",
    "0.001",
  ]);
  const folds = JSON.stringify([0, 1].map((f) => join(stages[String(f)]!.dir, "output.json")));
  stages.summary = runScript("cv-summary", [
    "--folds",
    folds,
    "--final",
    join(stages.all!.dir, "output.json"),
  ]);
}, 120_000);

afterAll(() => rmSync(ws, { recursive: true, force: true }));

describe("cv-train through the CLI", () => {
  itOracle("writes every held-out prediction over its own image (nibabel: same affine and shape)", () => {
    const o = stages["0"]!.output;
    expect(o.val_cases).toEqual(IDS.slice(0, 3));
    expect(o.per_case.map((c) => c.id)).toEqual(IDS.slice(0, 3));
    const check = python<boolean[]>(
      `
import numpy as np, nibabel as nib
out = []
for pred, img in INPUT:
    p, i = nib.load(pred), nib.load(img)
    out.append(bool(np.array_equal(p.affine, i.affine)) and p.shape == i.shape[:3])
OUTPUT = out
`,
      o.per_case.map((c) => [
        join(stages["0"]!.dir, c.prediction),
        join(FIXTURE, "imagesTr", `${c.id}.nii.gz`),
      ]),
    );
    expect(check).toEqual([true, true, true]);
  });

  itOracle("reports per-case Dice and volumes that numpy recomputes from the written files", () => {
    const o = stages["0"]!.output;
    const got = python<number[][]>(
      `
import numpy as np, nibabel as nib
out = []
for pred, ref in INPUT:
    p = np.asanyarray(nib.load(pred).dataobj) == 1
    r = nib.load(ref)
    t = np.asanyarray(r.dataobj) == 1
    denom = p.sum() + t.sum()
    dice = 2.0 * (p & t).sum() / denom if denom else float("nan")
    out.append([dice, *[float(z) for z in r.header.get_zooms()[:3]]])
OUTPUT = out
`,
      o.per_case.map((c) => [
        join(stages["0"]!.dir, c.prediction),
        join(FIXTURE, "labelsTr", `${c.id}.nii.gz`),
      ]),
    );
    o.per_case.forEach((c, i) => {
      expect(got[i]![0]).toBeGreaterThan(0.5); // the model learned something: a real comparison
      expect(c.labels[0]!.metrics.dice).toBeCloseTo(got[i]![0]!, 12);
      expect(c.spacing.map((s) => Math.fround(s))).toEqual(got[i]!.slice(1).map((s) => Math.fround(s)));
    });
  });

  it("claims digests and a training-best that the files prove", () => {
    const o = stages["0"]!.output;
    const dir = stages["0"]!.dir;
    const digests = python<string[]>(
      `
import hashlib, json, struct

def digest(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    lines = []
    for name in sorted(header):
        t = header[name]
        b, e = t["data_offsets"]
        h = hashlib.sha256((t["dtype"] + ":" + ",".join(str(d) for d in t["shape"]) + "\\n").encode() + data[b:e])
        lines.append(f"{name}\\t{h.hexdigest()}\\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()
OUTPUT = [digest(p) for p in INPUT]
`,
      ["checkpoints/best.safetensors", "checkpoints/last.safetensors", "model/weights.safetensors"].map((p) =>
        join(dir, p),
      ),
    );
    expect(digests).toEqual([o.best_digest, o.final_digest, o.best_digest]);
    expect(o.model.weights_digest).toBe(o.best_digest);
    const trace = JSON.parse(readFileSync(join(dir, "trace.json"), "utf8")) as {
      validations: { ema: number }[];
    };
    expect(o.training_best).toBe(Math.max(...trace.validations.map((v) => v.ema)));
    expect(o.best.ema).toBe(o.training_best);
    // every fold from a fresh init: different seeds, different inits, recorded
    expect(stages["1"]!.output.init_digest).not.toBe(o.init_digest);
    const card = JSON.parse(readFileSync(join(dir, "model", "model_card.json"), "utf8")) as {
      provenance: { init_digest: string };
      fold: number;
    };
    expect(card.provenance.init_digest).toBe(o.init_digest);
    expect(card.fold).toBe(0);
  });

  it("stops at the time budget after the first epoch past it, and records it", () => {
    const all = stages.all!.output as Stage["output"] & { time_limit: unknown; epochs: number };
    expect(all.time_limit).toEqual({ seconds: 0.001, reached: true, stop_epoch: 1 });
    expect(all.epochs).toBe(3); // as asked; the trace holds the one that ran
    const trace = JSON.parse(readFileSync(join(stages.all!.dir, "trace.json"), "utf8")) as {
      epochs: unknown[];
      stop_reason: string;
    };
    expect([trace.epochs.length, trace.stop_reason]).toEqual([1, "time_limit"]);
    expect(stages["0"]!.output.time_limit).toBeNull();
  });

  it("reports no performance for the final model", () => {
    const o = stages.all!.output;
    expect(o.fold).toBe("all");
    expect(o.train_cases).toEqual(IDS);
    expect(o.val_cases).toEqual([]);
    expect(o.performance).toBeNull();
    expect(o.summary).toBeNull();
    expect(o.training_best).toBeNull();
    expect(o.best_digest).toBe(o.final_digest);
  });

  it("watches a nominal subset of its own training cases, flagged and never selecting", () => {
    const o = stages.all!.output as Stage["output"] & {
      nominal_validation: boolean;
      selection: string;
      nominal: { cases: string[]; held_out: boolean; validations: number; last: { epoch: number } | null };
    };
    expect(o.nominal_validation).toBe(true);
    expect(o.selection).toBe("last (nominal validation)");
    expect(o.nominal.held_out).toBe(false);
    expect(o.nominal.cases).toHaveLength(2); // max(2, round(0.15 * 6))
    for (const id of o.nominal.cases) expect(o.train_cases).toContain(id); // duplicated, not held out
    expect(o.nominal.validations).toBe(1);
    expect(o.nominal.last?.epoch).toBe(1);
    expect(o.best).toEqual({ epoch: 1, dice: null, ema: null });
    const trace = JSON.parse(readFileSync(join(stages.all!.dir, "trace.json"), "utf8")) as {
      nominal_validation: boolean;
      held_out: boolean;
      validations: unknown[];
      epochs: { fwd_bwd_seconds: number; data_seconds: number; seconds: number }[];
    };
    expect([trace.nominal_validation, trace.held_out, trace.validations.length]).toEqual([true, false, 1]);
    for (const e of trace.epochs) {
      expect(e.fwd_bwd_seconds).toBeGreaterThan(0);
      expect(e.fwd_bwd_seconds + e.data_seconds).toBeLessThanOrEqual(e.seconds * 1.0001);
    }
  });
});

describe("cv-summary through the CLI", () => {
  it("pools every held-out case (numpy's mean and sample std) and confirms the partition", () => {
    const s = stages.summary!.output as unknown as {
      complete: boolean;
      partition: { cases: string[] };
      summary: { metrics: Record<string, { mean: number; std: number; n: number }> }[];
      folds: { fold: number }[];
      final: { covers_all_cases: boolean; performance_null: boolean };
    };
    expect(s.complete).toBe(true);
    expect(s.partition.cases).toEqual(IDS);
    expect(s.folds.map((f) => f.fold)).toEqual([0, 1]);
    expect(s.final).toMatchObject({ covers_all_cases: true, performance_null: true });
    const dice = [0, 1].flatMap((f) =>
      stages[String(f)]!.output.per_case.map((c) => c.labels[0]!.metrics.dice),
    );
    const [mean, std] = python<number[]>(
      "import numpy as np\nOUTPUT = [np.mean(INPUT), np.std(INPUT, ddof=1)]",
      dice,
    );
    expect(s.summary[0]!.metrics.dice!.n).toBe(6);
    expect(s.summary[0]!.metrics.dice!.mean).toBeCloseTo(mean!, 12);
    expect(s.summary[0]!.metrics.dice!.std).toBeCloseTo(std!, 12);
  });
});
