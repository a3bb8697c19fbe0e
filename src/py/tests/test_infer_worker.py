"""The torch backend's worker: one process answers request after request over stdin; each
answer is the sliding window computed directly with the same weights (float32, the layout of
the preprocessed data contract, checked with numpy's own flags); a bad request fails alone."""

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
from medpipe.safetensors_io import save_file
from medpipe.sliding_window import sliding_window_inference

PY_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NET = {"spatial_dims": 3, "in_channels": 1, "out_channels": 3, "channels": [4, 8], "strides": [2],
       "num_res_units": 1}
INFER = {"patch_size": [12, 12, 8], "overlap": 0.5, "mode": "gaussian", "sw_batch_size": 2, "tta": True}


class InferWorkerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="medpipe-infer-worker-")
        cls.model = build_network(NET, seed=5).eval()
        cls.weights = os.path.join(cls.tmp, "weights.safetensors")
        save_file({k: v.detach() for k, v in cls.model.state_dict().items()}, cls.weights,
                  metadata={"architecture": json.dumps(cls.model.config, sort_keys=True)})

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_worker(self, requests, weights=None):
        env = dict(os.environ, PYTHONPATH=PY_ROOT, PYTHONDONTWRITEBYTECODE="1")
        proc = subprocess.run(
            [sys.executable, "-m", "medpipe.infer_worker", "--weights", weights or self.weights,
             "--inference", json.dumps(INFER), "--device", "cpu", "--threads", "1"],
            input="".join(json.dumps(r) + "\n" for r in requests), capture_output=True, text=True,
            env=env, timeout=300)
        events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
        return proc, events

    def test_answers_every_request_and_survives_a_bad_one(self):
        rng = np.random.default_rng(1)
        shapes = [(20, 15, 11), (9, 10, 6)]  # the second is smaller than the patch: padded
        images = []
        for i, shape in enumerate(shapes):
            img = np.asfortranarray(rng.normal(0, 1, shape + (1,)).astype(np.float32))
            np.save(os.path.join(self.tmp, f"img{i}.npy"), img)
            images.append(img)
        np.save(os.path.join(self.tmp, "two.npy"), np.zeros((8, 8, 8, 2), np.float32, order="F"))
        requests = [
            {"id": "a", "image": os.path.join(self.tmp, "img0.npy"), "output": os.path.join(self.tmp, "a.npy")},
            {"id": "bad", "image": os.path.join(self.tmp, "two.npy"), "output": os.path.join(self.tmp, "x.npy")},
            {"id": "b", "image": os.path.join(self.tmp, "img1.npy"), "output": os.path.join(self.tmp, "b.npy")},
        ]
        proc, events = self.run_worker(requests)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual([e["event"] for e in events], ["ready", "case", "case_error", "case"])
        self.assertEqual(events[0]["device"], "cpu")
        self.assertEqual(events[0]["torch"], torch.__version__)
        self.assertEqual((events[0]["in_channels"], events[0]["out_channels"]), (1, 3))
        self.assertGreater(events[1]["peak_rss_mb"], 50)  # a process that imported torch
        self.assertIsNone(events[1]["peak_gpu_mb"])
        self.assertEqual(events[2]["id"], "bad")
        self.assertIn("2 image channel(s), the network takes 1", events[2]["message"])
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "x.npy")))
        for img, name, event in zip(images, ("a", "b"), (events[1], events[3])):
            out = np.load(os.path.join(self.tmp, f"{name}.npy"))
            self.assertEqual(out.dtype, np.float32)
            self.assertTrue(out.flags.f_contiguous)
            self.assertEqual(out.shape, img.shape[:3] + (3,))
            self.assertEqual(event["shape"], list(img.shape[:3]))
            with torch.no_grad():
                ref = sliding_window_inference(np.moveaxis(img, -1, 0), self.model, INFER["patch_size"],
                                               overlap=INFER["overlap"], mode=INFER["mode"], sw_batch_size=1,
                                               tta=True, device="cpu", amp=False).numpy()
            np.testing.assert_allclose(np.moveaxis(out, -1, 0), ref, atol=1e-6, rtol=0)

    def test_weights_without_architecture_fail_with_one_line(self):
        bad = os.path.join(self.tmp, "bad.safetensors")
        save_file({k: v.detach() for k, v in self.model.state_dict().items()}, bad, metadata={})
        proc, events = self.run_worker([], weights=bad)
        self.assertEqual(proc.returncode, 1)
        self.assertEqual([e["event"] for e in events], ["error"])
        self.assertIn("no 'architecture' metadata", events[0]["message"])
        self.assertEqual(len(proc.stderr.strip().splitlines()), 1)


if __name__ == "__main__":
    unittest.main()
