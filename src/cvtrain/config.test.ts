// The pure parts of cv-train and cv-summary: the fold's split, the trainer config, the plan as
// trained, the partition check, and cohort summaries against numpy (sample std, exclusions).
import { describe, expect, it } from "vitest";
import { python } from "../../tests/support/oracle.js";
import {
  CvTrainInputError,
  changedOverrides,
  checkDataMatchesPlan,
  type DataIndex,
  defaultSeed,
  effectivePlan,
  foldSplit,
  nominalValidationCases,
  type TrainPlan,
  trainerConfig,
} from "./config.js";
import type { CaseScore } from "./native.js";
import { checkPartition, summarizeScores } from "./summary.js";

const ids = ["a", "b", "c", "d", "e"];

function plan(over: Partial<TrainPlan> = {}): TrainPlan {
  return {
    dataset: {
      name: "toy",
      fingerprint: "f".repeat(64),
      labels: { "0": "background", "1": "heart", "2": "vessel" },
      channels: ["MR"],
      modality: "MR",
      cases: ids.map((id) => ({ id })),
    },
    spatial_dims: 3,
    target_spacing: [1, 1, 2],
    patch_size: [32, 32, 16],
    network: { family: "unet", channels: [8, 16], strides: [2] },
    loss: { name: "dice_ce" },
    optimizer: { name: "adam", lr: 1e-3 },
    schedule: { name: "one_cycle" },
    epochs: 20,
    batch_size: 4,
    samples_per_volume: 8,
    sampler: { name: "label", probabilities: [0.5, 0.25, 0.25] },
    augment: [{ name: "flip", p: 0.5 }],
    ema: 0.9,
    val_every: 1,
    inference: { overlap: 0.5, mode: "hann", tta: true, keep_largest_component: true },
    split: {
      method: "kfold",
      seed: 42,
      folds: [
        { fold: 0, train: ["c", "d", "e"], val: ["a", "b"] },
        { fold: 1, train: ["a", "b", "e"], val: ["c", "d"] },
        { fold: 2, train: ["a", "b", "c", "d"], val: ["e"] },
      ],
    },
    ...over,
  };
}

const data: DataIndex = {
  schema_version: 1,
  plan_sha256: "1".repeat(64),
  fingerprint: "f".repeat(64),
  spatial_dims: 3,
  channels: ["MR"],
  labels: { "0": "background", "1": "heart", "2": "vessel" },
  target_spacing: [1, 1, 2],
  cases: ids.map((id) => ({ id, image: `${id}/image.npy`, label: `${id}/label.npy`, shape: [40, 40, 20] })),
};

describe("fold split", () => {
  it("takes the plan's fold as is, and every case (plan order) for the final model", () => {
    expect(foldSplit(plan(), 1)).toEqual({ fold: 1, train: ["a", "b", "e"], val: ["c", "d"] });
    // numpy: RandomState(42).permutation(5) = [1 4 2 0 3]; max(2, round(0.15 * 5)) = 2 -> b, e
    expect(foldSplit(plan(), "all")).toEqual({
      fold: "all",
      train: ["a", "b", "c", "d", "e"],
      val: [],
      nominal: ["b", "e"],
    });
    expect(defaultSeed(plan(), 2)).toBe(44);
    expect(defaultSeed(plan(), "all")).toBe(45);
  });

  it("refuses a missing fold and a held-out case in its own training list", () => {
    expect(() => foldSplit(plan(), 3)).toThrow(/fold 3 is not in plan.split.folds \(folds: 0, 1, 2\)/);
    const leaky = plan();
    leaky.split.folds[0] = { fold: 0, train: ["a", "c"], val: ["a", "b"] };
    expect(() => foldSplit(leaky, 0)).toThrow(CvTrainInputError);
    expect(() => foldSplit(leaky, 0)).toThrow(/held-out case\(s\) a are also in its training list/);
  });
});

