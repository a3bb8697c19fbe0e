"""Sliding-window inference against hand-derived window positions, numpy weight
formulas, and a naive float64 re-implementation of the aggregation."""

import itertools
import math
import unittest

import numpy as np
import torch

from medpipe.sliding_window import (
    flip_subsets,
    importance_map,
    pad_widths,
    sliding_window_inference,
    window_grid,
    window_starts,
)


class PositionsTest(unittest.TestCase):
    def test_window_starts_by_hand(self):
        # size 10, patch 4, overlap 0.5: step 2, n = ceil(6/2)+1 = 4 -> 0 2 4 6 (6+4 = 10: ends at the border)
        self.assertEqual(window_starts(10, 4, 0.5), [0, 2, 4, 6])
        # size 11: n = ceil(7/2)+1 = 5 -> 0 2 4 6 8, the last clipped to 11-4 = 7
        self.assertEqual(window_starts(11, 4, 0.5), [0, 2, 4, 6, 7])
        # overlap 0: step 4, n = ceil(6/4)+1 = 3 -> 0 4 8 -> clipped 6
        self.assertEqual(window_starts(10, 4, 0.0), [0, 4, 6])
        # overlap 0.75: step 1 -> every start 0..6
        self.assertEqual(window_starts(10, 4, 0.75), list(range(7)))
        # step trunc(4 * 0.1) = 0 -> max(1, 0) = 1
        self.assertEqual(window_starts(5, 4, 0.9), [0, 1])
        # size <= patch: one window at 0 (after padding)
        self.assertEqual(window_starts(4, 4, 0.5), [0])
        self.assertEqual(window_starts(3, 4, 0.5), [0])
        # heart: 110 slices, patch 80, overlap 0.5: step 40, n = ceil(30/40)+1 = 2 -> 0, 30
        self.assertEqual(window_starts(110, 80, 0.5), [0, 30])
        # 320 voxels, patch 160: step 80, n = ceil(160/80)+1 = 3 -> 0 80 160
        self.assertEqual(window_starts(320, 160, 0.5), [0, 80, 160])
        # 7 voxels, patch 5, overlap 1/3: step trunc(5 * 2/3) = trunc(3.33) = 3, n = ceil(2/3)+1 = 2 -> 0, 2
        self.assertEqual(window_starts(7, 5, 1 / 3), [0, 2])
        with self.assertRaises(ValueError):
            window_starts(10, 4, 1.0)

    def test_grid_is_c_order_product(self):
        self.assertEqual(window_grid((5, 6), (4, 4), 0.5), [(0, 0), (0, 2), (1, 0), (1, 2)])

    def test_padding_is_symmetric_with_the_odd_voxel_at_the_end(self):
        self.assertEqual(pad_widths((3, 1, 5, 4), (4, 4, 4, 7)), [(0, 1), (1, 2), (0, 0), (1, 2)])


