"""Losses against values computed by hand on tiny tensors.

Item A: two classes, two voxels (1-D spatial axis). Logits per voxel:
    class 0: [0, 0]      class 1: [ln 3, 0]
softmax: p1 = [3/4, 1/2], p0 = [1/4, 1/2]. Target classes [1, 0]: g1 = [1, 0], g0 = [0, 1].

  foreground (class 1): I = 3/4*1 + 1/2*0 = 3/4,  D = (3/4 + 1/2) + 1 = 9/4
                        loss1 = 1 - (2*3/4 + s) / (9/4 + s)
  background (class 0): I = 1/4*0 + 1/2*1 = 1/2,  D = (1/4 + 1/2) + 1 = 7/4
                        loss0 = 1 - (1 + s) / (7/4 + s)
  cross-entropy: mean(-ln 3/4, -ln 1/2) = (ln 4/3 + ln 2) / 2 = ln(8/3) / 2

Item B: logits all 0 (p1 = [1/2, 1/2]), target [0, 0] (no foreground).
  foreground alone: I = 0, D = 1 + 0 = 1, loss = 1 - s / (1 + s)
  batch Dice over A and B (foreground): I = 3/4, D = 9/4 + 1 = 13/4,
                        loss = 1 - (3/2 + s) / (13/4 + s)
with s = 1e-5 (smooth_nr = smooth_dr).
"""

import math
import unittest

import torch

from medpipe.losses import build_loss, cross_entropy, dice_ce_loss, dice_loss, one_hot

S = 1e-5
LN3 = math.log(3.0)
A_LOGITS = [[0.0, 0.0], [LN3, 0.0]]
A_TARGET = [1, 0]
B_LOGITS = [[0.0, 0.0], [0.0, 0.0]]
B_TARGET = [0, 0]

A_FG = 1 - (1.5 + S) / (2.25 + S)
A_BG = 1 - (1.0 + S) / (1.75 + S)
B_FG = 1 - S / (1.0 + S)
AB_BATCH_FG = 1 - (1.5 + S) / (3.25 + S)
A_CE = math.log(8.0 / 3.0) / 2


def t(logits, target):
    return torch.tensor(logits, dtype=torch.float64).unsqueeze(0), torch.tensor(target).unsqueeze(0)


class LossTest(unittest.TestCase):
    def close(self, a, b, tol=1e-6):
        self.assertAlmostEqual(float(a), b, delta=tol)

    def test_one_hot(self):
        oh = one_hot(torch.tensor([[2, 0, 1]]), 3)
        self.assertEqual(oh.tolist(), [[[0, 1, 0], [0, 0, 1], [1, 0, 0]]])

    def test_dice_single_item(self):
        x, y = t(A_LOGITS, A_TARGET)
        self.close(dice_loss(x, y, include_background=False), A_FG)
        self.close(dice_loss(x, y, include_background=True), (A_FG + A_BG) / 2)
        # A channel axis on the target gives the same.
        self.close(dice_loss(x, y.unsqueeze(1), include_background=False), A_FG)

    def test_batch_dice_sums_before_the_ratio(self):
        xa, ya = t(A_LOGITS, A_TARGET)
        xb, yb = t(B_LOGITS, B_TARGET)
        x, y = torch.cat([xa, xb]), torch.cat([ya, yb])
        self.close(dice_loss(x, y, include_background=False, batch=False), (A_FG + B_FG) / 2)
        self.close(dice_loss(x, y, include_background=False, batch=True), AB_BATCH_FG)

    def test_empty_class_predicted_empty_costs_nothing(self):
        x = torch.tensor([[[10.0, 10.0, 10.0], [-10.0, -10.0, -10.0]]])
        y = torch.zeros(1, 3, dtype=torch.long)
        self.assertLess(float(dice_loss(x, y, include_background=False)), 1e-3)

    def test_cross_entropy_and_dice_ce(self):
        x, y = t(A_LOGITS, A_TARGET)
        self.close(cross_entropy(x, y), A_CE)
        self.close(dice_ce_loss(x, y, 0.8, 0.2, include_background=False), 0.8 * A_FG + 0.2 * A_CE)
        # The reference configuration: background excluded, batch Dice, weights 1 and 1.
        xb, yb = t(B_LOGITS, B_TARGET)
        xx, yy = torch.cat([x, xb]), torch.cat([y, yb])
        ce_ab = (math.log(4 / 3) + math.log(2) + 2 * math.log(2)) / 4  # B: -ln(1/2) twice
        self.close(build_loss()(xx, yy), AB_BATCH_FG + ce_ab)
        self.close(build_loss({"name": "dice", "batch": False})(xx, yy), (A_FG + B_FG) / 2)
        self.close(build_loss({"name": "ce"})(xx, yy), ce_ab)
        with self.assertRaisesRegex(ValueError, "unknown keys"):
            build_loss({"lambda": 1})

    def test_3d_gradients_are_finite(self):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(2, 3, 4, 4, 4, generator=g, requires_grad=True)
        y = torch.randint(0, 3, (2, 1, 4, 4, 4), generator=g)
        loss = build_loss()(x, y)
        loss.backward()
        self.assertTrue(torch.isfinite(loss))
        self.assertTrue(torch.isfinite(x.grad).all())
        self.assertEqual(loss.dtype, torch.float32)


if __name__ == "__main__":
    unittest.main()
