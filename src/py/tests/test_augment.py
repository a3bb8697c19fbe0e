"""Augmentations against numpy: flips exactly, gamma by its formula, blur by an
explicit numpy convolution, the bias field as an exponentiated polynomial; affine
identity is a no-op, a 90-degree rotation is an exact permutation that moves image
and label together, and labels never gain values."""

import itertools
import math
import unittest

import numpy as np
import torch

from medpipe.augment import Augmenter, transform_specs


def fixed(aug, value_of):
    """Makes every parameter draw of `aug` return value_of(lo, hi)."""
    aug.uniform = lambda n, lo, hi, device: torch.full((n,), float(value_of(lo, hi)), device=device)
    return aug


def batch(shape, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(shape, generator=g)
    label = torch.randint(0, classes, (shape[0],) + tuple(shape[2:]), generator=g, dtype=torch.uint8)
    return image, label


class FlipTest(unittest.TestCase):
    def test_flip_is_exact_and_keeps_image_and_label_together(self):
        for shape in [(16, 2, 5, 4, 3), (16, 1, 6, 5)]:
            image, label = batch(shape)
            d = len(shape) - 2
            out_i, out_l = Augmenter([{"name": "flip", "axes": list(range(d)), "p": 0.5}], seed=3)(image, label)
            seen = set()
            for b in range(shape[0]):
                x, y = image[b].numpy(), label[b].numpy()
                matches = [s for r in range(d + 1) for s in itertools.combinations(range(d), r)
                           if np.array_equal(out_i[b].numpy(), np.flip(x, [1 + a for a in s]))]
                self.assertEqual(len(matches), 1, "each sample is flipped on exactly one subset of axes")
                np.testing.assert_array_equal(out_l[b].numpy(), np.flip(y, list(matches[0])))
                seen.add(matches[0])
            self.assertGreater(len(seen), 2)  # several subsets occur in 16 samples

    def test_flip_all_with_p1_and_none_with_p0(self):
        image, label = batch((2, 1, 4, 3, 5))
        out_i, out_l = Augmenter([{"name": "flip", "axes": [0, 2], "p": 1.0}])(image, label)
        np.testing.assert_array_equal(out_i.numpy(), np.flip(image.numpy(), [2, 4]))
        np.testing.assert_array_equal(out_l.numpy(), np.flip(label.numpy(), [1, 3]))
        out_i, out_l = Augmenter([{"name": "flip", "p": 0.0}])(image, label)
        self.assertTrue(torch.equal(out_i, image) and torch.equal(out_l, label))


class AffineTest(unittest.TestCase):
    def test_identity_parameters_are_a_no_op(self):
        for shape in [(3, 2, 7, 9, 6), (3, 1, 8, 5)]:
            image, label = batch(shape)
            out_i, out_l = Augmenter([{"name": "affine", "rotate": 0.0, "scale": 0.0, "translate": 0.0,
                                       "p": 1.0}])(image, label)
            np.testing.assert_allclose(out_i.numpy(), image.numpy(), atol=1e-5)
            self.assertTrue(torch.equal(out_l, label))

    def test_quarter_turn_is_an_exact_permutation(self):
        # 90 degrees in the (x, y) plane of a 5 x 5 x 3 patch: out[x, y] = in[y, 4 - x]
        # (the sampling map input = R output about the centre); z untouched.
        image = torch.arange(2 * 75, dtype=torch.float32).view(2, 1, 5, 5, 3)
        label = (torch.arange(2 * 75).view(2, 5, 5, 3) % 4).to(torch.uint8)
        aug = fixed(Augmenter([{"name": "affine", "rotate": [0.0, 0.0, math.pi / 2], "p": 1.0}]),
                    lambda lo, hi: hi)
        out_i, out_l = aug(image, label)
        expected = np.rot90(image.numpy(), k=-1, axes=(2, 3))
        np.testing.assert_allclose(out_i.numpy(), expected, atol=1e-3)
        np.testing.assert_array_equal(out_l.numpy(), np.rot90(label.numpy(), k=-1, axes=(1, 2)))
        # The same in 2D.
        aug = fixed(Augmenter([{"name": "affine", "rotate": math.pi / 2, "p": 1.0}]), lambda lo, hi: hi)
        out_i, out_l = aug(image[:, :, :, :, 0], label[..., 0])
        np.testing.assert_allclose(out_i.numpy(), np.rot90(image[..., 0].numpy(), k=-1, axes=(2, 3)), atol=1e-3)

    def test_labels_stay_in_the_original_set_and_follow_the_image(self):
        spec = [{"name": "affine", "rotate": 0.5, "scale": 0.3, "translate": 0.2, "p": 1.0}]
        for shape in [(6, 1, 12, 10, 8), (6, 1, 12, 10)]:
            g = torch.Generator().manual_seed(1)
            label = torch.tensor([2, 5, 9], dtype=torch.uint8)[torch.randint(0, 3, (shape[0],) + shape[2:],
                                                                                 generator=g)]
            label[0] = 5  # a sample without background
            label[0][(slice(0, 4),) * (len(shape) - 2)] = 9
            out_i, out_l = Augmenter(spec, seed=4)(label[:, None].float(), label)
            for b in range(shape[0]):
                self.assertLessEqual(set(out_l[b].unique().tolist()), set(label[b].unique().tolist()))
            self.assertFalse(torch.equal(out_l, label))
        # Alignment: a blob as image and label; bilinear image and nearest label agree.
        grids = torch.meshgrid(*[torch.arange(n, dtype=torch.float32) for n in (16, 16, 16)], indexing="ij")
        blob = (sum((g - 7.5) ** 2 for g in grids) < 25).to(torch.uint8)[None].repeat(4, 1, 1, 1)
        out_i, out_l = Augmenter(spec, seed=5)(blob[:, None].float(), blob)
        agree = ((out_i[:, 0] > 0.5) == (out_l == 1)).float().mean()
        self.assertGreater(float(agree), 0.98)


class IntensityTest(unittest.TestCase):
    def test_gamma_formula(self):
        image, label = batch((2, 2, 5, 4, 3))
        image[1, 1] = 3.0  # a constant channel is left as it is
        out, _ = Augmenter([{"name": "gamma", "range": [1.3, 1.3], "p": 1.0}])(image, label)
        x = image.numpy().astype(np.float64)
        lo = x.min(axis=(2, 3, 4), keepdims=True)
        r = x.max(axis=(2, 3, 4), keepdims=True) - lo
        expected = np.where(r > 0, ((x - lo) / np.where(r > 0, r, 1)) ** 1.3 * r + lo, x)
        np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)
        self.assertTrue(torch.equal(out[1, 1], image[1, 1]))

    def test_blur_matches_a_numpy_convolution(self):
        for shape in [(2, 2, 9, 8, 7), (3, 1, 11, 6)]:
            image, label = batch(shape)
            sigma = 0.8
            out, _ = Augmenter([{"name": "blur", "sigma": [sigma, sigma], "p": 1.0}])(image, label)
            radius = math.ceil(3 * sigma)
            i = np.arange(-radius, radius + 1)
            k = np.exp(-(i**2) / (2 * sigma**2))
            k /= k.sum()
            x = image.numpy().astype(np.float64)
            for axis in range(2, x.ndim):
                width = [(0, 0)] * x.ndim
                width[axis] = (radius, radius)
                x = np.apply_along_axis(lambda v: np.convolve(v, k, mode="valid"), axis, np.pad(x, width, mode="edge"))
            np.testing.assert_allclose(out.numpy(), x, atol=1e-5)

    def test_bias_field_is_an_exponentiated_cubic(self):
        image = torch.ones(2, 2, 6, 5, 4) + torch.rand(2, 2, 6, 5, 4)
        label = torch.zeros(2, 6, 5, 4, dtype=torch.uint8)
        out, _ = Augmenter([{"name": "bias_field", "coeff": 0.3, "p": 1.0}], seed=2)(image, label)
        ratio = (out / image).numpy().astype(np.float64)
        np.testing.assert_allclose(ratio[:, 0], ratio[:, 1], rtol=1e-5)  # one field for all channels
        coords = np.meshgrid(*[(2 * np.arange(n) + 1) / n - 1 for n in (6, 5, 4)], indexing="ij")
        terms = [e for e in itertools.product(range(4), repeat=3) if sum(e) <= 3]
        self.assertEqual(len(terms), 20)
        basis = np.stack([(coords[0] ** a * coords[1] ** b * coords[2] ** c).ravel() for a, b, c in terms], 1)
        for b in range(2):
            logf = np.log(ratio[b, 0]).ravel()
            coef, *_ = np.linalg.lstsq(basis, logf, rcond=None)
            np.testing.assert_allclose(basis @ coef, logf, atol=1e-5)
            self.assertTrue(np.all(np.abs(coef) <= 0.3 + 1e-4))
            self.assertGreater(np.abs(coef).max(), 0.01)

    def test_noise_and_shift(self):
        image = torch.zeros(64, 1, 8, 8, 8)
        label = torch.zeros(64, 8, 8, 8, dtype=torch.uint8)
        out, _ = Augmenter([{"name": "noise", "std": [0.2, 0.2], "p": 1.0}])(image, label)
        self.assertAlmostEqual(float(out.std()), 0.2, delta=0.005)
        out, _ = Augmenter([{"name": "shift", "offset": [0.25, 0.25], "p": 1.0}])(image, label)
        self.assertTrue(torch.equal(out, torch.full_like(image, 0.25)))
        out, _ = Augmenter([{"name": "shift", "offset": 0.1, "p": 1.0}], seed=1)(image, label)
        per_sample = out.amax(dim=(1, 2, 3, 4))
        self.assertTrue(torch.equal(out, per_sample.view(-1, 1, 1, 1, 1).expand_as(out)))
        self.assertLessEqual(float(per_sample.abs().max()), 0.1)