class WeightsTest(unittest.TestCase):
    def test_hann_is_numpy_hanning_without_its_zero_ends(self):
        for shape in [(4,), (5, 3), (6, 1, 2)]:
            expected = np.ones(())
            for n in shape:
                expected = np.multiply.outer(expected, np.hanning(n + 2)[1:-1])
            w = importance_map(shape, "hann")
            self.assertEqual(w.dtype, torch.float32)
            np.testing.assert_allclose(w.numpy(), expected, rtol=1e-6)
            self.assertGreater(float(w.min()), 0.0)
        # By hand, P = 3: sin^2(pi*k/4) for k = 1, 2, 3 = [1/2, 1, 1/2]
        np.testing.assert_allclose(importance_map((3,), "hann").numpy(), [0.5, 1.0, 0.5], atol=1e-7)

    def test_gaussian_by_hand(self):
        # P = 3: c = 1, sigma = 3/8, w = [exp(-1 / (2 * 9/64)), 1, same] = [exp(-32/9), 1, exp(-32/9)]
        e = math.exp(-32 / 9)  # 0.0286
        np.testing.assert_allclose(importance_map((3,), "gaussian").numpy(), [e, 1, e], rtol=1e-6)
        # In 2D the corners are exp(-64/9) = 0.00082 < 1e-3: raised to the 1e-3 floor.
        w2 = importance_map((3, 3), "gaussian").numpy()
        np.testing.assert_allclose(w2, [[1e-3, e, 1e-3], [e, 1, e], [1e-3, e, 1e-3]], rtol=1e-6)
        # P = 4: c = 1.5, sigma = 1/2: exp(-2 (i - 1.5)^2) = [e^-4.5, e^-0.5, e^-0.5, e^-4.5],
        # divided by the peak e^-0.5: [e^-4, 1, 1, e^-4].
        np.testing.assert_allclose(importance_map((4,), "gaussian").numpy(),
                                   [math.exp(-4), 1, 1, math.exp(-4)], rtol=1e-6)

    def test_gaussian_matches_a_numpy_formula(self):
        shape = (8, 5, 6)
        grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
        r2 = sum(((g - (n - 1) / 2) / (n / 8)) ** 2 for g, n in zip(grids, shape))
        expected = np.exp(-0.5 * r2)
        expected = np.clip(expected / expected.max(), 1e-3, None)
        np.testing.assert_allclose(importance_map(shape, "gaussian").numpy(), expected, rtol=1e-5)

    def test_constant(self):
        self.assertTrue(torch.equal(importance_map((2, 3), "constant"), torch.ones(2, 3)))

    def test_flip_subsets(self):
        self.assertEqual(flip_subsets(2), [[], [2], [3], [2, 3]])
        self.assertEqual(len(flip_subsets(3)), 8)


class PointwiseModel(torch.nn.Module):
    """Logits (v, -v, 0.5 v) per voxel: the answer does not depend on window positions."""

    def forward(self, x):
        v = x[:, :1]
        return torch.cat([v, -v, 0.5 * v], dim=1)


def pointwise_probs(volume):
    v = torch.as_tensor(volume)[:1].double()
    return torch.softmax(torch.cat([v, -v, 0.5 * v]), dim=0)


