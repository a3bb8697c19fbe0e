// buildPlan on the heart_micro analysis: the heart reference defaults, every override, the CT
// normalization from the dataset statistics, and schema validation (schemas/plan.schema.json).
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../../tests/support/cli.js";
import { python } from "../../tests/support/oracle.js";
import { type Analysis, analyzeDataset } from "../analyze/index.js";
import { buildPlan, type Plan, planProblems } from "./index.js";

let analysis: Analysis;
beforeAll(async () => {
  analysis = await analyzeDataset(join(ROOT, "fixtures/heart_micro"));
});

const clone = <T>(x: T): T => structuredClone(x);

describe("plan defaults", () => {
  it("are the heart reference and validate against the plan schema", () => {
    const plan = buildPlan(analysis);
    expect(planProblems(plan)).toEqual([]);
    expect(plan).toMatchObject({
      schema_version: 1,
      spatial_dims: 3,
      orientation: "RAS",
      target_spacing: analysis.suggestions.target_spacing,
      patch_size: analysis.suggestions.patch_size,
      normalization: { scheme: "zscore", over: "above_mean" },
      network: {
        family: "unet",
        spatial_dims: 3,
        in_channels: 1,
        out_channels: 2,
        channels: [16, 32, 64, 128, 256],
        strides: [2, 2, 2, 2],
        num_res_units: 2,
        norm: { name: "instance" },
        act: { name: "prelu" },
      },
      loss: { name: "dice_ce", include_background: false, batch: true },
      optimizer: { name: "adamw", lr: 1e-3, weight_decay: 0.01 },
      schedule: { name: "one_cycle" },
      epochs: 20,
      batch_size: 4,
      samples_per_volume: 8,
      sampler: { name: "label", probabilities: [0.5, 0.5] },
      ema: 0.9,
      validate_on: "patches",
      inference: { overlap: 0.5, mode: "hann", tta: true, keep_largest_component: true },
      split: { method: "kfold", k: 5, seed: 42 },
    });
    expect(plan.dataset).toMatchObject({
      name: "heart_synthetic",
      fingerprint: analysis.fingerprint,
      labels: { "0": "background", "1": "left atrium" },
      modality: "MR",
    });
    expect(plan.dataset.cases.map((c) => c.id)).toEqual(analysis.cases.map((c) => c.id));
    expect(plan.split.folds).toHaveLength(5);
    expect(plan.augment.map((a) => a.name)).toContain("flip");
  });
});

