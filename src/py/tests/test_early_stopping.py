"""Early stopping and the time budget in the training loop, on a tiny 2D task on the CPU. The validation Dice
is scripted (medpipe.train.validate, the whole-volume validation, replaced by a list of numbers) so that every stop
epoch, best epoch and counter below is derived by hand from the list; the network,
optimiser, checkpoints and records are the real ones. The scripted validate also
digests the weights it is shown, so the checkpoints can be matched to the epochs."""

import json
import os
import shutil
import tempfile
import unittest

import numpy as np

import medpipe.train as train_module
from medpipe.safetensors_io import digest_of_digests, digest_tensor, load_file, tensor_digests
from medpipe.train import train


def square_cases(folder, n, size=16):
    """n 2D cases: a bright square is label 1 on a noisy background."""
    rng = np.random.default_rng(0)
    cases = []
    for i in range(n):
        lab = np.zeros((size, size), np.uint8)
        x, y = rng.integers(2, size - 8, 2)
        lab[x:x + 6, y:y + 6] = 1
        img = (lab * 2.0 - 1.0 + rng.normal(0, 0.5, lab.shape)).astype(np.float32)
        ip, lp = os.path.join(folder, f"c{i}_img.npy"), os.path.join(folder, f"c{i}_lab.npy")
        np.save(ip, img)
        np.save(lp, lab)
        cases.append({"id": f"c{i}", "image": ip, "label": lp})
    return cases


class ScriptedValidation:
    """Stands in for medpipe.train.validate: returns the next scripted Dice and keeps the
    digest of the weights it was called with."""

    def __init__(self, dice):
        self.dice, self.digests = list(dice), []

    def __call__(self, model, cases, c, device, amp, loss_fn):
        self.digests.append(digest_of_digests({k: digest_tensor(t.detach())
                                               for k, t in model.state_dict().items()}))
        d = self.dice[len(self.digests) - 1]
        return d, [d], 1.0 - d


class EarlyStoppingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="medpipe-es-")
        cls.cases = square_cases(cls.dir, 3)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        self.real_validate = train_module.validate
        self.real_clock = train_module.budget_clock

    def tearDown(self):
        train_module.validate = self.real_validate
        train_module.budget_clock = self.real_clock

    def script_clock(self, step_s):
        """The budget clock reads 0 when the epoch loop starts, then step_s more at each reading
        (one per epoch end, plus one for the stop event)."""
        readings = iter(range(0, 10**6, step_s))
        train_module.budget_clock = lambda: float(next(readings))

    def run_train(self, name, dice, epochs, **over):
        scripted = ScriptedValidation(dice)
        train_module.validate = scripted
        cfg = {"network": {"spatial_dims": 2, "channels": [4, 8], "strides": [2], "num_res_units": 1},
               "train_cases": self.cases[:2], "val_cases": self.cases[2:], "patch_size": [16, 16],
               "batch_size": 2, "samples_per_volume": 1, "sampler": "uniform", "epochs": epochs,
               "optimizer": {"lr": 1e-2}, "schedule": {"name": "constant"}, "seed": 0, "device": "cpu",
               "validate_on": "volumes", **over}
        out = os.path.join(self.dir, name)
        events = []
        result = train(cfg, out, emit=events.append)
        with open(os.path.join(out, "trace.json")) as f:
            trace = json.load(f)
        return result, trace, events, scripted, out

    def checkpoint(self, out, kind):
        path = os.path.join(out, "checkpoints", f"{kind}.safetensors")
        return digest_of_digests(tensor_digests(path)), load_file(path)[1]

    def test_raw_dice_stops_after_patience_validations_without_a_new_best(self):
        # ema 0: the selection metric is the raw Dice. Validations every epoch:
        #   epoch  1    2    3    4    5    6 ...
        #   dice  .50  .60  .55  .60  .59  (never reached)
        # best .50 at 1, .60 at 2; 3, 4 (.60 is no improvement: strictly greater needed) and 5
        # make three without a new best: with patience 3 training stops after epoch 5.
        r, trace, events, scripted, out = self.run_train(
            "raw", [0.5, 0.6, 0.55, 0.6, 0.59, 0.9, 0.9], 7, ema=0.0, early_stopping={"patience": 3})
        self.assertEqual((r["stopped_early"], r["stop_epoch"], r["epochs_run"]), (True, 5, 5))
        self.assertEqual((r["best_epoch"], r["best_dice"], r["last_epoch"], r["last_dice"]), (2, 0.6, 5, 0.59))
        self.assertEqual(r["epochs"], 7)  # the configured count stays as configured
        self.assertEqual(len(scripted.digests), 5)
        self.assertEqual([e["epoch"] for e in trace["epochs"]], [1, 2, 3, 4, 5])
        self.assertEqual([v["dice"] for v in trace["validations"]], [0.5, 0.6, 0.55, 0.6, 0.59])
        self.assertEqual((trace["stopped_early"], trace["stop_epoch"]), (True, 5))
        self.assertEqual(trace["best"], {"epoch": 2, "dice": 0.6, "ema": 0.6})
        stop = [e for e in events if e["event"] == "early_stop"]
        self.assertEqual(stop, [{"event": "early_stop", "epoch": 5, "patience": 3, "best_epoch": 2}])
        self.assertEqual(events[-1]["event"], "done")
        # best holds the weights validated at epoch 2, last those of epoch 5.
        best_digest, best_meta = self.checkpoint(out, "best")
        last_digest, last_meta = self.checkpoint(out, "last")
        self.assertEqual(best_digest, scripted.digests[1])
        self.assertEqual(last_digest, scripted.digests[4])
        self.assertNotEqual(best_digest, last_digest)
        self.assertEqual((best_meta["epoch"], best_meta["metric"]), ("2", "0.6"))
        self.assertEqual((last_meta["epoch"], last_meta["metric"]), ("5", "0.59"))
        self.assertEqual((r["best_digest"], r["last_digest"]), (best_digest, last_digest))

    def test_counts_validations_not_epochs(self):
        # val_every 3, patience 2: validations at epochs 3, 6, 9, 12; dice .4, .3, .3, .9.
        # .4 is the best at 3; 6 and 9 make two without a new best: stop after epoch 9.
        r, trace, _, scripted, _ = self.run_train(
            "every3", [0.4, 0.3, 0.3, 0.9], 12, ema=0.0, val_every=3, early_stopping={"patience": 2})
        self.assertEqual((r["stopped_early"], r["stop_epoch"], r["best_epoch"], r["last_epoch"]), (True, 9, 3, 9))
        self.assertEqual([v["epoch"] for v in trace["validations"]], [3, 6, 9])
        self.assertEqual(len(trace["epochs"]), 9)

    def test_the_selection_metric_is_the_ema(self):
        # ema 0.5 on dice .2, .8, .7, .7, .7: EMA .2, .5, .6, .65, .675 rises every time although
        # the raw Dice never beats .8 again, so patience 2 never stops; with ema 0 the raw
        # Dice would stop at epoch 4 (3 and 4 below .8).
        dice = [0.2, 0.8, 0.7, 0.7, 0.7]
        r, trace, _, _, _ = self.run_train("ema", dice, 5, ema=0.5, early_stopping={"patience": 2})
        self.assertEqual((r["stopped_early"], r["stop_epoch"], r["best_epoch"], r["epochs_run"]), (False, None, 5, 5))
        self.assertAlmostEqual(r["best_ema"], 0.675, places=12)
        self.assertEqual(trace["stopped_early"], False)
        r, _, _, _, _ = self.run_train("ema0", dice, 5, ema=0.0, early_stopping={"patience": 2})
        self.assertEqual((r["stopped_early"], r["stop_epoch"], r["best_epoch"]), (True, 4, 2))

    def test_no_stop_on_the_last_epoch_and_off_by_default(self):
        # patience 1 reached exactly at the last epoch: every epoch ran, nothing stopped.
        r, _, events, _, _ = self.run_train("last", [0.5, 0.4], 2, ema=0.0, early_stopping={"patience": 1})
        self.assertEqual((r["stopped_early"], r["stop_epoch"], r["epochs_run"]), (False, None, 2))
        self.assertFalse([e for e in events if e["event"] == "early_stop"])
        r, _, _, _, _ = self.run_train("off", [0.5, 0.4, 0.3, 0.2], 4, ema=0.0)
        self.assertEqual((r["stopped_early"], r["epochs_run"], r["best_epoch"]), (False, 4, 1))

    def test_nominal_validation_never_stops(self):
        # The final model's nominal validation selects nothing, so it cannot stop training.
        r, _, _, _, _ = self.run_train("nominal", [0.5, 0.4, 0.3], 3, ema=0.0, early_stopping={"patience": 1},
                                       nominal_validation=True)
        self.assertEqual((r["stopped_early"], r["epochs_run"], r["selection"]),
                         (False, 3, "last (nominal validation)"))

    def test_time_limit_stops_after_the_epoch_that_ends_past_it_validating_it(self):
        # The clock reads 10 s more at each epoch's end: 10, 20, 30. With a 25 s budget epoch 3
        # ends past it. Validations are due at 2, 4, 6 (val_every 2), so epoch 3 is validated
        # because the run stops there: dice .5 at 2, .7 at 3; best 3, last 3.
        self.script_clock(10)
        r, trace, events, scripted, out = self.run_train(
            "budget", [0.5, 0.7], 6, ema=0.0, val_every=2, time_limit_s=25)
        self.assertEqual((r["stopped_early"], r["stop_epoch"], r["stop_reason"], r["epochs_run"]),
                         (True, 3, "time_limit", 3))
        self.assertEqual(r["time_limit_s"], 25.0)
        self.assertEqual([v["epoch"] for v in trace["validations"]], [2, 3])
        self.assertEqual((trace["stop_reason"], len(trace["epochs"])), ("time_limit", 3))
        self.assertEqual((r["best_epoch"], r["best_dice"], r["last_epoch"]), (3, 0.7, 3))
        stop = [e for e in events if e["event"] == "time_limit"]
        self.assertEqual(stop, [{"event": "time_limit", "epoch": 3, "time_limit_s": 25.0, "seconds": 40.0}])
        self.assertEqual(self.checkpoint(out, "best")[0], scripted.digests[1])
        self.assertEqual(self.checkpoint(out, "last")[0], scripted.digests[1])

    def test_time_limit_reached_at_the_last_epoch_stops_nothing(self):
        # 10, 20, 30 against 30 s: only the last epoch (3) ends at the budget, and it runs anyway.
        self.script_clock(10)
        r, trace, events, _, _ = self.run_train("budget-last", [0.5, 0.6, 0.7], 3, ema=0.0, time_limit_s=30)
        self.assertEqual((r["stopped_early"], r["stop_reason"], r["epochs_run"]), (False, None, 3))
        self.assertFalse([e for e in events if e["event"] == "time_limit"])

    def test_patience_wins_when_both_rules_fire_on_one_epoch(self):
        # dice .5, .4 with patience 1 stops after epoch 2, where the 15 s budget also runs out.
        self.script_clock(10)
        r, _, _, _, _ = self.run_train("both", [0.5, 0.4, 0.3], 3, ema=0.0, early_stopping={"patience": 1},
                                       time_limit_s=15)
        self.assertEqual((r["stop_epoch"], r["stop_reason"]), (2, "patience"))

    def test_time_limit_without_validation_keeps_the_last_weights(self):
        self.script_clock(10)
        r, trace, _, scripted, _ = self.run_train("budget-noval", [], 5, time_limit_s=15, val_cases=[])
        self.assertEqual((r["stop_epoch"], r["stop_reason"], r["best_epoch"], r["selection"]),
                         (2, "time_limit", 2, "last (no validation)"))
        self.assertEqual((scripted.digests, trace["validations"]), ([], []))

    def test_bad_time_limits_are_refused(self):
        for bad in (0, -5, "60", True):
            with self.assertRaisesRegex(ValueError, "time_limit_s"):
                self.run_train("bad-budget", [0.5], 1, time_limit_s=bad)

    def test_bad_settings_are_refused(self):
        for bad in ({"patience": 0}, {"patience": 2, "min_delta": 0.1}, 5):
            with self.assertRaisesRegex(ValueError, "early_stopping"):
                self.run_train("bad", [0.5], 1, early_stopping=bad)


if __name__ == "__main__":
    unittest.main()
