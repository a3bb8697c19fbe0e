// The finetune skill end to end: pipelines/finetune.yaml --smoke (a heart_micro model finetuned
// on spleen_micro) validated and verified, its formal Dice recomputed with nibabel from the
// predictions it saved; the checkpoint trap (learning rate 0: epoch 0 stays best, through
// pipelines/finetune-package.yaml on the smoke run's package) reported as such; a tampered copy of that run claiming an improvement failed by the verifier; and the
// bad inputs refused in one line before anything trains.
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ensureBuilt } from "./support/build.js";
import { cli, ROOT } from "./support/cli.js";
import { at, forge, forgeJson, type Json } from "./support/forge.js";
import { python } from "./support/oracle.js";

const runs = mkdtempSync(join(tmpdir(), "medpipe-finetune-"));
afterAll(() => rmSync(runs, { recursive: true, force: true }));
const SPLEEN = join(ROOT, "fixtures", "spleen_micro");

interface FormalJson {
  mean_dice: number | null;
  backend: string;
  device: string;
  cases: { id: string; dice: Record<string, number | null>; mean_dice: number | null; prediction: string }[];
}
interface Output {
  status: string;
  mode: string;
  runtime: { oom: boolean };
  pretrained_ckpt: string;
  finetuned_ckpt: string;
  recommended_ckpt: string;
  finetuned_ckpt_matches_pretrained_weights: boolean;
  improved: boolean;
  regressed: boolean;
  formal_pretrained_val_dice: number | null;
  formal_finetuned_val_dice: number | null;
  formal: { pretrained: FormalJson; finetuned: FormalJson };
  training_start_val_dice: number | null;
  val_dice_per_epoch: { epoch: number; dice: number }[];
  training_best_val_dice: number;
  best_epoch_index: number;
  split: { train: string[]; val: string[] };
}

let runDir = "";
let pretrained = "";
beforeAll(() => {
  ensureBuilt("finetune/index.js");
  const r = cli(["run", "pipelines/finetune.yaml", "--smoke", "--runs-dir", runs], {
    cwd: ROOT,
    timeoutMs: 280_000,
  });
  if (r.code !== 0) throw new Error(`smoke run failed: ${r.stderr.slice(-2000)}`);
  runDir = r.stdout.trim().split("\n").pop() as string;
  pretrained = join(runDir, "stages/pretrain/model");
}, 300_000);

const output = (dir: string) => JSON.parse(readFileSync(join(dir, "output.json"), "utf8")) as Output;

/** `pipeline run-script finetune ...` with the whole file system as the workspace. */
const finetune = (args: string[], timeoutMs = 200_000, env: Record<string, string> = {}) =>
  cli(["run-script", "--workdir", "/", "--runs-dir", runs, "finetune", ...args], {
    cwd: ROOT,
    timeoutMs,
    env,
  });

describe("pipelines/finetune.yaml --smoke", () => {
  it("succeeds, verifies, and its formal Dice is what nibabel computes from its predictions", () => {
    const out = output(join(runDir, "stages/finetune"));
    expect(out).toMatchObject({ status: "succeeded", mode: "smoke", runtime: { oom: false } });
    expect(out.split.val).toEqual(["spleen_001", "spleen_006"]);
    expect(out.val_dice_per_epoch.map((v) => v.epoch)).toEqual([0, 1, 2]);
    expect(out.training_start_val_dice).toBe(out.val_dice_per_epoch[0]?.dice);
    expect(out.pretrained_ckpt).toBe(join(pretrained, "weights.safetensors"));
    for (const which of ["pretrained", "finetuned"] as const) {
      const f = out.formal[which];
      const want = python<number[]>(
        `
import nibabel as nib, numpy as np, os
OUTPUT = []
for cid, pred in INPUT["cases"]:
    p = np.asanyarray(nib.load(os.path.join(INPUT["stage"], pred)).dataobj) == 1
    r = np.asanyarray(nib.load(os.path.join(INPUT["root"], "labelsTr", cid + ".nii.gz")).dataobj) == 1
    OUTPUT.append(2 * (p & r).sum() / (p.sum() + r.sum()))
`,
        {
          stage: join(runDir, "stages/finetune"),
          root: SPLEEN,
          cases: f.cases.map((c) => [c.id, c.prediction]),
        },
      );
      f.cases.forEach((c, i) => {
        expect(c.dice["1"]).toBeCloseTo(want[i] as number, 12);
      });
      expect(f.mean_dice).toBeCloseTo(want.reduce((a, b) => a + b, 0) / want.length, 12);
    }
    expect(out.formal_pretrained_val_dice).toBe(out.formal.pretrained.mean_dice);
    // No GPU here: the formal evaluations ran model.onnx in onnxruntime.
    expect(out.formal.pretrained).toMatchObject({ backend: "onnxruntime", device: "cpu" });
    const v = cli(["verify", runDir, "--json"], { cwd: ROOT });
    expect(v.code, v.stdout.slice(-1500)).toBe(0);
    const report = JSON.parse(readFileSync(join(runDir, "verify/report.json"), "utf8"));
    expect(report.checks.find((c: { id: string }) => c.id === "finetune.claims")).toMatchObject({
      verdict: "pass",
    });
    // The pretrained weights were made in this run: recorded relative to it, so a moved copy of
    // the run verifies from its own files.
    expect((out as unknown as { pretrained_ckpt_in_run: string }).pretrained_ckpt_in_run).toBe(
      "stages/pretrain/model/weights.safetensors",
    );
    const moved = join(runs, "moved-smoke-run");
    cpSync(runDir, moved, { recursive: true });
    expect(cli(["verify", moved], { cwd: ROOT }).code).toBe(0);
  });
});

