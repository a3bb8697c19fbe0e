"""Held-out prediction: a checkpoint rebuilt from its own metadata predicts exactly what the
sliding window computes directly with the same weights; files have the layout of the
preprocessed data contract (checked with numpy's own flags, not with our reader);
runs are byte-deterministic; the CLI emits NDJSON and predict.json with the weights digest."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch

from medpipe.nets import build_network
from medpipe.predict import image_array, predict, resolve_inference
from medpipe.safetensors_io import digest_of_digests, digest_tensor, save_file
from medpipe.sliding_window import sliding_window_inference

PY_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NET3 = {"spatial_dims": 3, "in_channels": 1, "out_channels": 3, "channels": [4, 8], "strides": [2],
        "num_res_units": 1}
NET2 = {"spatial_dims": 2, "in_channels": 2, "out_channels": 2, "channels": [4, 8], "strides": [2],
        "num_res_units": 1}
INFER = {"patch_size": [12, 12, 8], "overlap": 0.5, "mode": "hann", "sw_batch_size": 3, "tta": False}


def write_checkpoint(path, net, seed=0):
    """A random (seeded) model saved as train.py saves checkpoints; returns the model."""
    model = build_network(net, seed=seed).eval()
    tensors = {k: v.detach() for k, v in model.state_dict().items()}
    meta = {"format": "medpipe.checkpoint/1", "kind": "best", "epoch": "7",
            "architecture": json.dumps(model.config, sort_keys=True), "init_digest": "0" * 64}
    save_file(tensors, path, metadata=meta)
    return model


def write_image(path, shape, channels, seed):
    rng = np.random.default_rng(seed)
    img = np.asfortranarray(rng.normal(0, 1, tuple(shape) + (channels,)).astype(np.float32))
    np.save(path, img)
    return img


def env():
    e = dict(os.environ)
    e["PYTHONPATH"] = PY_ROOT + os.pathsep + e.get("PYTHONPATH", "")
    e["PYTHONDONTWRITEBYTECODE"] = "1"
    return e


def quiet(_event):
    pass


class PredictTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="medpipe-predict-")
        cls.ckpt = os.path.join(cls.dir, "best.safetensors")
        cls.model = write_checkpoint(cls.ckpt, NET3)
        # one case larger than the patch (several windows), one smaller (padding)
        cls.cases = []
        for i, shape in enumerate([(20, 17, 11), (9, 13, 6)]):
            path = os.path.join(cls.dir, f"c{i}_image.npy")
            write_image(path, shape, 1, i)
            cls.cases.append({"id": f"c{i}", "image": path})

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_argmax_equals_the_direct_sliding_window(self):
        out = os.path.join(self.dir, "direct")
        s = resolve_inference(None, INFER)
        summary = predict(self.ckpt, self.cases, out, s, device="cpu", probabilities=True, emit=quiet)
        for case in self.cases:
            img = np.load(case["image"])
            direct = sliding_window_inference(np.ascontiguousarray(np.moveaxis(img, -1, 0)), self.model,
                                              INFER["patch_size"], overlap=0.5, mode="hann", sw_batch_size=2,
                                              device="cpu", amp=False)
            label = np.load(os.path.join(out, f"{case['id']}.label.npy"))
            probs = np.load(os.path.join(out, f"{case['id']}.probs.npy"))
            # layout: Fortran, voxel (x, y, z) at [x, y, z], classes last, uint8 / float16
            self.assertEqual(label.dtype, np.uint8)
            self.assertEqual(probs.dtype, np.float16)
            self.assertTrue(label.flags.f_contiguous and not label.flags.c_contiguous)
            self.assertTrue(probs.flags.f_contiguous)
            self.assertEqual(label.shape, img.shape[:3])
            self.assertEqual(probs.shape, img.shape[:3] + (3,))
            np.testing.assert_array_equal(label, direct.argmax(0).numpy())
            np.testing.assert_allclose(probs.astype(np.float32), np.moveaxis(direct.numpy(), 0, -1), atol=1e-3)
            np.testing.assert_allclose(probs.astype(np.float32).sum(-1), 1.0, atol=4e-3)
            # each class is one contiguous block of the file's data (what the TS side reads)
            flat = np.fromfile(os.path.join(out, f"{case['id']}.probs.npy"), dtype=np.float16)[-probs.size:]
            n = label.size
            np.testing.assert_array_equal(flat[n:2 * n], probs[..., 1].ravel(order="F"))
        self.assertEqual(summary["checkpoint_epoch"], 7)
        self.assertEqual(summary["num_classes"], 3)
        expected = digest_of_digests({k: digest_tensor(v) for k, v in self.model.state_dict().items()})
        self.assertEqual(summary["weights_digest"], expected)

    def test_deterministic_and_tta(self):
        s = resolve_inference(None, {**INFER, "tta": True, "mode": "gaussian"})
        a, b = os.path.join(self.dir, "det_a"), os.path.join(self.dir, "det_b")
        predict(self.ckpt, self.cases[:1], a, s, device="cpu", probabilities=True, emit=quiet)
        predict(self.ckpt, self.cases[:1], b, s, device="cpu", probabilities=True, emit=quiet)
        for name in ("c0.label.npy", "c0.probs.npy"):
            with open(os.path.join(a, name), "rb") as fa, open(os.path.join(b, name), "rb") as fb:
                self.assertEqual(fa.read(), fb.read(), name)
        direct = sliding_window_inference(np.moveaxis(np.load(self.cases[0]["image"]), -1, 0), self.model,
                                          INFER["patch_size"], mode="gaussian", tta=True, device="cpu", amp=False)
        np.testing.assert_array_equal(np.load(os.path.join(a, "c0.label.npy")), direct.argmax(0).numpy())

    def test_2d_multichannel(self):
        ckpt = os.path.join(self.dir, "net2.safetensors")
        model = write_checkpoint(ckpt, NET2, seed=3)
        path = os.path.join(self.dir, "slice.npy")
        img = write_image(path, (15, 10), 2, 5)
        out = os.path.join(self.dir, "two_d")
        s = resolve_inference(None, {"patch_size": [8, 8], "mode": "constant"})
        predict(ckpt, [{"id": "s", "image": path}], out, s, device="cpu", emit=quiet)
        label = np.load(os.path.join(out, "s.label.npy"))
        self.assertEqual(label.shape, (15, 10))
        self.assertFalse(os.path.exists(os.path.join(out, "s.probs.npy")))  # not asked for
        direct = sliding_window_inference(np.moveaxis(img, -1, 0), model, [8, 8], mode="constant", device="cpu")
        np.testing.assert_array_equal(label, direct.argmax(0).numpy())

    def test_image_layouts(self):
        img = np.asfortranarray(np.arange(24, dtype=np.float64).reshape(2, 3, 4))
        arr = image_array(img, 3)  # no channel axis: one channel
        self.assertEqual(arr.shape, (1, 2, 3, 4))
        self.assertEqual(arr.dtype, np.float32)
        self.assertEqual(arr[0, 1, 2, 3], img[1, 2, 3])
        self.assertEqual(image_array(np.zeros((5, 6, 1, 2), np.float32), 2).shape, (2, 5, 6))
        with self.assertRaises(ValueError):
            image_array(np.zeros((5, 6, 3, 2), np.float32), 2)

    def test_settings(self):
        plan = {"patch_size": [8, 8, 8], "inference": {"overlap": 0.25, "mode": "gaussian", "tta": True,
                                                        "keep_largest_component": True}}
        s = resolve_inference(plan, {"tta": False})
        self.assertEqual(s, {"patch_size": [8, 8, 8], "overlap": 0.25, "mode": "gaussian", "sw_batch_size": 4,
                             "tta": False})
        with self.assertRaises(ValueError):
            resolve_inference(None, {"overlap": 0.5})  # no patch size
        with self.assertRaises(ValueError):
            resolve_inference(plan, {"overlapp": 0.5})

    def test_cli_events_and_summary(self):
        out = os.path.join(self.dir, "cli")
        cases = os.path.join(self.dir, "cases.json")
        with open(cases, "w") as f:
            json.dump([{"id": c["id"], "image": os.path.basename(c["image"])} for c in self.cases], f)
        run = subprocess.run([sys.executable, "-m", "medpipe.predict", "--checkpoint", self.ckpt, "--cases", cases,
                              "--output-dir", out, "--inference", json.dumps(INFER), "--device", "cpu"],
                             capture_output=True, text=True, env=env(), timeout=60)
        self.assertEqual(run.returncode, 0, run.stderr)
        events = [json.loads(line) for line in run.stdout.splitlines()]
        self.assertEqual([e["event"] for e in events], ["start", "case", "case", "done"])
        self.assertEqual(events[1]["id"], "c0")
        with open(os.path.join(out, "predict.json")) as f:
            summary = json.load(f)
        self.assertEqual(summary["weights_digest"], events[0]["weights_digest"])
        self.assertEqual([c["label"] for c in summary["cases"]], ["c0.label.npy", "c1.label.npy"])
        # a broken input: exit 1, one line on stderr, an error event
        run = subprocess.run([sys.executable, "-m", "medpipe.predict", "--checkpoint", cases, "--cases", cases,
                              "--output-dir", out, "--inference", json.dumps(INFER)],
                             capture_output=True, text=True, env=env(), timeout=60)
        self.assertEqual(run.returncode, 1)
        self.assertEqual(len(run.stderr.strip().splitlines()), 1)
        self.assertEqual(json.loads(run.stdout.splitlines()[-1])["event"], "error")
        self.assertFalse(os.path.exists(os.path.join(out, "predict.json")))

    def test_a_trained_checkpoint_reproduces_the_trainers_validation(self):
        # The trainer's validation Dice on volumes (each volume's Dice, averaged over the volumes;
        # no TTA) recomputed from predict's files with numpy: same checkpoint, same settings,
        # same number.
        from medpipe.train import train
        from tests.test_train import config, sphere_cases

        folder = os.path.join(self.dir, "trained")
        os.makedirs(folder)
        cases = sphere_cases(folder, 4, size=20)
        result = train(config(cases, 2, 3, patch_size=[12, 12, 12], validate_on="volumes"),
                       os.path.join(folder, "run"), emit=quiet)
        out = os.path.join(folder, "pred")
        s = resolve_inference(None, {"patch_size": [12, 12, 12], "overlap": 0.5, "mode": "hann", "sw_batch_size": 4})
        summary = predict(os.path.join(folder, "run", "checkpoints", "last.safetensors"),
                          [{"id": c["id"], "image": c["image"]} for c in cases[2:]], out, s, device="cpu", emit=quiet)
        self.assertEqual(summary["weights_digest"], result["last_digest"])
        dice = []
        for c in cases[2:]:
            p = np.load(os.path.join(out, f"{c['id']}.label.npy")) == 1
            t = np.load(c["label"]) == 1
            dice.append(2 * (p & t).sum() / (p.sum() + t.sum()))
        self.assertAlmostEqual(np.mean(dice), result["last_dice"], places=12)

    def test_wrong_channels(self):
        path = os.path.join(self.dir, "two_channels.npy")
        write_image(path, (8, 8, 8), 2, 0)
        with self.assertRaises(ValueError):
            predict(self.ckpt, [{"id": "x", "image": path}], os.path.join(self.dir, "bad"),
                    resolve_inference(None, INFER), device="cpu", emit=quiet)


if __name__ == "__main__":
    unittest.main()