class ProbabilityTest(unittest.TestCase):
    def test_per_sample_probability_and_determinism(self):
        image, label = batch((400, 1, 3, 3, 3))
        spec = [{"name": "shift", "offset": [1.0, 1.0], "p": 0.3}, {"name": "noise", "std": 0.1, "p": 0.5}]
        out1, _ = Augmenter(spec[:1], seed=9)(image, label)
        changed = int((out1 != image).flatten(1).any(1).sum())
        self.assertLessEqual(abs(changed / 400 - 0.3), 4.5 * math.sqrt(0.3 * 0.7 / 400))
        a, _ = Augmenter(spec, seed=9)(image, label)
        b, _ = Augmenter(spec, seed=9)(image, label)
        c, _ = Augmenter(spec, seed=10)(image, label)
        self.assertTrue(torch.equal(a, b))
        self.assertFalse(torch.equal(a, c))

    def test_every_transform_runs_in_2d_and_3d(self):
        spec = [{"name": "flip", "p": 0.5}, {"name": "affine", "rotate": 0.26, "scale": 0.1, "p": 0.5},
                {"name": "gamma", "p": 0.5}, {"name": "noise", "p": 0.5}, {"name": "blur", "p": 0.5},
                {"name": "bias_field", "p": 0.5}, {"name": "shift", "p": 0.5}]
        for shape in [(4, 2, 8, 7, 6), (4, 1, 9, 8)]:
            image, label = batch(shape)
            before = image.clone(), label.clone()
            out_i, out_l = Augmenter(spec, seed=0)(image, label)
            self.assertTrue(torch.equal(image, before[0]) and torch.equal(label, before[1]))  # caller's batch kept
            self.assertFalse(torch.equal(out_i, image))
            self.assertEqual((out_i.shape, out_i.dtype, out_l.shape, out_l.dtype),
                             (image.shape, torch.float32, label.shape, torch.uint8))
            self.assertTrue(bool(torch.isfinite(out_i).all()))

    def test_bad_specs(self):
        with self.assertRaisesRegex(ValueError, "unknown augmentation"):
            transform_specs([{"name": "elastic"}])
        with self.assertRaisesRegex(ValueError, "unknown keys"):
            transform_specs([{"name": "flip", "prob": 0.5}])
        with self.assertRaisesRegex(ValueError, "out of range"):
            Augmenter([{"name": "flip", "axes": [2], "p": 1}])(*batch((1, 1, 4, 4)))


if __name__ == "__main__":
    unittest.main()
