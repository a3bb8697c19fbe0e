"""Case loading (the .npy convention of src/imaging/README.md) and the patch sampler:
class frequencies against binomial bounds, border clamping and zero padding derived
by hand, determinism."""

import math
import os
import shutil
import tempfile
import unittest

import numpy as np
import torch

from medpipe.data import GPU_DATA_FRACTION, PatchSampler, class_probabilities, fits_on_gpu, load_cases, to_case_arrays


def binomial_ok(count, n, p, z=4.5):
    """|count/n - p| within z standard deviations (z = 4.5: a false alarm ~1e-5)."""
    return abs(count / n - p) <= z * math.sqrt(max(p * (1 - p), 1e-12) / n) + 1e-12


class TempDir(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="medpipe-data-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def save_case(self, name, image, label):
        ip, lp = os.path.join(self.dir, f"{name}_image.npy"), os.path.join(self.dir, f"{name}_label.npy")
        np.save(ip, np.asfortranarray(image))
        np.save(lp, np.asfortranarray(label))
        return {"id": name, "image": ip, "label": lp}


class LoadTest(TempDir):
    def test_fortran_arrays_keep_voxel_order_channel_first(self):
        rng = np.random.default_rng(0)
        img = rng.normal(size=(4, 5, 6)).astype(np.float32)
        lab = rng.integers(0, 3, size=(4, 5, 6)).astype(np.uint8)
        cases, device = load_cases([self.save_case("a", img, lab)], 3, 3)
        self.assertEqual(device.type, "cpu")
        c = cases[0]
        self.assertEqual(tuple(c.image.shape), (1, 4, 5, 6))
        self.assertTrue(c.image.is_contiguous() and c.label.is_contiguous())
        np.testing.assert_array_equal(c.image[0].numpy(), img)  # [x, y, z] is voxel (x, y, z)
        np.testing.assert_array_equal(c.label.numpy(), lab)
        self.assertEqual(c.label.dtype, torch.uint8)
        for k in range(3):  # class index lists: C-order flat indices of each class
            np.testing.assert_array_equal(c.class_index[k].numpy(), np.flatnonzero(lab.reshape(-1) == k))

    def test_channels_last_float16_and_2d_slices(self):
        img = np.arange(4 * 5 * 6 * 2, dtype=np.float16).reshape(4, 5, 6, 2)
        lab = np.zeros((4, 5, 6), np.uint8)
        image, label = to_case_arrays(np.asfortranarray(img), lab, 3)
        self.assertEqual(image.dtype, np.float16)
        self.assertEqual(image.shape, (2, 4, 5, 6))
        np.testing.assert_array_equal(image[1], img[..., 1])
        # 2D: (nx, ny, 1) label and image, the slice axis dropped; float64 narrowed.
        image, label = to_case_arrays(np.ones((7, 8, 1)), np.ones((7, 8, 1), np.int64), 2)
        self.assertEqual((image.shape, image.dtype, label.shape, label.dtype),
                         ((1, 7, 8), np.float32, (7, 8), np.uint8))

    def test_errors_are_clear(self):
        with self.assertRaisesRegex(ValueError, "does not start with the label shape"):
            to_case_arrays(np.zeros((4, 5, 6)), np.zeros((4, 5, 7), np.uint8), 3, "x")
        with self.assertRaisesRegex(ValueError, "label value 2 but the network has 2 classes"):
            load_cases([self.save_case("b", np.zeros((3, 3, 3), np.float32), np.full((3, 3, 3), 2, np.uint8))], 3, 2)
        with self.assertRaisesRegex(ValueError, "not an integer"):
            to_case_arrays(np.zeros((2, 2)), np.zeros((2, 2), np.float32), 2)

    def test_probabilities(self):
        self.assertEqual(class_probabilities(None, 2), [0.5, 0.5])
        self.assertEqual(class_probabilities(None, 3), [0.5, 0.25, 0.25])
        self.assertEqual(class_probabilities({"1": 3, "2": 1}, 3), [0.0, 0.75, 0.25])
        with self.assertRaises(ValueError):
            class_probabilities([0.5], 2)


class PlacementTest(unittest.TestCase):
    def test_the_gpu_share_is_divided_among_the_stages_sharing_the_device(self):
        self.assertEqual(GPU_DATA_FRACTION, 0.4)
        free = 1000
        self.assertTrue(fits_on_gpu(400, free))  # 0.4 of it
        self.assertFalse(fits_on_gpu(401, free))
        # Six stages that start together each see the same 1000 free: 400 / 6 each.
        self.assertTrue(fits_on_gpu(66, free, sharing=6))
        self.assertFalse(fits_on_gpu(67, free, sharing=6))
        self.assertTrue(fits_on_gpu(400, free, sharing=0))  # not set: one stage


class SamplerTest(TempDir):
    def test_class_frequencies_match_the_probabilities(self):
        # Patch 1x1x1: the patch is its centre voxel, so its label is the drawn class.
        lab = np.zeros((10, 9, 8), np.uint8)
        lab[2:4, 3, 4] = 1  # 2 voxels of class 1
        lab[5:9, 1:4, 0:2] = 2  # 24 voxels of class 2
        cases, _ = load_cases([self.save_case("a", np.zeros(lab.shape, np.float32), lab)], 3, 3, [1, 1, 1])
        probs = [0.2, 0.3, 0.5]
        s = PatchSampler(cases, [1, 1, 1], samples_per_volume=4000, batch_size=1000, sampler="label",
                         probabilities=probs, seed=7, num_classes=3)
        plan = [d for batch in s.epoch_plan() for d in batch]
        self.assertEqual(len(plan), 4000)
        drawn = np.array([lab[start] for _, start in plan])
        for k, p in enumerate(probs):
            self.assertTrue(binomial_ok(int((drawn == k).sum()), len(drawn), p), (k, (drawn == k).mean(), p))
        # Within class 1, each of its two voxels is equally likely.
        ones = [start for _, start in plan if lab[start] == 1]
        self.assertTrue(binomial_ok(sum(1 for st in ones if st[0] == 2), len(ones), 0.5))

    def test_absent_class_falls_back_to_uniform(self):
        lab = np.zeros((6, 6, 6), np.uint8)
        lab[:3] = 1  # half the voxels are class 1, no class 2
        cases, _ = load_cases([self.save_case("a", np.zeros(lab.shape, np.float32), lab)], 3, 3, [1, 1, 1])
        s = PatchSampler(cases, [1, 1, 1], 3000, 1000, "label", {"2": 1.0}, seed=1, num_classes=3)
        drawn = np.array([lab[st] for batch in s.epoch_plan() for _, st in batch])
        self.assertTrue(binomial_ok(int((drawn == 1).sum()), len(drawn), 0.5))
        # The uniform sampler sees voxel fractions too.
        s = PatchSampler(cases, [1, 1, 1], 3000, 1000, "uniform", seed=2, num_classes=3)
        drawn = np.array([lab[st] for batch in s.epoch_plan() for _, st in batch])
        self.assertTrue(binomial_ok(int((drawn == 1).sum()), len(drawn), 0.5))

    def test_uniform_starts_cover_every_valid_position(self):
        cases, _ = load_cases([self.save_case("a", np.zeros((5, 6, 4), np.float32), np.zeros((5, 6, 4), np.uint8))],
                              3, 2, [3, 6, 2])
        s = PatchSampler(cases, [3, 6, 2], 600, 600, "uniform", seed=3)
        starts = {st for batch in s.epoch_plan() for _, st in batch}
        self.assertEqual(starts, {(x, 0, z) for x in range(3) for z in range(3)})

    def test_only_possible_centres_and_zero_padding_by_hand(self):
        # 3 x 20 x 20 case, patch (6, 8, 8). Axis 0: 3 < 6, padded (6-3)//2 = 1 before and 2
        # after, so the one possible centre is padded row 3 (data row 2): start 0, data at patch
        # rows 1..3. Axes 1 and 2: centres 4..16 (start = centre - 4 in 0..12).
        # Foreground voxel A (2, 16, 10) can be a centre: start (0, 12, 6). Voxel B (2, 19, 10)
        # cannot (19 - 4 + 8 > 20): TorchIO's LabelSampler never centres a patch there.
        img = np.arange(3 * 20 * 20, dtype=np.float32).reshape(3, 20, 20) + 1.0  # no zeros
        lab = np.zeros((3, 20, 20), np.uint8)
        lab[2, 16, 10] = lab[2, 19, 10] = 1
        cases, _ = load_cases([self.save_case("a", img, lab)], 3, 2, [6, 8, 8])
        self.assertEqual(tuple(cases[0].label.shape), (6, 20, 20))  # the cut below shows where the padding went
        self.assertEqual(cases[0].class_count, [6 * 20 * 20 - 2, 2])  # padding counts as background
        s = PatchSampler(cases, [6, 8, 8], 4, 2, "label", [0.0, 1.0], seed=0)
        plan = s.epoch_plan()
        self.assertEqual([st for batch in plan for _, st in batch], [(0, 12, 6)] * 4)
        image, label = s.cut(plan[0], "cpu")
        self.assertEqual((tuple(image.shape), image.dtype, tuple(label.shape), label.dtype),
                         ((2, 1, 6, 8, 8), torch.float32, (2, 6, 8, 8), torch.uint8))
        expected = np.zeros((6, 8, 8), np.float32)
        expected[1:4] = img[:, 12:20, 6:14]
        np.testing.assert_array_equal(image[0, 0].numpy(), expected)
        expected_lab = np.zeros((6, 8, 8), np.uint8)
        expected_lab[3, 4, 4] = expected_lab[3, 7, 4] = 1  # A and B at (2 + 1, y - 12, 10 - 6)
        np.testing.assert_array_equal(label[0].numpy(), expected_lab)

        # A class with no possible centre: the draw falls back to uniform starts.
        lab = np.zeros((10, 10, 10), np.uint8)
        lab[0, 0, 9] = 1
        cases, _ = load_cases([self.save_case("b", np.zeros(lab.shape, np.float32), lab)], 3, 2, [4, 4, 4])
        s = PatchSampler(cases, [4, 4, 4], 200, 200, "label", [0.0, 1.0], seed=0)
        self.assertGreater(len({st for batch in s.epoch_plan() for _, st in batch}), 100)

    def test_class_shares_follow_the_possible_centres(self):
        # 10^3 case, patch 4^3: possible centres 2..8 per axis, 7^3 = 343 voxels. Class 1 a
        # 2^3 cube at 4..5 (all 8 possible centres); background 992 voxels, 335 of them possible.
        # Weights 0.5 * 335 / 992 and 0.5 * 8 / 8: class 1 centres 0.5 / (0.5 + 0.5 * 335 / 992)
        # of the patches, not 0.5; every background centre lies in the box.
        lab = np.zeros((10, 10, 10), np.uint8)
        lab[4:6, 4:6, 4:6] = 1
        cases, _ = load_cases([self.save_case("c", np.zeros(lab.shape, np.float32), lab)], 3, 2, [4, 4, 4])
        s = PatchSampler(cases, [4, 4, 4], 4000, 1000, "label", [0.5, 0.5], seed=3)
        starts = [st for batch in s.epoch_plan() for _, st in batch]
        centres = [tuple(a + 2 for a in st) for st in starts]
        self.assertTrue(all(2 <= c <= 8 for centre in centres for c in centre))
        share = 0.5 / (0.5 + 0.5 * 335 / 992)
        fg = sum(1 for c in centres if lab[c] == 1)
        self.assertTrue(binomial_ok(fg, len(centres), share), (fg / len(centres), share))

    def test_batches_are_full_and_reproducible(self):
        rng = np.random.default_rng(1)
        specs = []
        for i in range(3):
            lab = (rng.random((9, 8, 7)) > 0.8).astype(np.uint8)
            specs.append(self.save_case(f"c{i}", rng.normal(size=lab.shape).astype(np.float32), lab))
        cases, _ = load_cases(specs, 3, 2, [4, 4, 4])

        def batches(seed):
            s = PatchSampler(cases, [4, 4, 4], 3, 4, "label", None, seed=seed)
            self.assertEqual(s.batches_per_epoch(), 3)  # ceil(3 * 3 / 4)
            return [(i.clone(), la.clone()) for _ in range(2) for i, la in s.epoch("cpu")]

        a, b, c = batches(5), batches(5), batches(6)
        self.assertEqual(len(a), 6)
        for (ia, la), (ib, lb) in zip(a, b):
            self.assertEqual(tuple(ia.shape), (4, 1, 4, 4, 4))
            self.assertTrue(torch.equal(ia, ib) and torch.equal(la, lb))
        self.assertFalse(all(torch.equal(ia, ic) for (ia, _), (ic, _) in zip(a, c)))


if __name__ == "__main__":
    unittest.main()