describe("formal evaluation on the torch backend (what a GPU machine uses)", () => {
  it("predicts what onnxruntime predicted, and the run verifies", () => {
    // The smoke's fine-tuned package (it predicts some spleen; the heart-trained one predicts
    // none) evaluated again as a pretrained package, by torch on the CPU here, learning rate 0.
    const smoke = join(runDir, "stages/finetune");
    const r = finetune([
      "--pretrained",
      join(smoke, "model"),
      "--dataset_dir",
      SPLEEN,
      "--label_mapping",
      "[[1, 1]]",
      "--epochs",
      "1",
      "--learning_rate",
      "0",
      "--formal_backend",
      "torch",
    ]);
    expect(r.code, r.stderr.slice(-1500)).toBe(0);
    const stage = join(r.stdout.trim().split("\n").pop() as string, "stages/finetune");
    const out = output(stage);
    const onnx = output(smoke).formal.finetuned;
    const torch = out.formal.pretrained;
    expect(torch).toMatchObject({ backend: "torch", device: "cpu" });
    expect(torch.cases.map((c) => c.id)).toEqual(onnx.cases.map((c) => c.id));
    // Oracle: the two backends' native-space label maps, read by nibabel.
    const agree = python<{ same: number; fg: number[] }[]>(
      `
import nibabel as nib, numpy as np, os
OUTPUT = []
for a, b in INPUT["pairs"]:
    x = np.asanyarray(nib.load(os.path.join(INPUT["onnx"], a)).dataobj)
    y = np.asanyarray(nib.load(os.path.join(INPUT["torch"], b)).dataobj)
    OUTPUT.append({"same": float((x == y).mean()), "fg": [int((x == 1).sum()), int((y == 1).sum())]})
`,
      {
        onnx: smoke,
        torch: stage,
        pairs: onnx.cases.map((c, i) => [c.prediction, torch.cases[i]!.prediction]),
      },
    );
    for (const [i, a] of agree.entries()) {
      expect(a.fg[0], `case ${i}: not vacuous`).toBeGreaterThan(0);
      // Probabilities agree within 1e-3 (the infer backends' test): a voxel at 0.5 may flip.
      expect(a.same).toBeGreaterThan(0.999);
      expect(
        Math.abs((torch.cases[i]!.dice["1"] as number) - (onnx.cases[i]!.dice["1"] as number)),
      ).toBeLessThan(5e-3);
    }
    // The same weights through the same backend: the same formal Dice.
    expect(out.formal.finetuned).toMatchObject({ backend: "torch", mean_dice: torch.mean_dice });
    expect(cli(["verify", join(stage, "../..")], { cwd: ROOT }).code).toBe(0);
  });
});