class ConvModel(torch.nn.Module):
    """A fixed, asymmetric 3x3 conv with zero padding: its output near a window's edge
    depends on where the window is, and it is not flip-equivariant."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 2, 3, padding=1)
        g = torch.Generator().manual_seed(3)
        with torch.no_grad():
            self.conv.weight.copy_(torch.randn(2, 1, 3, 3, generator=g))
            self.conv.bias.copy_(torch.randn(2, generator=g))

    def forward(self, x):
        return self.conv(x)


def naive(volume, model, patch, starts_per_axis, wmap, tta):
    """Float64 reference for a 2-D (1, H, W) volume that is at least patch-sized:
    every window start given explicitly, the weight map given explicitly."""
    _, h, wd = volume.shape
    acc = None
    norm = np.zeros((h, wd))
    for sy, sx in itertools.product(*starts_per_axis):
        crop = torch.from_numpy(volume[:, sy:sy + patch[0], sx:sx + patch[1]]).float()[None]
        flips = [[], [2], [3], [2, 3]] if tta else [[]]
        p = 0
        for f in flips:
            x = crop.flip(f) if f else crop
            with torch.no_grad():
                y = torch.softmax(model(x).double(), dim=1)
            p = p + (y.flip(f) if f else y)[0].numpy()
        p = p / len(flips)
        if acc is None:
            acc = np.zeros((p.shape[0], h, wd))
        acc[:, sy:sy + patch[0], sx:sx + patch[1]] += p * wmap
        norm[sy:sy + patch[0], sx:sx + patch[1]] += wmap
    return acc / norm


class InferenceTest(unittest.TestCase):
    def setUp(self):
        self.rng = np.random.default_rng(0)

    def test_pointwise_model_is_reproduced_everywhere(self):
        vol3 = self.rng.normal(size=(1, 5, 6, 7)).astype(np.float32)
        for mode in ("constant", "gaussian", "hann"):
            for tta in (False, True):
                out = sliding_window_inference(vol3, PointwiseModel(), (4, 4, 4), 0.5, mode, sw_batch_size=3, tta=tta)
                self.assertEqual(tuple(out.shape), (3, 5, 6, 7))
                self.assertEqual(out.dtype, torch.float32)
                np.testing.assert_allclose(out.numpy(), pointwise_probs(vol3).numpy(), atol=1e-6)
        # Smaller than the patch on two axes: padded, then cropped back.
        vol2 = self.rng.normal(size=(1, 3, 9)).astype(np.float32)
        out = sliding_window_inference(torch.from_numpy(vol2), PointwiseModel(), (4, 4), 0.25, "hann")
        self.assertEqual(tuple(out.shape), (3, 3, 9))
        np.testing.assert_allclose(out.numpy(), pointwise_probs(vol2).numpy(), atol=1e-6)

    def test_weighted_aggregation_matches_a_naive_reference(self):
        vol = self.rng.normal(size=(1, 10, 11))
        model = ConvModel().eval()
        starts = ([0, 2, 4, 6], [0, 2, 4, 6, 7])  # by hand, see PositionsTest
        hann = np.hanning(6)[1:-1]
        # Gaussian, P = 4: profile [e^-4, 1, 1, e^-4] (see WeightsTest); the four corners,
        # e^-8 = 0.00034, are raised to 1e-3.
        g = np.array([math.exp(-4), 1, 1, math.exp(-4)])
        maps = {
            "constant": np.ones((4, 4)),
            "hann": np.outer(hann, hann),
            "gaussian": np.maximum(np.outer(g, g), 1e-3),
        }
        for mode, wmap in maps.items():
            for tta in (False, True):
                expected = naive(vol, model, (4, 4), starts, wmap, tta)
                got = sliding_window_inference(vol.astype(np.float32), model, (4, 4), 0.5, mode,
                                               sw_batch_size=3, tta=tta)
                np.testing.assert_allclose(got.numpy(), expected, atol=2e-6, err_msg=f"{mode} tta={tta}")
        # The weights matter: constant and hann disagree near window edges.
        a = sliding_window_inference(vol.astype(np.float32), model, (4, 4), 0.5, "constant")
        b = sliding_window_inference(vol.astype(np.float32), model, (4, 4), 0.5, "hann")
        self.assertGreater(float((a - b).abs().max()), 1e-3)

    def test_batch_size_does_not_change_the_result(self):
        vol = torch.from_numpy(self.rng.normal(size=(1, 9, 13)).astype(np.float32))
        model = ConvModel().eval()
        ref = sliding_window_inference(vol, model, (4, 5), 0.5, "gaussian", sw_batch_size=1, tta=True)
        for bs in (2, 7, 100):
            out = sliding_window_inference(vol, model, (4, 5), 0.5, "gaussian", sw_batch_size=bs, tta=True)
            np.testing.assert_allclose(out.numpy(), ref.numpy(), atol=1e-6)
        np.testing.assert_allclose(ref.sum(0).numpy(), np.ones((9, 13)), atol=1e-5)

    def test_with_a_real_network(self):
        from medpipe.nets import build_network

        net = build_network({"spatial_dims": 3, "channels": [4, 8], "strides": [2]}, seed=0).eval()
        vol = torch.randn(1, 10, 9, 8, generator=torch.Generator().manual_seed(0))
        out = sliding_window_inference(vol, net, (8, 8, 8), 0.5, "hann", sw_batch_size=2, tta=True, device="cpu")
        self.assertEqual(tuple(out.shape), (2, 10, 9, 8))
        self.assertTrue(torch.isfinite(out).all())
        np.testing.assert_allclose(out.sum(0).numpy(), np.ones((10, 9, 8)), atol=1e-5)

    def test_errors(self):
        vol = torch.zeros(1, 4, 4)
        with self.assertRaisesRegex(ValueError, "axes"):
            sliding_window_inference(vol, PointwiseModel(), (4, 4, 4))
        with self.assertRaisesRegex(ValueError, "weighting"):
            sliding_window_inference(vol, PointwiseModel(), (4, 4), mode="triangle")


if __name__ == "__main__":
    unittest.main()
