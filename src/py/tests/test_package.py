"""The model package: four files, the weights per-tensor identical to the checkpoint, the
ONNX graph carrying those same weights (its initializers read with the from-scratch
protobuf reader of test_export_onnx) with dynamic axes, the plan copied byte for byte, and
a model card whose provenance digests are recomputed here."""

import hashlib
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
from medpipe.package import build_package
from medpipe.safetensors_io import digest_of_digests, digest_tensor, load_file, save_file, tensor_bytes, tensor_digests
from tests.test_export_onnx import HAVE_ORT, fields, get, parse_model

PY_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NET = {"spatial_dims": 3, "in_channels": 1, "out_channels": 2, "channels": [4, 8], "strides": [2],
       "num_res_units": 1}
PLAN = {"schema_version": 1, "patch_size": [16, 16, 8], "target_spacing": [1.5, 1.5, 2.0], "orientation": "RAS",
        "normalization": {"scheme": "zscore", "over": "above_mean"},
        "inference": {"overlap": 0.5, "mode": "hann", "tta": True, "keep_largest_component": True},
        "dataset": {"name": "toy", "fingerprint": "f" * 64, "labels": {"0": "background", "1": "heart"},
                    "channels": ["MR"], "modality": "MR", "cases": [{"id": "a", "image": ["a.nii.gz"]}]}}


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def onnx_initializer_bytes(path):
    """raw_data of every initializer of the graph (TensorProto field 9)."""
    with open(path, "rb") as f:
        graph = get(f.read(), 7)[0]
    return {bytes(dict(fields(t)).get(9, b"")) for t in get(graph, 5)}


class PackageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="medpipe-package-")
        cls.model = build_network(NET, seed=11)
        cls.tensors = {k: v.detach() for k, v in cls.model.state_dict().items()}
        cls.ckpt = os.path.join(cls.dir, "best.safetensors")
        save_file(cls.tensors, cls.ckpt, metadata={
            "format": "medpipe.checkpoint/1", "kind": "best", "epoch": "4", "metric": "0.75", "ema": "0.7",
            "metric_name": "val_dice", "selection": "best ema", "seed": "3", "init_digest": "a" * 64,
            "architecture": json.dumps(cls.model.config, sort_keys=True)})
        cls.plan = os.path.join(cls.dir, "plan.json")
        with open(cls.plan, "w") as f:
            json.dump(PLAN, f, indent=1)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def test_package_contents(self):
        out = os.path.join(self.dir, "pkg")
        os.environ["SOURCE_DATE_EPOCH"] = "1700000000"
        try:
            card = build_package(self.ckpt, self.plan, out, {"metrics": {"dice": 0.8}, "fold": 2})
        finally:
            del os.environ["SOURCE_DATE_EPOCH"]
        self.assertEqual(sorted(os.listdir(out)), ["model.onnx", "model_card.json", "plan.json",
                                                   "weights.safetensors"])
        with open(os.path.join(out, "model_card.json")) as f:
            self.assertEqual(json.load(f), card)
        # weights: the same tensors (per-tensor digests), metadata kept and extended
        expected = {k: digest_tensor(v) for k, v in self.tensors.items()}
        self.assertEqual(tensor_digests(os.path.join(out, "weights.safetensors")), expected)
        _, meta = load_file(os.path.join(out, "weights.safetensors"))
        self.assertEqual(meta["epoch"], "4")
        self.assertEqual(meta["plan_sha256"], sha256(self.plan))
        # plan byte for byte
        with open(self.plan, "rb") as a, open(os.path.join(out, "plan.json"), "rb") as b:
            self.assertEqual(a.read(), b.read())
        # the graph: dynamic axes, and every conv kernel of the checkpoint among its initializers
        m = parse_model(os.path.join(out, "model.onnx"))
        self.assertEqual(m["inputs"], [("image", 1, ["batch", 1, "z", "y", "x"])])
        self.assertEqual(m["outputs"], [("logits", 1, ["batch", 2, "z", "y", "x"]),
                                        ("foreground", 1, ["batch", 1, "z", "y", "x"])])
        raw = onnx_initializer_bytes(os.path.join(out, "model.onnx"))
        transposed = {f"{name}.weight" for name, mod in self.model.named_modules()
                      if isinstance(mod, torch.nn.ConvTranspose3d)}
        kernels = [k for k, v in self.tensors.items() if v.dim() == 5 and k not in transposed]
        self.assertGreater(len(kernels), 3)
        for k in kernels:
            self.assertIn(tensor_bytes(self.tensors[k]), raw, k)
        # Transposed convs are exported as sub-pixel convs (export_onnx): a stride-2, kernel-3
        # kernel becomes 8 phases of 2x2x2 taps, in which each of its 27 taps appears exactly
        # once and every other entry is zero.
        self.assertTrue(transposed)
        for k in transposed:
            w = self.tensors[k].numpy()
            size = w.size * 64 // 27 * 4
            found = [r for r in raw if len(r) == size
                     and np.array_equal(np.sort(np.frombuffer(r, np.float32)[np.frombuffer(r, np.float32) != 0]),
                                        np.sort(w[w != 0].ravel()))]
            self.assertEqual(len(found), 1, k)
        # the card
        self.assertEqual(card["format"], "medpipe.model_card/1")
        self.assertEqual(card["architecture"], self.model.config)
        self.assertEqual(card["labels"], {"0": "background", "1": "heart"})
        self.assertEqual(card["metrics"], {"dice": 0.8})
        self.assertEqual(card["fold"], 2)
        self.assertEqual(card["data"], {"name": "toy", "fingerprint": "f" * 64, "cases": 1})
        p = card["provenance"]
        self.assertEqual(p["plan_sha256"], sha256(self.plan))
        self.assertEqual(p["checkpoint"]["digest"], digest_of_digests(expected))
        self.assertEqual(p["weights_digest"], digest_of_digests(expected))
        self.assertEqual(p["checkpoint"]["epoch"], 4)
        self.assertEqual(p["checkpoint"]["metric"], 0.75)
        self.assertEqual(p["init_digest"], "a" * 64)
        self.assertEqual(p["created"], "2023-11-14T22:13:20Z")
        for name, digest in card["files"].items():
            self.assertEqual(sha256(os.path.join(out, name)), digest, name)

    def test_refuses_claims_and_mismatches(self):
        with self.assertRaises(ValueError):
            build_package(self.ckpt, self.plan, os.path.join(self.dir, "x"), {"provenance": {}})
        bad_plan = os.path.join(self.dir, "bad_plan.json")
        with open(bad_plan, "w") as f:
            json.dump({**PLAN, "dataset": {**PLAN["dataset"], "labels": {"0": "bg", "1": "a", "2": "b"}}}, f)
        with self.assertRaises(ValueError):
            build_package(self.ckpt, bad_plan, os.path.join(self.dir, "y"))
        # Value k is class k: labels 0 and 2 need three outputs, although they are two labels.
        with open(bad_plan, "w") as f:
            json.dump({**PLAN, "dataset": {**PLAN["dataset"], "labels": {"0": "bg", "2": "b"}}}, f)
        with self.assertRaisesRegex(ValueError, r"labels \[0, 2\] need 3 outputs, the network has 2"):
            build_package(self.ckpt, bad_plan, os.path.join(self.dir, "z"))

    def test_cli(self):
        out = os.path.join(self.dir, "cli")
        card_json = os.path.join(self.dir, "card.json")
        with open(card_json, "w") as f:
            json.dump({"metrics": None, "note": "final model"}, f)
        env = {**os.environ, "PYTHONPATH": PY_ROOT, "PYTHONDONTWRITEBYTECODE": "1"}
        run = subprocess.run([sys.executable, "-m", "medpipe.package", "--checkpoint", self.ckpt, "--plan",
                              self.plan, "--output-dir", out, "--card-json", card_json],
                             capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(json.loads(run.stdout.splitlines()[-1])["event"], "package")
        with open(os.path.join(out, "model_card.json")) as f:
            self.assertEqual(json.load(f)["note"], "final model")
        run = subprocess.run([sys.executable, "-m", "medpipe.package", "--checkpoint", self.plan, "--plan",
                              self.plan, "--output-dir", os.path.join(self.dir, "cli2")],
                             capture_output=True, text=True, env=env, timeout=60)
        self.assertEqual(run.returncode, 1)
        self.assertEqual(len(run.stderr.strip().splitlines()), 1)

    @unittest.skipUnless(HAVE_ORT, "onnxruntime not installed")
    def test_onnxruntime_matches_the_checkpoint(self):
        import onnxruntime as ort
        import torch

        out = os.path.join(self.dir, "ort")
        build_package(self.ckpt, self.plan, out)
        x = torch.randn(1, 1, 16, 12, 8)
        sess = ort.InferenceSession(os.path.join(out, "model.onnx"), providers=["CPUExecutionProvider"])
        (y,) = sess.run(None, {"image": x.numpy()})
        with torch.no_grad():
            self.assertTrue(torch.allclose(torch.from_numpy(y), self.model.eval()(x), atol=1e-4))


if __name__ == "__main__":
    unittest.main()
