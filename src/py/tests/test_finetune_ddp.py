"""Data-parallel training under torchrun on the CPU: two processes, the gloo backend, the
code path NPROC_PER_NODE >= 2 takes on GPUs (there with nccl). Checks what must hold whatever
the numbers: one rank reports and writes, both ranks' patches reach the weights, the weights
stay those of the init checkpoint at learning rate 0 (digest recomputed with hashlib)."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

from medpipe.nets import build_network
from medpipe.safetensors_io import save_file
from tests.test_finetune_options import NET, cases, oracle_digest

PY_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# torchrun's default --redirects 0 fails on torch 1.13 with Python 3.11 (Std("0") is not found
# among the IntFlag members); workers' stderr goes to a log file and is teed to ours instead.
TORCHRUN_IO = ["--redirects", "2", "--tee", "2"]


class DataParallel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="ft-ddp-")
        cls.addClassCleanup(shutil.rmtree, cls.dir, True)
        cls.cases = cases(cls.dir)
        net = build_network({**NET, "in_channels": 1, "out_channels": 2}, seed=7)
        cls.pre = {k: v.detach().clone() for k, v in net.state_dict().items()}
        cls.pre_path = os.path.join(cls.dir, "pretrained.safetensors")
        save_file(cls.pre, cls.pre_path, metadata={"architecture": json.dumps(net.config)})

    def run_train(self, name, nproc, **over):
        c = {"network": {**NET, "in_channels": 1, "out_channels": 2}, "train_cases": self.cases[:2],
             "val_cases": self.cases[2:], "patch_size": [16, 16, 16], "batch_size": 2, "samples_per_volume": 2,
             "epochs": 2, "seed": 0, "device": "cpu", "init_checkpoint": self.pre_path, "val_at_start": True,
             "optimizer": {"lr": 1e-2}}
        c.update(over)
        out = os.path.join(self.dir, name)
        os.makedirs(out)
        path = os.path.join(self.dir, f"{name}.json")
        with open(path, "w") as f:
            json.dump(c, f)
        launch = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *TORCHRUN_IO,
                   "--log_dir", os.path.join(self.dir, f"{name}-logs")]
                  if nproc > 1 else [sys.executable])
        env = {**os.environ, "PYTHONPATH": PY_ROOT, "OMP_NUM_THREADS": "1"}
        run = subprocess.run([*launch, "-m", "medpipe.train", "--config", path, "--output-dir", out],
                             capture_output=True, text=True, env=env, timeout=120)
        self.assertEqual(run.returncode, 0, run.stderr[-2000:])
        with open(os.path.join(out, "result.json")) as f:
            result = json.load(f)
        events = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
        return out, result, events

    def test_two_ranks_one_report_and_both_ranks_train(self):
        out, r2, events = self.run_train("ddp", 2)
        self.assertEqual((r2["status"], r2["world_size"]), ("ok", 2))
        self.assertEqual([e["event"] for e in events].count("start"), 1)  # rank 1 is silent
        self.assertEqual(sorted(os.listdir(out)), ["checkpoints", "result.json", "trace.json"])
        self.assertEqual(r2["init_digest"], oracle_digest(self.pre))
        self.assertNotEqual(r2["last_digest"], r2["init_digest"])
        # Rank 1 draws other patches (seed offset): its gradients change the result, so the
        # two-rank weights differ from one process with the same config and seed.
        _, r1, _ = self.run_train("single", 1)
        self.assertEqual(r1["world_size"], 1)
        self.assertNotEqual(r1["last_digest"], r2["last_digest"])

    def test_lr_zero_keeps_the_init_weights_on_every_rank(self):
        _, r, _ = self.run_train("ddp-lr0", 2, optimizer={"lr": 0.0}, ema=0.0)
        want = oracle_digest(self.pre)
        self.assertEqual((r["best_digest"], r["last_digest"], r["best_epoch"]), (want, want, 0))

    def test_a_time_budget_stops_every_rank_after_the_same_epoch(self):
        # Rank 0's clock decides and is broadcast: a rank going on alone would wait forever in the
        # next epoch's gradient all-reduce (the 120 s subprocess timeout would fail the test).
        _, r, events = self.run_train("ddp-budget", 2, epochs=4, time_limit_s=1e-6)
        self.assertEqual((r["status"], r["stop_reason"], r["stop_epoch"], r["epochs_run"]),
                         ("ok", "time_limit", 1, 1))
        self.assertEqual([e["epoch"] for e in events if e["event"] == "time_limit"], [1])


if __name__ == "__main__":
    unittest.main()