describe("the checkpoint trap", () => {
  let trapRun = "";
  it("learning rate 0: epoch 0 stays best, the weights equal the pretrained ones, the pretrained checkpoint is recommended", () => {
    // Through pipelines/finetune-package.yaml (finetune, then verify), trained data-parallel
    // (NPROC_PER_NODE=2: torchrun, two CPU processes, gloo): the trap must hold on that path too.
    const r = cli(
      [
        "run",
        "pipelines/finetune-package.yaml",
        "--smoke",
        "--runs-dir",
        runs,
        "--set",
        `pretrained=${pretrained}`,
        "--set",
        "learning_rate=0",
        "--set",
        "epochs=1",
      ],
      { cwd: ROOT, timeoutMs: 200_000, env: { NPROC_PER_NODE: "2" } },
    );
    expect(r.code, r.stderr.slice(-1500)).toBe(0);
    trapRun = r.stdout.trim().split("\n").pop() as string;
    const stage = join(trapRun, "stages/finetune");
    const out = output(stage);
    expect((out as unknown as { training: { world_size: number } }).training.world_size).toBe(2);
    expect(out.best_epoch_index).toBe(0);
    expect(out.finetuned_ckpt_matches_pretrained_weights).toBe(true);
    expect(out.recommended_ckpt).toBe(out.pretrained_ckpt);
    expect(out.improved).toBe(false);
    expect(out.regressed).toBe(false);
    // Oracle: the two files' tensors, parsed here from the raw safetensors layout.
    const same = python<boolean>(
      `
import json, struct
def tensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n]); h.pop("__metadata__", None)
    return {k: (v["dtype"], v["shape"], b[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]) for k, v in h.items()}
OUTPUT = tensors(INPUT["a"]) == tensors(INPUT["b"])
`,
      { a: out.pretrained_ckpt, b: join(stage, out.finetuned_ckpt) },
    );
    expect(same).toBe(true);
    const v = cli(["verify", trapRun], { cwd: ROOT });
    expect(v.code, v.stdout.slice(-1500)).toBe(0);
  });

  it("a copy whose output claims an improvement with those weights fails finetune.claims", () => {
    expect(trapRun).not.toBe("");
    const copy = join(runs, "tampered");
    cpSync(trapRun, copy, { recursive: true });
    const path = join(copy, "stages/finetune/output.json");
    const out = JSON.parse(readFileSync(path, "utf8")) as Output;
    writeFileSync(path, JSON.stringify({ ...out, improved: true, recommended_ckpt: out.finetuned_ckpt }));
    const v = cli(["verify", copy, "--json"], { cwd: ROOT });
    expect(v.code).toBe(1);
    const report = JSON.parse(readFileSync(join(copy, "verify/report.json"), "utf8"));
    const check = report.checks.find((c: { id: string }) => c.id === "finetune.claims");
    expect(check.verdict).toBe("fail");
    expect(check.message).toMatch(/checkpoint trap/);
  });

  it("a copy with a formal Dice its predictions do not give fails finetune.claims", () => {
    const copy = join(runs, "tampered-dice");
    cpSync(trapRun, copy, { recursive: true });
    const path = join(copy, "stages/finetune/output.json");
    const out = JSON.parse(readFileSync(path, "utf8")) as Output;
    const c0 = out.formal.pretrained.cases[0]!;
    c0.dice["1"] = 0.75;
    writeFileSync(path, JSON.stringify(out));
    expect(cli(["verify", copy, "--json"], { cwd: ROOT }).code).toBe(1);
    const report = JSON.parse(readFileSync(join(copy, "verify/report.json"), "utf8"));
    const check = report.checks.find((c: { id: string }) => c.id === "finetune.claims");
    expect(check.verdict).toBe("fail");
    expect(check.message).toContain(`pretrained case ${c0.id} class 1: Dice 0.75 claimed`);
  });
});

