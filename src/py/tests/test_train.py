"""The training loop: schedules and EMA selection against hand values, the validation
Dice on a hand example, and real runs on a trivially separable synthetic task (a
bright sphere is label 1): the CLI's NDJSON events, checkpoints and their metadata,
trace.json and result.json, determinism, the no-validation final model, OOM and
error exits. Set MEDPIPE_SLOW_TESTS=1 for a longer multi-class run."""

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

import numpy as np
import torch

from medpipe.nets import build_network
from medpipe.safetensors_io import digest_of_digests, load_file, tensor_digests
from medpipe.data import Case, PatchSampler, load_cases
from medpipe.losses import build_loss
from medpipe.train import (StepTimer, dice_counts, dice_from_counts, dice_mean_over_volumes, is_oom, make_optimizer,
                           schedule_at, select_best, train, use_channels_last, validate)

PY_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SLOW = os.environ.get("MEDPIPE_SLOW_TESTS") == "1"
AUGMENT = [{"name": "flip", "axes": [0, 1, 2], "p": 0.5},
           {"name": "affine", "rotate": 0.26, "scale": 0.1, "translate": 0.05, "p": 0.2},
           {"name": "gamma", "range": [0.7, 1.5], "p": 0.3}, {"name": "noise", "std": 0.1, "p": 0.15},
           {"name": "blur", "sigma": [0.5, 1.0], "p": 0.2}, {"name": "bias_field", "coeff": 0.3, "p": 0.1},
           {"name": "shift", "offset": 0.1, "p": 0.5}]