describe("overrides", () => {
  it("replace scalars and merge objects key by key", () => {
    const plan = buildPlan(analysis, {
      patch_size: [160, 160, 80],
      target_spacing: [1.25, 1.25, 1.37],
      epochs: 2,
      batch_size: 2,
      lr: 3e-4,
      optimizer: { weight_decay: 0.05 },
      network: { dropout: 0.2, channels: [8, 16, 32, 64, 128] },
      inference: { tta: false, overlap: 0.25 },
      sampler: { name: "uniform" },
      augment: [],
      early_stopping: { patience: 5 },
      validate_on: "volumes",
      folds: 2,
      split_seed: 7,
      name: "heart",
    });
    expect(planProblems(plan)).toEqual([]);
    expect(plan.patch_size).toEqual([160, 160, 80]);
    expect(plan.target_spacing).toEqual([1.25, 1.25, 1.37]);
    expect(plan.optimizer).toEqual({ name: "adamw", lr: 3e-4, weight_decay: 0.05 });
    // Another optimizer does not inherit AdamW's decay (torch's Adam would apply it as L2).
    expect(buildPlan(analysis, { optimizer: { name: "adam", eps: 1e-8 } }).optimizer).toEqual({
      name: "adam",
      lr: 1e-3,
      eps: 1e-8,
    });
    expect(plan.network).toMatchObject({ dropout: 0.2, channels: [8, 16, 32, 64, 128], num_res_units: 2 });
    expect(plan.inference).toMatchObject({
      tta: false,
      overlap: 0.25,
      mode: "hann",
      keep_largest_component: true,
    });
    expect(plan.sampler).toEqual({ name: "uniform", probabilities: [0.5, 0.5] });
    expect(plan.augment).toEqual([]);
    expect(plan.validate_on).toBe("volumes");
    expect(plan.split).toMatchObject({ method: "kfold", k: 2, seed: 7 });
    expect(plan.dataset.name).toBe("heart");
  });

  it("label value k is class k: a gap in the values is a class the sampler never draws", () => {
    // BraTS-style values 0, 1, 2, 4: five outputs; half the patches on background, the other half
    // shared by the three declared foreground values, none on the undeclared 3.
    const plan = buildPlan(analysis, {
      labels: { "0": "background", "1": "edema", "2": "non-enhancing", "4": "enhancing" },
    });
    expect(plan.network.out_channels).toBe(5);
    expect(plan.network.masked_classes).toEqual([3]);
    expect(plan.sampler.probabilities).toEqual([0.5, 0.5 / 3, 0.5 / 3, 0, 0.5 / 3]);
    expect(planProblems(plan)).toEqual([]);
  });

  it("a new network family starts from its own defaults", () => {
    const plan = buildPlan(analysis, {
      network: { family: "basic_unet", features: [32, 32, 64, 128, 256, 32] },
    });
    expect(plan.network).toEqual({
      family: "basic_unet",
      spatial_dims: 3,
      in_channels: 1,
      out_channels: 2,
      features: [32, 32, 64, 128, 256, 32],
    });
  });

  it("every split method gives explicit folds that validate", () => {
    const stratified = buildPlan(analysis, { split: "stratified", folds: 2 });
    expect(stratified.split).toMatchObject({ method: "stratified", stratify_by: "foreground_volume", k: 2 });
    // Odd cases are their own groups; the even ones share the group "la_00" (the whole match).
    const grouped = buildPlan(analysis, { split: "group", group_by: "regex:^la_00([1357])?", folds: 2 });
    expect(grouped.split.group_by).toBe("regex:^la_00([1357])?");
    expect(grouped.split.folds.map((f) => f.val)).toEqual([
      ["la_002", "la_004", "la_006", "la_008"],
      ["la_001", "la_003", "la_005", "la_007"],
    ]);
    expect(grouped.dataset.cases.map((c) => c.group)).toEqual([
      "1",
      "la_00",
      "3",
      "la_00",
      "5",
      "la_00",
      "7",
      "la_00",
    ]);
    const hold = buildPlan(analysis, { split: "holdout", holdout_fraction: 0.25 });
    expect(hold.split.folds).toHaveLength(1);
    expect(hold.split.folds[0]!.val).toHaveLength(2);
    for (const p of [stratified, grouped, hold]) expect(planProblems(p)).toEqual([]);
  });

  it("subset monai-training keeps MONAI DecathlonDataset's training section in its order, then folds it as KFold", () => {
    // 20 cases, sorted by id as the analysis keeps them, listed by dataset.json in another order
    // (as MSD's lists are): MONAI reads the listing.
    const ids = Array.from({ length: 20 }, (_, i) => `la_${String((i * 7) % 20).padStart(3, "0")}`);
    const twenty = clone(analysis);
    twenty.cases = ids
      .map((id, listed) => ({ ...clone(analysis.cases[listed % analysis.cases.length]!), id, listed }))
      .sort((a, b) => (a.id < b.id ? -1 : 1));
    expect(twenty.cases.map((c) => c.id)).not.toEqual(ids);
    const plan = buildPlan(twenty, { subset: "monai-training", folds: 5, split_seed: 42 });
    expect(planProblems(plan)).toEqual([]);
    // The oracle: MONAI's _split_datalist (RandomState(seed).shuffle of the indices, int(n * 0.2)
    // to validation) and scikit-learn's KFold(5, shuffle=True, random_state=42) over the section
    // in that order (the first 16 % 5 = 1 fold one larger), written out with numpy.
    const expected = python<{ training: string[]; validation: string[]; val: string[][] }>(
      `
import numpy as np
ids = INPUT["ids"]
indices = np.arange(len(ids))
np.random.RandomState(0).shuffle(indices)
n_val = int(len(ids) * 0.2)
training = [ids[i] for i in indices[n_val:]]
order = np.arange(len(training))
np.random.RandomState(42).shuffle(order)
sizes = [len(training) // 5 + (1 if f < len(training) % 5 else 0) for f in range(5)]
starts = np.cumsum([0] + sizes)
OUTPUT = {"training": training, "validation": [ids[i] for i in indices[:n_val]],
          "val": [[training[i] for i in order[starts[f]:starts[f + 1]]] for f in range(5)]}
`,
      { ids },
    );
    expect(plan.dataset.cases.map((c) => c.id)).toEqual(expected.training);
    expect(plan.split.subset).toEqual({
      name: "monai-training",
      seed: 0,
      val_frac: 0.2,
      left_out: expected.validation,
    });
    expect(plan.split.folds.map((f) => f.val)).toEqual(expected.val);
    expect(plan.split.folds.map((f) => f.val.length)).toEqual([4, 3, 3, 3, 3]);
    const other = buildPlan(twenty, { subset: "monai-validation", split: "holdout" });
    expect(other.dataset.cases.map((c) => c.id)).toEqual(expected.validation);
    expect(() => buildPlan(analysis, { subset: "monai-validation" })).toThrow(
      /^subset: monai-validation of 8 analysed cases leaves 1; at least 2 are needed$/,
    );
    const unlisted = clone(twenty);
    delete unlisted.cases[3]!.listed;
    expect(() => buildPlan(unlisted, { subset: "monai-training" })).toThrow(
      /^subset: the analysis does not record the dataset's listing order/,
    );
  });

  it("gives the single-split reference's published test cases from MSD Task02's listing", () => {
    // Task02_Heart's dataset.json lists its 20 training cases in this order. The reference (seeds/001)
    // took DecathlonDataset's training section, then train_test_split(test_size=0.1,
    // random_state=42), and reports its test cases: la_030 and la_024
    // (eval/references/heart-single-split.yaml).
    const listing = [7, 19, 23, 5, 9, 17, 21, 29, 3, 11, 30, 22, 14, 18, 20, 4, 16, 24, 10, 26].map(
      (n) => `la_${String(n).padStart(3, "0")}`,
    );
    const task02 = clone(analysis);
    task02.cases = listing
      .map((id, listed) => ({ ...clone(analysis.cases[listed % analysis.cases.length]!), id, listed }))
      .sort((a, b) => (a.id < b.id ? -1 : 1));
    const plan = buildPlan(task02, {
      subset: "monai-training",
      test_fraction: 0.1,
      split: "holdout",
      holdout_fraction: 0.1,
      split_seed: 42,
    });
    expect(plan.split.test_cases).toEqual(["la_030", "la_024"]);
    expect(plan.dataset.cases).toHaveLength(14);
    expect(plan.split.subset?.left_out).toHaveLength(4);
  });

  it("test_fraction sets a test set aside first (numpy's permutation), then folds the rest as scikit-learn's KFold", () => {
    const plan = buildPlan(analysis, { test_fraction: 0.25, folds: 3, split_seed: 7 });
    expect(planProblems(plan)).toEqual([]);
    const all = analysis.cases.map((c) => c.id);
    // The oracle: scikit-learn's train_test_split draws the test set from all 8 cases (its
    // ShuffleSplit: ceil(n x test_size) of numpy's permutation), then KFold(3, shuffle, seed 7)
    // splits the remaining 6 in their original order (the first 6 % 3 = 0 folds one larger).
    const expected = python<{ test: string[]; val: string[][] }>(
      `
import math
import numpy as np
ids, seed = INPUT["ids"], INPUT["seed"]
test = [ids[i] for i in np.random.RandomState(seed).permutation(len(ids))[:math.ceil(len(ids) * 0.25)]]
rest = [i for i in ids if i not in test]
order = np.random.RandomState(seed).permutation(len(rest))
OUTPUT = {"test": test, "val": [[rest[i] for i in order[2 * f:2 * f + 2]] for f in range(3)]}
`,
      { ids: all, seed: 7 },
    );
    expect(plan.split.test_cases).toEqual(expected.test);
    expect(plan.split.test_fraction).toBe(0.25);
    expect(plan.split.folds.map((f) => f.val)).toEqual(expected.val);
    const pool = all.filter((id) => !expected.test.includes(id));
    expect(plan.dataset.cases.map((c) => c.id)).toEqual(pool);
    for (const f of plan.split.folds) expect([...f.train, ...f.val].sort()).toEqual([...pool].sort());
    // Without test_fraction nothing is set aside.
    expect(buildPlan(analysis).split.test_cases).toBeUndefined();
    expect(() => buildPlan(analysis, { test_fraction: 1.5 })).toThrow(
      /^test_fraction: fraction must be in \(0, 1\)/,
    );
    expect(() => buildPlan(analysis, { test_fraction: 0.9 })).toThrow(
      /^test_fraction: 0\.9 of 8 case\(s\) is 8: it leaves no case to train on$/,
    );
    // Where ceil and round differ (0.1 of 14 cases: 2, not 1), the count is scikit-learn's.
    const fourteen = clone(analysis);
    fourteen.cases = Array.from({ length: 14 }, (_, i) => ({
      ...clone(analysis.cases[i % analysis.cases.length]!),
      id: `c${String(i).padStart(2, "0")}`,
    }));
    const small = python<string[]>(
      "import math\nimport numpy as np\nids = INPUT\nOUTPUT = [ids[i] for i in np.random.RandomState(42).permutation(len(ids))[:math.ceil(len(ids) * 0.1)]]",
      fourteen.cases.map((c) => c.id),
    );
    expect(small).toHaveLength(2);
    expect(buildPlan(fourteen, { test_fraction: 0.1, split_seed: 42 }).split.test_cases).toEqual(small);
    // A test case smuggled back into the training cases is a plan problem.
    const leaky = clone(plan);
    leaky.dataset.cases.push({ id: expected.test[0]!, image: ["x.nii.gz"], label: "y.nii.gz" });
    expect(planProblems(leaky)).toContain(
      `plan.split.test_cases: ${expected.test[0]} is also a training/validation case`,
    );
  });

  it("CT data gets clip + z-score with the dataset's foreground statistics", () => {
    const ct = clone(analysis);
    ct.dataset.modality = "CT";
    const plan = buildPlan(ct);
    const s = analysis.summary.intensity[0]!;
    expect(plan.normalization).toEqual({ scheme: "ct", clip: [s.p00_5, s.p99_5], mean: s.mean, std: s.std });
    expect(planProblems(plan)).toEqual([]);
    expect(buildPlan(ct, { normalization: { scheme: "zscore", over: "nonzero" } }).normalization).toEqual({
      scheme: "zscore",
      over: "nonzero",
    });
  });
});

