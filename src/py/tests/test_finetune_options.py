"""The trainer's finetuning options: init_checkpoint (weights and digest taken from a file,
strict key/shape match), val_at_start (an epoch-0 validation that can stay best) and the
selection by raw validation Dice (ema 0). Tiny CPU runs; the digests are recomputed here
with hashlib from the raw tensor bytes, not with the code under test."""

import hashlib
import json
import os
import shutil
import tempfile
import unittest

import numpy as np
import torch

from medpipe.nets import build_network
from medpipe.safetensors_io import load_file, save_file
from medpipe.train import select_best, train

NET = {"channels": [4, 8], "strides": [2], "num_res_units": 0}


def oracle_digest(tensors):
    """sha256 over sorted "name\\tdigest\\n", each digest sha256("F32:shape\\n" + LE bytes)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        a = tensors[name].detach().cpu().numpy().astype("<f4")
        d = hashlib.sha256(f"F32:{','.join(str(s) for s in a.shape)}\n".encode() + a.tobytes(order="C"))
        h.update(f"{name}\t{d.hexdigest()}\n".encode())
    return h.hexdigest()


def cases(folder, n=3, size=16):
    rng = np.random.default_rng(1)
    out = []
    grid = np.stack(np.meshgrid(*[np.arange(size)] * 3, indexing="ij"), -1)
    for i in range(n):
        lab = (np.linalg.norm(grid - rng.uniform(5, 10, 3), axis=-1) <= 4).astype(np.uint8)
        img = (lab * 2.0 - 1.0 + rng.normal(0, 0.3, lab.shape)).astype(np.float32)
        ip, lp = os.path.join(folder, f"c{i}_img.npy"), os.path.join(folder, f"c{i}_lab.npy")
        np.save(ip, np.asfortranarray(img))
        np.save(lp, np.asfortranarray(lab))
        out.append({"id": f"c{i}", "image": ip, "label": lp})
    return out


class FinetuneOptions(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ft-opts-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.cases = cases(self.dir)
        net = build_network({**NET, "in_channels": 1, "out_channels": 2}, seed=7)
        self.pre = {k: v.detach().clone() for k, v in net.state_dict().items()}
        self.pre_path = os.path.join(self.dir, "pretrained.safetensors")
        save_file(self.pre, self.pre_path, metadata={"architecture": json.dumps(net.config)})

    def config(self, **over):
        c = {"network": {**NET, "in_channels": 1, "out_channels": 2}, "train_cases": self.cases[:2],
             "val_cases": self.cases[2:], "patch_size": [16, 16, 16], "batch_size": 2, "samples_per_volume": 1,
             "epochs": 2, "seed": 0, "device": "cpu", "init_checkpoint": self.pre_path}
        c.update(over)
        return c

    def run_train(self, **over):
        out = tempfile.mkdtemp(dir=self.dir)
        return out, train(self.config(**over), out, emit=lambda e: None)

    def test_lr_zero_keeps_the_pretrained_weights_and_epoch_0_stays_best(self):
        out, r = self.run_train(optimizer={"lr": 0.0}, val_at_start=True, ema=0.0)
        want = oracle_digest(self.pre)
        self.assertEqual(r["init_digest"], want)  # the pretrained weights, not the seed-0 init
        self.assertEqual(r["best_digest"], want)
        self.assertEqual(r["last_digest"], want)
        with open(os.path.join(out, "trace.json")) as f:
            trace = json.load(f)
        vals = trace["validations"]
        self.assertEqual([v["epoch"] for v in vals], [0, 1, 2])
        self.assertEqual(len({v["dice"] for v in vals}), 1)  # nothing moved: equal Dice every time
        self.assertEqual(r["best_epoch"], 0)  # first on ties: the start
        best, meta = load_file(os.path.join(out, "checkpoints", "best.safetensors"))
        self.assertEqual(meta["epoch"], "0")
        for k, t in self.pre.items():
            self.assertTrue(torch.equal(best[k], t), k)

    def test_without_val_at_start_there_is_no_epoch_0(self):
        out, r = self.run_train(optimizer={"lr": 1e-2}, ema=0.0)
        with open(os.path.join(out, "trace.json")) as f:
            vals = json.load(f)["validations"]
        self.assertEqual([v["epoch"] for v in vals], [1, 2])
        self.assertEqual(r["init_digest"], oracle_digest(self.pre))
        self.assertNotEqual(r["last_digest"], r["init_digest"])  # lr > 0: the weights moved

    def test_ema_zero_selects_the_raw_dice(self):
        # Raw [0.8, 0.1, 0.85]: EMA 0.9 gives [0.8, 0.73, 0.7415] and keeps index 0; EMA 0 is the
        # raw Dice and picks index 2.
        emas, i = select_best([0.8, 0.1, 0.85], 0.0)
        self.assertEqual(emas, [0.8, 0.1, 0.85])
        self.assertEqual(i, 2)
        self.assertEqual(select_best([0.8, 0.1, 0.85], 0.9)[1], 0)
        self.assertEqual(select_best([0.4, 0.4], 0.0)[1], 0)  # first on ties

    def test_a_shape_mismatch_names_the_tensor(self):
        bad = dict(self.pre)
        name = sorted(bad)[0]
        bad[name] = torch.zeros(*[s + 1 for s in bad[name].shape])
        path = os.path.join(self.dir, "bad.safetensors")
        save_file(bad, path)
        with self.assertRaisesRegex(ValueError, f"tensor '{name}' has shape"):
            self.run_train(init_checkpoint=path)

    def test_a_missing_tensor_is_named(self):
        bad = dict(self.pre)
        name = sorted(bad)[-1]
        del bad[name]
        path = os.path.join(self.dir, "missing.safetensors")
        save_file(bad, path)
        with self.assertRaisesRegex(ValueError, f"tensor '{name}' is missing from the file"):
            self.run_train(init_checkpoint=path)

    def test_val_at_start_needs_validation_cases(self):
        with self.assertRaisesRegex(ValueError, "val_at_start"):
            self.run_train(val_cases=[], val_at_start=True)


if __name__ == "__main__":
    unittest.main()