def sphere_cases(folder, n, size=24, seed=0, classes=2, dims=3):
    """n cases: noisy image, class 1 a bright ball (class 2 a second, brighter one)."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(size)] * dims, indexing="ij"), -1)
    cases = []
    for i in range(n):
        lab = np.zeros((size,) * dims, np.uint8)
        for k in range(1, classes):
            r = rng.uniform(4, 6)
            centre = rng.uniform(r, size - 1 - r, dims)
            lab[np.linalg.norm(grid - centre, axis=-1) <= r] = k
        img = (lab * 2.0 - 1.0 + rng.normal(0, 0.5, lab.shape)).astype(np.float32)
        ip, lp = os.path.join(folder, f"case{i}_image.npy"), os.path.join(folder, f"case{i}_label.npy")
        np.save(ip, np.asfortranarray(img))
        np.save(lp, np.asfortranarray(lab))
        cases.append({"id": f"case{i}", "image": ip, "label": lp})
    return cases


def config(cases, n_train, epochs, **over):
    c = {"network": {"channels": [8, 16, 32], "strides": [2, 2], "num_res_units": 1},
         "train_cases": cases[:n_train], "val_cases": cases[n_train:], "patch_size": [16, 16, 16],
         "batch_size": 4, "samples_per_volume": 4, "epochs": epochs, "optimizer": {"lr": 1e-2},
         "seed": 0, "device": "cpu", "metadata": {"plan_hash": "abc123"}}
    c.update(over)
    return c


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = PY_ROOT + os.pathsep + e.get("PYTHONPATH", "")
    e["PYTHONDONTWRITEBYTECODE"] = "1"
    return e


class PiecesTest(unittest.TestCase):
    def test_one_cycle_by_hand(self):
        s = {"name": "one_cycle", "pct_start": 0.25, "div": 25.0, "div_final": 1e5, "moms": [0.95, 0.85, 0.95]}
        lr = 1e-3
        self.assertEqual(schedule_at(0, 100, lr, s), (lr / 25, 0.95))  # the start
        got = schedule_at(25, 100, lr, s)  # pos = pct_start: the peak
        self.assertAlmostEqual(got[0], lr, places=15)
        self.assertAlmostEqual(got[1], 0.85, places=12)
        # Halfway through the warm-up: cos-anneal at f = 0.5 is the mean of the ends.
        got = schedule_at(125, 1000, lr, s)
        self.assertAlmostEqual(got[0], (lr / 25 + lr) / 2, places=15)
        self.assertAlmostEqual(got[1], 0.90, places=12)
        # pos = 0.625: f = 0.5 of the annealing phase.
        got = schedule_at(625, 1000, lr, s)
        self.assertAlmostEqual(got[0], (lr + lr / 1e5) / 2, places=15)
        # fastai's formula at an arbitrary step of phase 2.
        pos, f = 0.9, (0.9 - 0.25) / 0.75
        expected = lr + (1 + math.cos(math.pi * (1 - f))) * (lr / 1e5 - lr) / 2
        self.assertAlmostEqual(schedule_at(90, 100, lr, s)[0], expected, places=15)
        self.assertEqual(schedule_at(5, 10, 0.1, {"name": "constant"}), (0.1, None))
        self.assertAlmostEqual(schedule_at(5, 10, 0.1, {"name": "poly", "power": 0.9})[0], 0.1 * 0.5**0.9)

    def test_ema_selection_on_a_recorded_trace(self):
        dice = [0.50, 0.90, 0.60, 0.60, 0.95]
        emas, best = select_best(dice, 0.9)
        # 0.5; 0.9*0.5+0.1*0.9 = 0.54; 0.9*0.54+0.06 = 0.546; 0.5514; 0.9*0.5514+0.095 = 0.59126
        np.testing.assert_allclose(emas, [0.5, 0.54, 0.546, 0.5514, 0.59126])
        self.assertEqual(best, 4)
        emas, best = select_best([0.9, 0.1, 0.1], 0.5)  # 0.9, 0.5, 0.3: the first is best
        self.assertEqual(best, 0)
        self.assertEqual(select_best([0.4, 0.4], 0.9)[1], 0)  # ties: the first

    def test_dice_by_hand(self):
        label = torch.tensor([0, 1, 1, 1, 2, 2, 0, 0])
        pred = torch.tensor([0, 1, 1, 0, 2, 1, 2, 0])
        counts = dice_counts(pred, label, 4)
        # class 1: TP 2, FP 1, FN 1 -> 4/6; class 2: TP 1, FP 1, FN 1 -> 2/4; class 3 absent.
        np.testing.assert_array_equal(counts.numpy(), [[2, 1, 1], [1, 1, 1], [0, 0, 0]])
        mean, per_class = dice_from_counts(counts)
        self.assertEqual(per_class, [4 / 6, 0.5, None])
        self.assertAlmostEqual(mean, (4 / 6 + 0.5) / 2)

    def test_adamw_decays_weights_not_biases_or_norms_by_hand(self):
        # One AdamW step from zero moments: the bias-corrected moments are g and g^2, so every
        # value moves by lr * g / (|g| + eps); a decayed one is first scaled by (1 - lr * wd).
        # The conv's and the PReLU's weights decay (fastai's rule); the conv's bias and the
        # norm's scale and shift do not.
        net = torch.nn.Sequential(torch.nn.Conv3d(1, 2, 3), torch.nn.InstanceNorm3d(2, affine=True), torch.nn.PReLU())
        with torch.no_grad():
            for p in net.parameters():
                p.uniform_(-1, 1)
                p.grad = torch.full_like(p, 0.5)
        before = {k: p.detach().clone() for k, p in net.named_parameters()}
        o = {"name": "adamw", "lr": 0.1, "weight_decay": 0.2, "momentum": 0.9, "beta2": 0.99, "eps": 1e-5,
             "nesterov": False}
        make_optimizer(net, o).step()
        move = 0.1 * 0.5 / (0.5 + 1e-5)
        for k, p in net.named_parameters():
            scale = 1 - 0.1 * 0.2 if k in ("0.weight", "2.weight") else 1.0
            np.testing.assert_allclose(p.detach().numpy(), before[k].numpy() * scale - move, rtol=1e-6, atol=1e-7,
                                       err_msg=k)

    def test_channels_last_auto_only_on_cuda_and_without_instance_norm(self):
        # A device object is only a name: no GPU is needed to ask what CUDA would get.
        cuda, cpu = torch.device("cuda", 0), torch.device("cpu")
        instance = build_network({"spatial_dims": 3, "in_channels": 1, "out_channels": 2})
        batch = build_network({"spatial_dims": 3, "in_channels": 1, "out_channels": 2, "norm": "batch"})
        self.assertFalse(use_channels_last("auto", cuda, instance))
        self.assertTrue(use_channels_last("auto", cuda, batch))
        self.assertFalse(use_channels_last("auto", cpu, batch))
        self.assertTrue(use_channels_last(True, cpu, instance))
        self.assertFalse(use_channels_last(False, cuda, batch))

    def test_is_oom_knows_the_allocators_messages(self):
        # The messages as torch's CPU and CUDA allocators and cuBLAS word them.
        self.assertTrue(is_oom(RuntimeError("CUDA out of memory. Tried to allocate 29.00 GiB")))
        self.assertTrue(is_oom(RuntimeError("[enforce fail at alloc_cpu.cpp:83] DefaultCPUAllocator: "
                                            "can't allocate memory: you tried to allocate 58 bytes")))
        self.assertTrue(is_oom(RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate")))
        self.assertFalse(is_oom(RuntimeError("CUDA error: an illegal memory access was encountered")))
        self.assertFalse(is_oom(ValueError("out of memory")))

    def test_dice_mean_over_volumes_by_hand(self):
        # [TP, FP, FN] per volume and foreground class. Volume 0: class 1 4/6, class 2 has no
        # truth (not counted, whatever it predicts); volume 1: 2/3 and 6/7; volume 2 holds no
        # truth of either class, so it does not count at all (MONAI's DiceMetric, mean).
        counts = torch.tensor([[[2, 1, 1], [0, 3, 0]],
                               [[1, 0, 1], [3, 1, 0]],
                               [[0, 2, 0], [0, 0, 0]]], dtype=torch.float64)
        mean, per_class = dice_mean_over_volumes(counts)
        self.assertAlmostEqual(mean, (4 / 6 + (2 / 3 + 6 / 7) / 2) / 2, places=12)
        self.assertAlmostEqual(per_class[0], (4 / 6 + 2 / 3) / 2, places=12)
        self.assertAlmostEqual(per_class[1], 6 / 7, places=12)
        self.assertEqual(dice_mean_over_volumes(counts[2:]), (0.0, [None, None]))


    def test_validation_loss_of_a_one_window_volume_is_the_loss_of_the_logits(self):
        model = build_network({"spatial_dims": 3, "channels": [8, 16], "strides": [2], "num_res_units": 1},
                              seed=3).eval()
        g = torch.Generator().manual_seed(0)
        image = torch.randn(1, 16, 16, 16, generator=g)
        label = (torch.rand(16, 16, 16, generator=g) > 0.6).to(torch.uint8)
        loss_fn = build_loss({"name": "dice_ce", "include_background": False, "batch": True})
        with torch.no_grad():
            want = float(loss_fn(model(image[None]), label[None]))
        case = Case("c", image, label)
        c = {"patch_size": [16, 16, 16],
             "inference": {"overlap": 0.5, "mode": "gaussian", "sw_batch_size": 1, "tta": False}}
        dice, _, loss = validate(model, [case], c, torch.device("cpu"), False, loss_fn)
        self.assertAlmostEqual(loss, want, places=5)
        self.assertTrue(model.training)  # handed back in train mode
        self.assertTrue(0.0 <= dice <= 1.0)


class StepTimerTest(unittest.TestCase):
    def test_cpu_spans_sum_per_part_and_reset(self):
        timer = StepTimer(torch.device("cpu"))
        for _ in range(3):
            timer.mark()
            time.sleep(0.002)
            timer.mark("data")
            time.sleep(0.004)
            timer.mark("compute")
        timer.mark()  # the loop's last mark: the sampler's StopIteration, no span
        parts = timer.read()
        self.assertGreaterEqual(parts["data"], 0.006)
        self.assertGreaterEqual(parts["compute"], 0.012)
        self.assertLess(parts["data"], parts["compute"])
        self.assertEqual(timer.read(), {"data": 0, "compute": 0})  # read() starts the next epoch


class TrainTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="medpipe-train-")
        cls.cases = sphere_cases(cls.dir, 6)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def run_cli(self, cfg, name, prelude=""):
        out = os.path.join(self.dir, name)
        os.makedirs(out, exist_ok=True)
        path = os.path.join(out, "config.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        code = f"{prelude}\nimport sys\nfrom medpipe.train import main\nsys.exit(main(sys.argv[1:]))"
        run = subprocess.run([sys.executable, "-c", code, "--config", path, "--output-dir", out],
                             capture_output=True, text=True, env=env(), timeout=120)
        return run, out

    def test_cli_learns_the_sphere_and_writes_everything(self):
        epochs = 15
        run, out = self.run_cli(config(self.cases, 4, epochs, augment=AUGMENT), "cli")
        self.assertEqual(run.returncode, 0, run.stderr)
        events = [json.loads(line) for line in run.stdout.splitlines()]  # every line is JSON
        kinds = [e["event"] for e in events]
        self.assertEqual(kinds[0], "start")
        self.assertEqual(kinds[-1], "done")
        self.assertEqual(kinds.count("epoch"), epochs)
        self.assertEqual(kinds.count("val"), epochs)
        vals = [e for e in events if e["event"] == "val"]
        self.assertTrue(all(isinstance(v["loss"], float) and math.isfinite(v["loss"]) for v in vals))
        self.assertLess(vals[-1]["loss"], vals[0]["loss"])  # the sphere is learned: the val loss falls
        ep3 = [e for e in events if e["event"] == "epoch"][2]
        self.assertEqual((ep3["epoch"], ep3["of"]), (3, epochs))
        self.assertTrue(all(isinstance(ep3[k], float) for k in ("loss", "lr", "seconds")))

        with open(os.path.join(out, "result.json")) as f:
            result = json.load(f)
        with open(os.path.join(out, "trace.json")) as f:
            trace = json.load(f)
        self.assertEqual(result["status"], "ok")
        self.assertGreater(result["best_dice"], 0.8)  # the sphere is learned
        self.assertGreater(result["last_dice"], 0.8)
        self.assertEqual(result["selection"], "best ema")
        # trace: best = the max EMA, and the EMAs follow the recorded Dice values.
        vals = trace["validations"]
        self.assertEqual([v["loss"] for v in vals], [e["loss"] for e in events if e["event"] == "val"])
        emas, best_i = select_best([v["dice"] for v in vals], 0.9)
        np.testing.assert_allclose([v["ema"] for v in vals], emas, rtol=1e-12)
        self.assertEqual(trace["best"]["ema"], max(v["ema"] for v in vals))
        self.assertEqual(trace["best"]["epoch"], vals[best_i]["epoch"])
        self.assertEqual(result["best_epoch"], trace["best"]["epoch"])
        self.assertEqual(result["best_ema"], trace["best"]["ema"])
        self.assertEqual([e["epoch"] for e in trace["epochs"]], list(range(1, epochs + 1)))
        self.assertLess(trace["epochs"][-1]["loss"], trace["epochs"][0]["loss"])

        # Checkpoints: readable, documented metadata, digests as reported, not the init.
        for kind in ("best", "last"):
            path = os.path.join(out, "checkpoints", f"{kind}.safetensors")
            tensors, meta = load_file(path)
            for key in ("format", "kind", "architecture", "epoch", "metric", "metric_name", "ema", "seed",
                        "init_digest", "selection"):
                self.assertIn(key, meta)
            self.assertEqual(meta["kind"], kind)
            self.assertEqual(meta["plan_hash"], "abc123")
            self.assertEqual(meta["init_digest"], result["init_digest"])
            self.assertEqual(meta["seed"], "0")
            digest = digest_of_digests(tensor_digests(path))
            self.assertEqual(digest, result[f"{kind}_digest"])
            self.assertNotEqual(digest, result["init_digest"])
            model = build_network(json.loads(meta["architecture"]))
            model.load_state_dict(tensors)  # strict: every tensor named as the network's
        best_meta = load_file(os.path.join(out, "checkpoints", "best.safetensors"))[1]
        self.assertEqual(int(best_meta["epoch"]), result["best_epoch"])
        self.assertEqual(float(best_meta["ema"]), result["best_ema"])
        self.assertEqual(result["final_digest"], result["last_digest"])
        self.assertIsNone(result["peak_gpu_mb"])
        self.assertGreater(result["peak_rss_mb"], 0)
        self.assertGreater(result["timings"]["total_s"], 0)
        # Timing: per epoch the wall time, and inside it the compute and the data time.
        for row in trace["epochs"]:
            self.assertGreater(row["fwd_bwd_seconds"], 0)
            self.assertGreaterEqual(row["data_seconds"], 0)
            self.assertLessEqual(row["fwd_bwd_seconds"] + row["data_seconds"], row["seconds"] * 1.0001)
        self.assertTrue(all(isinstance(ep3[k], float) for k in ("fwd_bwd_seconds", "data_seconds")))
        self.assertGreaterEqual(result["epoch_over_compute"], 1.0)
        self.assertAlmostEqual(result["epoch_over_compute"],
                               sum(r["seconds"] for r in trace["epochs"])
                               / sum(r["fwd_bwd_seconds"] for r in trace["epochs"]), places=9)
        self.assertEqual((result["nominal_validation"], result["held_out"]), (False, True))
        self.assertEqual((trace["nominal_validation"], trace["held_out"]), (False, True))

    def test_patch_validation_is_the_pooled_dice_of_fixed_padded_patches(self):
        # The trainer's validation on patches recomputed with numpy: the validation cases
        # zero-padded by hand where smaller than the patch (z: 12 -> 16), the patches cut at the
        # starts the sampler's rule draws with seed + 3, the last checkpoint's argmax on each,
        # TP/FP/FN pooled over all six (batches of 4 and 2), and the batch losses averaged
        # over the patches.
        folder = os.path.join(self.dir, "valpatches")
        os.makedirs(folder)
        rng = np.random.default_rng(5)
        grid = np.stack(np.meshgrid(np.arange(20), np.arange(18), np.arange(12), indexing="ij"), -1)
        cases = []
        for i in range(4):
            lab = (np.linalg.norm(grid - rng.uniform([6, 6, 4], [13, 11, 7]), axis=-1) <= 4).astype(np.uint8)
            img = (lab * 2.0 - 1.0 + rng.normal(0, 0.7, lab.shape)).astype(np.float32)
            ip, lp = os.path.join(folder, f"v{i}_image.npy"), os.path.join(folder, f"v{i}_label.npy")
            np.save(ip, np.asfortranarray(img))
            np.save(lp, np.asfortranarray(lab))
            cases.append({"id": f"v{i}", "image": ip, "label": lp})
        cfg = config(cases, 2, 2, samples_per_volume=3, batch_size=4)
        out = os.path.join(folder, "run")
        result = train(cfg, out, emit=lambda e: None)
        with open(os.path.join(out, "trace.json")) as f:
            trace = json.load(f)
        self.assertEqual(trace["validate_on"], "patches")

        val, _ = load_cases(cases[2:], 3, 2, [16, 16, 16])
        draws = [d for b in PatchSampler(val, [16, 16, 16], 3, 4, "label", None, seed=3).fixed_batches() for d in b]
        self.assertEqual([ci for ci, _ in draws], [0, 0, 0, 1, 1, 1])
        tensors, meta = load_file(os.path.join(out, "checkpoints", "last.safetensors"))
        model = build_network(json.loads(meta["architecture"])).eval()
        model.load_state_dict(tensors)
        loss_fn = build_loss({})
        tp = fp = fn = 0
        images, labels, losses = [], [], []
        for ci, start in draws:
            img = np.pad(np.load(cases[2 + ci]["image"]), ((0, 0), (0, 0), (2, 2)))
            lab = np.pad(np.load(cases[2 + ci]["label"]), ((0, 0), (0, 0), (2, 2)))
            self.assertTrue(all(0 <= a <= s - 16 for a, s in zip(start, img.shape)))
            sl = tuple(slice(a, a + 16) for a in start)
            images.append(np.ascontiguousarray(img[sl])[None])
            labels.append(np.ascontiguousarray(lab[sl]))
        for b in (slice(0, 4), slice(4, 6)):
            x, y = torch.from_numpy(np.stack(images[b])), torch.from_numpy(np.stack(labels[b]))
            with torch.no_grad():
                logits = model(x)
            losses.append(float(loss_fn(logits, y)) * len(y))
            p, t = logits.argmax(1).numpy() == 1, y.numpy() == 1
            tp, fp, fn = tp + (p & t).sum(), fp + (p & ~t).sum(), fn + (~p & t).sum()
        self.assertAlmostEqual(2 * tp / (2 * tp + fp + fn), result["last_dice"], places=12)
        self.assertAlmostEqual(sum(losses) / 6, trace["validations"][-1]["loss"], places=5)

    def test_same_seed_same_weights_and_no_validation_is_last(self):
        cfg = config(self.cases, 4, 2, val_cases=[], augment=AUGMENT)
        events = []
        r1 = train(cfg, os.path.join(self.dir, "det1"), emit=events.append)
        r2 = train(cfg, os.path.join(self.dir, "det2"), emit=lambda e: None)
        self.assertEqual(r1["init_digest"], r2["init_digest"])
        self.assertEqual(r1["final_digest"], r2["final_digest"])
        self.assertNotEqual(r1["final_digest"], r1["init_digest"])
        # No validation: no selection, best is the last weights.
        self.assertEqual(r1["selection"], "last (no validation)")
        self.assertEqual(r1["best_digest"], r1["last_digest"])
        self.assertEqual((r1["best_epoch"], r1["best_dice"], r1["last_dice"]), (2, None, None))
        self.assertEqual([e["event"] for e in events], ["start", "epoch", "epoch", "done"])
        meta = load_file(os.path.join(self.dir, "det1", "checkpoints", "best.safetensors"))[1]
        self.assertEqual((meta["selection"], meta["metric"]), ("last (no validation)", "null"))
        r3 = train({**cfg, "seed": 1}, os.path.join(self.dir, "det3"), emit=lambda e: None)
        self.assertNotEqual(r3["init_digest"], r1["init_digest"])

    def test_channels_last_layout_trains_the_same_model(self):
        # The layout changes the memory order only: same init, losses equal up to summation
        # order, and the checkpoint holds the same tensors in the plain (contiguous) layout.
        cfg = config(self.cases, 4, 2, val_cases=[])
        plain = train({**cfg, "channels_last": False}, os.path.join(self.dir, "cl0"), emit=lambda e: None)
        last = train({**cfg, "channels_last": True}, os.path.join(self.dir, "cl1"), emit=lambda e: None)
        self.assertEqual((plain["channels_last"], last["channels_last"]), (False, True))
        self.assertEqual(plain["init_digest"], last["init_digest"])
        with open(os.path.join(self.dir, "cl0", "trace.json")) as f0, open(os.path.join(self.dir, "cl1", "trace.json")) as f1:
            l0 = [e["loss"] for e in json.load(f0)["epochs"]]
            l1 = [e["loss"] for e in json.load(f1)["epochs"]]
        np.testing.assert_allclose(l1, l0, rtol=1e-4)
        w0 = load_file(os.path.join(self.dir, "cl0", "checkpoints", "last.safetensors"))[0]
        w1 = load_file(os.path.join(self.dir, "cl1", "checkpoints", "last.safetensors"))[0]
        self.assertEqual(sorted(w0), sorted(w1))
        for k in w0:
            self.assertEqual(tuple(w0[k].shape), tuple(w1[k].shape), k)
            np.testing.assert_allclose(np.asarray(w1[k], np.float64), np.asarray(w0[k], np.float64), atol=1e-4, err_msg=k)
        # "auto" is plain on the CPU.
        self.assertFalse(train(cfg, os.path.join(self.dir, "cl2"), emit=lambda e: None)["channels_last"])

    def test_nominal_validation_is_watched_not_selected(self):
        # The final model: trains on every case and watches two of them (duplicated).
        cfg = config(self.cases, 4, 3, val_cases=self.cases[:2], nominal_validation=True)
        events = []
        r = train(cfg, os.path.join(self.dir, "nominal"), emit=events.append)
        self.assertEqual(r["selection"], "last (nominal validation)")
        self.assertEqual((r["nominal_validation"], r["held_out"]), (True, False))
        self.assertEqual(r["best_digest"], r["last_digest"])
        self.assertEqual((r["best_epoch"], r["best_dice"], r["best_ema"]), (3, None, None))
        self.assertIsInstance(r["last_dice"], float)  # watched: the nominal numbers are kept
        vals = [e for e in events if e["event"] == "val"]
        self.assertEqual(len(vals), 3)
        self.assertTrue(all(e["nominal"] is True and e["best"] is False for e in vals))
        with open(os.path.join(self.dir, "nominal", "trace.json")) as f:
            trace = json.load(f)
        self.assertEqual((trace["nominal_validation"], trace["held_out"]), (True, False))
        self.assertEqual(len(trace["validations"]), 3)
        self.assertEqual(trace["best"], {"epoch": 3, "dice": None, "ema": None})
        for kind in ("best", "last"):
            meta = load_file(os.path.join(self.dir, "nominal", "checkpoints", f"{kind}.safetensors"))[1]
            self.assertEqual((meta["selection"], meta["metric"], meta["epoch"]),
                             ("last (nominal validation)", "null", "3"))
        with self.assertRaisesRegex(ValueError, "val_cases' is empty"):
            train({**cfg, "val_cases": []}, os.path.join(self.dir, "nominal-bad"), emit=lambda e: None)

    def test_2d_uniform_sgd_poly(self):
        folder = os.path.join(self.dir, "2d")
        os.makedirs(folder)
        cases = sphere_cases(folder, 3, size=20, dims=2)
        cfg = config(cases, 2, 2, network={"spatial_dims": 2, "channels": [8, 16], "strides": [2],
                                           "num_res_units": 1},
                     patch_size=[12, 12], sampler="uniform", augment=[{"name": "flip", "axes": [0, 1], "p": 0.5},
                                                                    {"name": "affine", "rotate": 0.3, "p": 0.5}],
                     optimizer={"name": "sgd", "lr": 0.01, "momentum": 0.9}, schedule={"name": "poly"},
                     val_every=2)
        events = []
        r = train(cfg, os.path.join(self.dir, "2d-out"), emit=events.append)
        self.assertEqual(r["status"], "ok")
        self.assertEqual([e["epoch"] for e in events if e["event"] == "val"], [2])

    def test_oom_exits_3_with_one_line(self):
        prelude = ("import medpipe.train as t\n"
                   "def _loss(cfg):\n"
                   "    def f(logits, target):\n"
                   "        raise RuntimeError('CUDA out of memory. Tried to allocate 2.00 GiB')\n"
                   "    return f\n"
                   "t.build_loss = _loss")
        run, out = self.run_cli(config(self.cases, 4, 1), "oom", prelude)
        self.assertEqual(run.returncode, 3, run.stderr)
        self.assertEqual(len(run.stderr.strip().splitlines()), 1)
        self.assertIn("out of memory", run.stderr)
        with open(os.path.join(out, "result.json")) as f:
            result = json.load(f)
        self.assertEqual((result["status"], result["oom"]), ("oom", True))
        self.assertIn("patch_size", result["hint"])
        self.assertNotIn("share", result["hint"])
        self.assertIn("peak_gpu_mb", result)
        # On a GPU the engine lets several stages share, the hint names that way out too.
        shared = prelude + "\nimport os\nos.environ['MEDPIPE_STAGES_PER_GPU'] = '6'"
        run, out = self.run_cli(config(self.cases, 4, 1), "oom-shared", shared)
        self.assertEqual(run.returncode, 3, run.stderr)
        self.assertEqual(len(run.stderr.strip().splitlines()), 1)
        self.assertIn("up to 6 stages share this GPU (pipeline run --stages-per-gpu 1", run.stderr)

    def test_bad_config_exits_1_with_one_line(self):
        run, out = self.run_cli({**config(self.cases, 4, 1), "epochz": 3}, "bad")
        self.assertEqual(run.returncode, 1)
        self.assertEqual(len(run.stderr.strip().splitlines()), 1)
        self.assertIn("unknown keys ['epochz']", run.stderr)
        with open(os.path.join(out, "result.json")) as f:
            self.assertEqual(json.load(f)["status"], "error")
        # strides [2, 2]: 18 is not a multiple of 4, refused before any data is read.
        run, out = self.run_cli({**config(self.cases, 4, 1), "patch_size": [16, 18, 16]}, "bad-patch")
        self.assertEqual(run.returncode, 1)
        self.assertEqual(len(run.stderr.strip().splitlines()), 1)
        self.assertIn("every axis must be a multiple of 4", run.stderr)

    @unittest.skipUnless(SLOW, "set MEDPIPE_SLOW_TESTS=1")
    def test_slow_two_foreground_classes(self):
        folder = os.path.join(self.dir, "mc")
        os.makedirs(folder)
        cases = sphere_cases(folder, 8, classes=3, seed=3)
        cfg = config(cases, 6, 30, network={"channels": [16, 32, 64], "strides": [2, 2], "num_res_units": 2,
                                            "out_channels": 3},
                     augment=AUGMENT, inference={"tta": True, "mode": "gaussian"})
        r = train(cfg, os.path.join(self.dir, "mc-out"), emit=lambda e: None)
        self.assertGreater(r["best_dice"], 0.8)


if __name__ == "__main__":
    unittest.main()