describe("refusals", () => {
  it("an analysis with errors, impossible splits and wrong lengths are one-line errors", () => {
    const bad = clone(analysis);
    bad.errors = 1;
    bad.problems = [
      { severity: "error", check: "empty-label", case: "x", file: "/x", message: "/x: label is empty" },
    ];
    expect(() => buildPlan(bad)).toThrow("the analysis lists 1 error(s) (first: /x: label is empty)");
    expect(() => buildPlan(analysis, { folds: 9 })).toThrow(
      "split: kfold: cannot split 8 case(s) into 9 folds",
    );
    expect(() => buildPlan(analysis, { patch_size: [64, 64] })).toThrow("has 2 values; the data is 3D");
    expect(() => buildPlan(analysis, { split: "group" })).toThrow("has no group key");
    // The reference UNet halves each axis four times: 16 | every axis (40 = 2.5 x 16 fails).
    expect(() => buildPlan(analysis, { patch_size: [80, 80, 40] })).toThrow(
      "patch_size [80, 80, 40]: 40 (axis 2) is not a multiple of 16, the product of the UNet's strides [2, 2, 2, 2]; use e.g. 32 or 48",
    );
    expect(() => buildPlan(analysis, { patch_size: [96, 96, 30], network: { strides: [2, 3, 2] } })).toThrow(
      "30 (axis 2) is not a multiple of 12",
    );
    expect(
      buildPlan(analysis, { patch_size: [96, 96, 36], network: { strides: [2, 2] } }).patch_size,
    ).toEqual([96, 96, 36]);
    // The basic UNet pads a short axis itself: any size.
    expect(
      buildPlan(analysis, { patch_size: [50, 50, 30], network: { family: "basic_unet" } }).patch_size,
    ).toEqual([50, 50, 30]);
  });

  it("planProblems catches what the schema and the partition rules forbid", () => {
    const plan: Plan = buildPlan(analysis);
    const twice = clone(plan);
    twice.split.folds[1]!.val.push(twice.split.folds[0]!.val[0]!);
    expect(planProblems(twice).join("\n")).toMatch(/in 2 validation folds/);
    const extra = clone(plan) as Plan & { extra?: number };
    extra.extra = 1;
    expect(planProblems(extra).join("\n")).toMatch(/additional properties/);
    const neg = clone(plan);
    neg.batch_size = 0;
    expect(planProblems(neg).join("\n")).toMatch(/plan.batch_size: must be >= 1/);
    // A plan from before normalization stopped reading the label names the values it may use.
    const labelNorm = clone(plan) as unknown as { normalization: { scheme: string; over: string } };
    labelNorm.normalization = { scheme: "zscore", over: "foreground" };
    expect(planProblems(labelNorm)).toEqual([
      'plan.normalization.over: must be equal to one of the allowed values: "all", "nonzero", "above_mean"',
    ]);
    const odd = clone(plan);
    odd.patch_size = [64, 64, 24];
    expect(planProblems(odd)).toContain(
      "plan.patch_size [64, 64, 24]: 24 (axis 2) is not a multiple of 16, the product of the UNet's strides [2, 2, 2, 2]; use e.g. 16 or 32",
    );
  });
});