describe("a forged improvement", () => {
  it("fine-tuned formal predictions replaced by the reference labels, every number made to match, fail model.predictions", () => {
    // The adversary re-records every digest (tests/support/forge.ts), so integrity, the schema and
    // finetune.claims (which rescores the saved predictions) all agree; only making the
    // predictions again with the fine-tuned package shows they are not its.
    const copy = join(runs, "forged-improvement");
    cpSync(runDir, copy, { recursive: true });
    rmSync(join(copy, "verify"), { recursive: true, force: true });
    const out = output(join(copy, "stages/finetune")) as Output & {
      formal: { finetuned: { cases: { prediction: string; label: string }[] } };
    };
    for (const c of out.formal.finetuned.cases) forge(copy, "finetune", c.prediction, readFileSync(c.label));
    forgeJson(copy, "finetune", "output.json", (j) => {
      const o = j as unknown as Output & { recommended_package: string; recommendation: Json };
      for (const c of o.formal.finetuned.cases) {
        c.dice["1"] = 1; // the label against itself (spleen_micro: label 1 is model class 1)
        c.mean_dice = 1;
      }
      o.formal.finetuned.mean_dice = 1;
      o.formal_finetuned_val_dice = 1;
      Object.assign(o, {
        improved: true,
        regressed: false,
        recommended_ckpt: o.finetuned_ckpt,
        recommended_package: "model",
      });
      o.recommendation.choice = "finetuned";
    });
    const v = cli(["verify", copy, "--json", "--model-checks", "all"], { cwd: ROOT });
    expect(v.code).toBe(1);
    const report = JSON.parse(v.stdout) as { checks: { id: string; verdict: string; message: string }[] };
    const failed = report.checks.filter((c) => c.verdict === "fail");
    expect(
      failed.map((c) => c.id),
      JSON.stringify(failed),
    ).toEqual(["model.predictions"]);
    expect(failed[0]?.message).toMatch(
      /finetune finetuned spleen_\d+: Dice 0\.\d+ with the finetuned package's prediction: stages\/finetune\/predictions\/finetuned\/spleen_\d+\.nii\.gz < 0\.99, the formal Dice was computed on a prediction the package did not make/,
    );
    // The pretrained package's predictions were left alone and are its own.
    expect(failed[0]?.message).not.toMatch(/finetune pretrained spleen_\d+: Dice/);
    expect(report.checks.find((c) => c.id === "finetune.claims")?.verdict).toBe("pass");
  });

  it("the package shipping the pretrained model: its weights fail finetune.claims, its graph checkpoint.onnx-weights", () => {
    // What a user deploys is the package: it must hold the fine-tuned checkpoint, and its graph
    // those weights. Each tampered copy is the other way of shipping the pretrained model.
    const verdicts = (file: string, bytes = readFileSync(join(pretrained, file))) => {
      const copy = join(runs, `forged-package-${file.replace(/\W/g, "-")}`);
      cpSync(runDir, copy, { recursive: true });
      rmSync(join(copy, "verify"), { recursive: true, force: true });
      forge(copy, "finetune", `model/${file}`, bytes);
      const v = cli(["verify", copy, "--json"], { cwd: ROOT });
      expect(v.code).toBe(1);
      const checks = (JSON.parse(v.stdout) as { checks: { id: string; verdict: string; message: string }[] })
        .checks;
      return { failed: checks.filter((c) => c.verdict === "fail"), checks };
    };
    const weights = verdicts("weights.safetensors");
    expect(weights.failed.map((c) => c.id)).toEqual(["finetune.claims"]);
    expect(weights.failed[0]?.message).toMatch(
      /finetune: stages\/finetune\/model\/weights\.safetensors differs from the fine-tuned checkpoint in \d+ tensor\(s\)/,
    );
    // One fault, one verdict: the graph is not judged against weights already found false.
    expect(weights.checks.find((c) => c.id === "checkpoint.onnx-weights")?.verdict).toBe("skipped");
    const graph = verdicts("model.onnx");
    expect(graph.failed.map((c) => c.id)).toEqual(["checkpoint.onnx-weights"]);
    expect(graph.failed[0]?.message).toMatch(
      /^2 problem\(s\): \d+ of \d+ tensors of the weights are not in stages\/finetune\/model\/model\.onnx/,
    );
    // Its plan must stay the pretrained package's, which both formal evaluations ran with.
    const plan = JSON.parse(readFileSync(join(pretrained, "plan.json"), "utf8")) as Json;
    plan.target_spacing = [1, 1, 1];
    const planned = verdicts("plan.json", Buffer.from(JSON.stringify(plan, null, 2)));
    expect(planned.failed.map((c) => c.id)).toEqual(["package.card"]);
    expect(planned.failed[0]?.message).toContain(
      "stages/finetune/model/plan.json is not the pretrained package's plan.json the model was trained with",
    );
    // And its card must name the weights it was fine-tuned from, not another model's.
    const card = JSON.parse(
      readFileSync(join(runDir, "stages/finetune/model/model_card.json"), "utf8"),
    ) as Json;
    at<Json>(card, "finetuned_from").weights_digest = "0".repeat(64);
    const claimed = verdicts("model_card.json", Buffer.from(JSON.stringify(card, null, 2)));
    expect(claimed.failed.map((c) => c.id)).toEqual(["package.card"]);
    expect(claimed.failed[0]?.message).toBe(
      "1 problem(s): stages/finetune/model/model_card.json: finetuned_from.weights_digest is not the pretrained checkpoint's",
    );
  });
});