describe("nominal validation of the final model", () => {
  it("takes 15% of the cases (at least 2, at most all), seeded, in the given order", () => {
    const ids = Array.from({ length: 16 }, (_, i) => `c${i}`);
    // numpy: RandomState(42).permutation(16)[:2] = [0 1] (round(0.15 * 16) = 2)
    expect(nominalValidationCases(ids, 42)).toEqual(["c0", "c1"]);
    expect(nominalValidationCases(ids, 42)).toEqual(nominalValidationCases(ids, 42));
    // numpy: RandomState(42).permutation(8) = [1 5 0 7 2 4 3 6]: round(1.2) = 1 -> at least 2
    expect(nominalValidationCases(ids.slice(0, 8), 42)).toEqual(["c1", "c5"]);
    expect(
      nominalValidationCases(
        Array.from({ length: 40 }, (_, i) => `c${i}`),
        0,
      ),
    ).toHaveLength(6);
    expect(nominalValidationCases(["x"], 1)).toEqual(["x"]);
  });

  it("validates the final model on its nominal subset, flagged as such", () => {
    const c = trainerConfig({
      plan: plan(),
      planSha256: "2".repeat(64),
      data,
      dataDir: "/data",
      split: foldSplit(plan(), "all"),
      seed: 45,
      device: "cpu",
      overrides: {},
    });
    expect(c.train_cases.map((x) => x.id)).toEqual(["a", "b", "c", "d", "e"]);
    expect(c.val_cases.map((x) => x.id)).toEqual(["b", "e"]);
    expect(c.nominal_validation).toBe(true);
    expect(trainerConfig({ ...baseConfig(), split: foldSplit(plan(), 0) }).nominal_validation).toBe(false);
  });
});

const baseConfig = () => ({
  plan: plan(),
  planSha256: "2".repeat(64),
  data,
  dataDir: "/data",
  seed: 0,
  device: "cpu" as const,
  overrides: {},
});

describe("trainer config", () => {
  it("maps the plan one to one, with the fold's cases as absolute paths and the overrides", () => {
    const c = trainerConfig({
      plan: plan(),
      planSha256: "2".repeat(64),
      data,
      dataDir: "/data",
      split: foldSplit(plan(), 0),
      seed: 42,
      device: "cpu",
      overrides: { epochs: 2, lr: 0.01, patch_size: [16, 16, 8] },
    });
    expect(c.train_cases.map((x) => x.id)).toEqual(["c", "d", "e"]);
    expect(c.val_cases[0]).toEqual({ id: "a", image: "/data/a/image.npy", label: "/data/a/label.npy" });
    expect(c.network).toEqual({
      spatial_dims: 3,
      family: "unet",
      channels: [8, 16],
      strides: [2],
      in_channels: 1,
      out_channels: 3,
    });
    expect(c.epochs).toBe(2);
    expect(c.optimizer).toEqual({ name: "adam", lr: 0.01 });
    expect(c.patch_size).toEqual([16, 16, 8]);
    expect(c.batch_size).toBe(4);
    expect(c.sampler).toEqual({ name: "label", probabilities: [0.5, 0.25, 0.25] });
    // validation during training: on fixed patches unless the plan says volumes, whose window
    // is the plan's, without TTA
    expect(c.validate_on).toBe("patches");
    expect(
      trainerConfig({ ...baseConfig(), plan: plan({ validate_on: "volumes" }), split: foldSplit(plan(), 0) })
        .validate_on,
    ).toBe("volumes");
    expect(c.inference).toEqual({ overlap: 0.5, mode: "hann", sw_batch_size: 4, tta: false });
    expect(c.metadata.fold).toBe("0");
    expect(c.time_limit_s).toBeNull(); // a run budget, never the plan's: given by cv-train's input only
    expect(trainerConfig({ ...baseConfig(), split: foldSplit(plan(), 0), timeLimitS: 90 }).time_limit_s).toBe(
      90,
    );
  });

  it("refuses a network whose ends contradict the data, and unknown cases", () => {
    const p = plan({ network: { family: "unet", out_channels: 2 } });
    const base = {
      planSha256: "2".repeat(64),
      data,
      dataDir: "/d",
      seed: 0,
      device: "cpu" as const,
      overrides: {},
    };
    expect(() => trainerConfig({ ...base, plan: p, split: foldSplit(p, 0) })).toThrow(
      /plan.network.out_channels is 2 but the data need 3/,
    );
    expect(() =>
      trainerConfig({ ...base, plan: plan(), split: { fold: 0, train: ["zz"], val: ["a"] } }),
    ).toThrow(/training case zz is not in/);
    // Label value k is class k: values 0, 1, 4 need five outputs (the plan skill's count), not three.
    const gap = plan();
    gap.dataset.labels = { "0": "background", "1": "heart", "4": "vessel" };
    const net = trainerConfig({ ...base, plan: gap, split: foldSplit(gap, 0) }).network;
    expect([net.out_channels, net.masked_classes]).toEqual([5, [2, 3]]);
    gap.network = { ...gap.network, masked_classes: [3] };
    expect(() => trainerConfig({ ...base, plan: gap, split: foldSplit(gap, 0) })).toThrow(
      /plan.network.masked_classes is \[3\] but the labels' gaps are \[2, 3\]/,
    );
  });

  it("checks that data/ was preprocessed with this plan's settings", () => {
    expect(checkDataMatchesPlan(plan(), data, "1".repeat(64))).toEqual({ planSha256Matches: true });
    expect(checkDataMatchesPlan(plan(), data, "3".repeat(64))).toEqual({ planSha256Matches: false });
    expect(() => checkDataMatchesPlan(plan({ target_spacing: [1, 1, 1] }), data, "")).toThrow(
      /target_spacing/,
    );
  });

  it("keeps only the overrides that differ from the plan", () => {
    // The plan above: epochs 20, batch 4, patch [32, 32, 16], lr 1e-3, 8 per volume, val every 1.
    const same = {
      epochs: 20,
      batch_size: 4,
      patch_size: [32, 32, 16],
      lr: 1e-3,
      samples_per_volume: 8,
      val_every: 1,
    };
    expect(changedOverrides(plan(), same)).toEqual({});
    expect(changedOverrides(plan(), { ...same, epochs: 2, patch_size: [16, 16, 16] })).toEqual({
      epochs: 2,
      patch_size: [16, 16, 16],
    });
    expect(changedOverrides(plan(), { lr: 0.01 })).toEqual({ lr: 0.01 });
  });

  it("writes the plan as trained only when something was overridden", () => {
    const raw = { epochs: 20, optimizer: { name: "adam", lr: 1e-3 }, patch_size: [32, 32, 16], other: 1 };
    expect(effectivePlan(raw, {})).toBeNull();
    expect(effectivePlan(raw, { epochs: 2, lr: 0.1 })).toEqual({
      epochs: 2,
      optimizer: { name: "adam", lr: 0.1 },
      patch_size: [32, 32, 16],
      other: 1,
    });
  });
});

describe("partition check", () => {
  const folds = plan().split.folds.map((f) => ({ fold: f.fold, train_cases: f.train, val_cases: f.val }));

  it("accepts a partition", () => {
    const p = checkPartition(folds);
    expect(p.ok).toBe(true);
    expect(p.cases).toEqual(ids);
    expect(p.problems).toEqual([]);
  });

  it("finds cases never held out, held out twice, leaked and duplicate folds", () => {
    const p = checkPartition([
      folds[0]!,
      { fold: 1, train_cases: ["a", "c", "e"], val_cases: ["c", "b"] },
      folds[0]!,
    ]);
    expect(p.ok).toBe(false);
    expect(p.never_held_out).toEqual(["d", "e"]);
    expect(p.held_out_twice).toEqual({ a: [0, 0], b: [0, 1, 0] });
    expect(p.leaked).toEqual({ "1": ["c"] });
    expect(p.duplicate_folds).toEqual([0]);
  });
});

describe("cohort summary", () => {
  it("gives numpy's mean and sample std, non-finite values excluded and counted", () => {
    const dice = [0.8, 0.9, Number.NaN, 0.7, 0.85];
    const hd95 = [3.5, Infinity, 2.0, 4.25, 1.0];
    const cases: (CaseScore & { fold: number })[] = dice.map((d, i) => ({
      id: ids[i]!,
      fold: i < 2 ? 0 : 1,
      spacing: [1, 1, 1],
      shape: [2, 2, 2],
      labels: [
        {
          label: 1,
          name: "heart",
          metrics: { dice: Number.isNaN(d) ? "NaN" : d, hd95: hd95[i] === Infinity ? "Infinity" : hd95[i]! },
        },
      ],
    }));
    const s = summarizeScores(cases);
    const oracle = python<number[][]>(
      `
import numpy as np
out = []
for col in INPUT:
    v = np.array(col, dtype=float)
    f = v[np.isfinite(v)]
    out.append([f.mean(), f.std(ddof=1), len(f)])
OUTPUT = out
`,
      [dice, hd95],
    );
    const dm = s[0]!.metrics.dice!;
    const hm = s[0]!.metrics.hd95!;
    expect(dm.mean).toBeCloseTo(oracle[0]![0]!, 14);
    expect(dm.std).toBeCloseTo(oracle[0]![1]!, 14);
    expect([dm.n, dm.nan, dm.infinite]).toEqual([4, 1, 0]);
    expect(hm.mean).toBeCloseTo(oracle[1]![0]!, 14);
    expect([hm.n, hm.nan, hm.infinite]).toEqual([4, 0, 1]);
    expect(Object.keys(s[0]!.folds ?? {})).toEqual(["0", "1"]);
    expect(s[0]!.folds?.["0"]?.dice?.mean).toBeCloseTo(0.85, 14);
  });
});