describe("a CUDA out-of-memory", () => {
  it("fails the stage with the hint, records runtime.oom and claims no checkpoint", () => {
    // The trainer's loss raises torch's CUDA OOM error at the first step, as src/py/tests/
    // test_train.py does (this machine has no GPU): a sitecustomize on the child's PYTHONPATH
    // replaces medpipe.losses.build_loss before medpipe.train imports it. val_at_start has
    // saved an epoch-0 checkpoint by then, which must not survive.
    const hook = join(runs, "oom-hook");
    mkdirSync(hook, { recursive: true });
    writeFileSync(
      join(hook, "sitecustomize.py"),
      [
        "import medpipe.losses as losses",
        "def _oom(cfg):",
        "    def f(logits, target):",
        '        raise RuntimeError("CUDA out of memory. Tried to allocate 64.00 GiB")',
        "    return f",
        "losses.build_loss = _oom",
        "",
      ].join("\n"),
    );
    const r = cli(
      [
        "run-script",
        "--workdir",
        "/",
        "--runs-dir",
        runs,
        "finetune",
        "--pretrained",
        pretrained,
        "--dataset_dir",
        SPLEEN,
        "--label_mapping",
        "[[1, 1]]",
        "--epochs",
        "1",
        "--skip_formal_eval",
        "true",
      ],
      { cwd: ROOT, env: { PYTHONPATH: hook }, timeoutMs: 120_000 },
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /exit code 1: error: out of memory: CUDA out of memory\. .* \(reduce patch_size or batch_size/,
    );
    const run = r.stdout.trim().split("\n").pop() as string;
    // The engine keeps a failed attempt aside, its output.json renamed so it cannot pass for a result.
    const attempt = join(run, "failed/finetune/attempt-1");
    const out = JSON.parse(readFileSync(join(attempt, "output.json.rejected"), "utf8"));
    expect(out).toMatchObject({
      status: "failed",
      runtime: { oom: true, exit_code: 1 },
      finetuned_ckpt: null,
    });
    expect(existsSync(join(attempt, "checkpoints"))).toBe(false);
    expect(existsSync(join(run, "stages/finetune"))).toBe(false);
  });
});

describe("bad input is refused before training, in one line", () => {
  const datalist = join(runs, "no-fold-0.json");
  writeFileSync(
    datalist,
    JSON.stringify({
      training: [1, 2, 3].map((i) => ({
        image: `imagesTr/spleen_00${i}.nii.gz`,
        label: `labelsTr/spleen_00${i}.nii.gz`,
        fold: i,
      })),
    }),
  );
  it.each([
    [
      "unknown anatomy",
      ["--dataset_dir", SPLEEN, "--target_anatomy", "liver"],
      /target_anatomy "liver" is not a class of the model; its classes: 1 "left atrium"/,
    ],
    [
      "a class the model lacks",
      ["--dataset_dir", SPLEEN, "--label_mapping", "[[1, 4]]"],
      /model class 4 \(for local label 1\) is not a class of the model/,
    ],
    [
      "no fold-0 case",
      ["--dataset_dir", SPLEEN, "--datalist", datalist, "--label_mapping", "[[1, 1]]"],
      /no case with "fold": 0/,
    ],
    [
      "labels absent from every volume",
      ["--dataset_dir", SPLEEN, "--label_mapping", "[[1, 1], [2, 1]]"],
      /local label\(s\) 2 of the mapping appear in none of the 6 label volumes/,
    ],
    [
      "a patch the network cannot take",
      ["--dataset_dir", SPLEEN, "--label_mapping", "[[1, 1]]", "--patch_size", "[32, 32, 20]"],
      /patch_size \[32, 32, 20\]: 20 \(axis 2\) is not a multiple of 16, the product of the UNet's strides \[2, 2, 2, 2\]; use e\.g\. 16 or 32/,
    ],
  ])("%s", (_name, args, message) => {
    const r = finetune(["--pretrained", pretrained, ...args], 60_000);
    // The script exits 2 (an input error); the engine reports the failed stage with exit 1.
    expect(r.code).toBe(1);
    const line = r.stderr.split("\n").find((l) => l.includes("exit code 2: error: "));
    expect(line, r.stderr).toMatch(message);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(r.stderr).not.toMatch(/phase="train"/); // nothing trained
  });

  it("finetune-package.yaml without a package: exit 2 naming the input, before anything runs", () => {
    const r = cli(["run", "pipelines/finetune-package.yaml", "--smoke", "--runs-dir", runs], { cwd: ROOT });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /finetune-package\.yaml:\d+:\d+: error: stage 'finetune' \(skill finetune\): wrong type for input 'pretrained' \(got null\)/,
    );
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
