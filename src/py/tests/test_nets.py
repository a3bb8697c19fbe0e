"""Networks against parameter counts derived by hand from MONAI's layer definitions
(monai/networks/nets/unet.py, blocks/convolutions.py, nets/basic_unet.py, read at
Project-MONAI/MONAI d388d1c), and against a functional re-statement of MONAI's
recursive UNet forward."""

import math
import unittest

import torch
import torch.nn as nn
import torch.nn.functional as F

from medpipe.nets import build_network, count_parameters, network_config, patch_multiple

# ----------------------------------------------------------------------------------------
# Oracle 1: MONAI UNet, heart reference config: spatial_dims=3, in 1, out 2,
# channels (16, 32, 64, 128, 256), strides (2, 2, 2, 2), num_res_units=2, kernel 3,
# up_kernel 3, instance norm (affine=False: no parameters), PReLU (one parameter each).
#
# A 3D conv cin->cout with kernel 3 has cin*cout*27 + cout parameters; a transposed conv
# the same. Each Convolution block with norm+act adds 1 (PReLU).
#
# Down path (ResidualUnit, 2 subunits, first strided; residual = 3x3x3 stride-2 conv):
#   1->16:   (1*16*27+16)+1 + (16*16*27+16)+1 + (1*16*27+16)        =    449 +    6929 +    448 =    7,826
#   16->32:  (16*32*27+32)+1 + (32*32*27+32)+1 + (16*32*27+32)      =  13857 +   27681 +  13856 =   55,394
#   32->64:  (32*64*27+64)+1 + (64*64*27+64)+1 + (32*64*27+64)      =  55361 +  110657 +  55360 =  221,378
#   64->128: (64*128*27+128)+1 + (128*128*27+128)+1 + (64*128*27+128)
#                                                                   = 221313 +  442497 + 221312 =  885,122
# Bottom (ResidualUnit 128->256, stride 1; residual = 1x1x1 conv since channels change):
#            (128*256*27+256)+1 + (256*256*27+256)+1 + (128*256+256) = 884993 + 1769729 +  33024 = 2,687,746
# Up path (transposed conv + norm + PReLU, then a 1-subunit ResidualUnit, identity residual;
# at the top the unit's conv is bare: no PReLU). Inputs are skip + lower output:
#   384->64: (384*64*27+64)+1 + (64*64*27+64)+1                     = 663617 + 110657          =  774,274
#   128->32: (128*32*27+32)+1 + (32*32*27+32)+1                     = 110625 +  27681          =  138,306
#   64->16:  (64*16*27+16)+1  + (16*16*27+16)+1                     =  27665 +   6929          =   34,594
#   32->2:   (32*2*27+2)+1    + (2*2*27+2)                          =   1731 +    110          =    1,841
# Total: 1,169,720 (down) + 2,687,746 (bottom) + 949,015 (up) = 4,806,481.
HEART_UNET_PARAMS = 4_806_481

# The same network with batch norm adds 2 affine parameters per channel of each of the 17
# normalised blocks: 2 * (2*(16+32+64+128+256) + (64+64) + (32+32) + (16+16) + 2) = 2,436,
# giving 4,808,917: the count MONAI's spleen_ct_segmentation bundle (this config with
# norm "batch") reports.
SPLEEN_UNET_PARAMS = 4_808_917

# Oracle 2: MONAI BasicUNet defaults: 3D, in 1, out 2, features (32, 32, 64, 128, 256, 32),
# instance norm affine=True (2 per channel), LeakyReLU (none). Convolution 3x3x3 + norm:
# cin*cout*27 + cout + 2*cout. Up: transposed conv kernel 2: cin*cup*8 + cup.
#   conv_0  1->32, 32->32:        960 + 27744                                        =    28,704
#   down_1  32->32 x2:            27744 * 2                                          =    55,488
#   down_2  32->64, 64->64:       55488 + 110784                                     =   166,272
#   down_3  64->128, 128->128:    221568 + 442752                                    =   664,320
#   down_4  128->256, 256->256:   885504 + 1770240                                   = 2,655,744
#   upcat_4 deconv 256->128, convs 256->128, 128->128: 262272 + 885120 + 442752      = 1,590,144
#   upcat_3 deconv 128->64,  convs 128->64, 64->64:     65600 + 221376 + 110784      =   397,760
#   upcat_2 deconv 64->32,   convs 64->32, 32->32:      16416 +  55392 +  27744      =    99,552
#   upcat_1 deconv 32->32 (halves=False), convs 64->32, 32->32: 8224 + 55392 + 27744 =    91,360
#   final_conv 1x1x1 32->2:   66
# Total 5,749,410.
BASIC_UNET_DEFAULT_PARAMS = 5_749_410


def conv_params(cin, cout, k, dims):
    return cin * cout * k**dims + cout


class ParameterCountTest(unittest.TestCase):
    def test_heart_unet_matches_monai(self):
        net = build_network({"family": "unet", "spatial_dims": 3, "in_channels": 1, "out_channels": 2,
                             "channels": [16, 32, 64, 128, 256], "strides": [2, 2, 2, 2], "num_res_units": 2,
                             "norm": "instance", "act": "prelu", "dropout": 0.0})
        self.assertEqual(count_parameters(net), HEART_UNET_PARAMS)
        # Layer census, as in MONAI: 4 x (2 convs + strided residual) + bottom (2 + 1x1)
        # + 4 x (transposed + conv) = 23 conv layers; 17 norm and PReLU layers.
        convs = [m for m in net.modules() if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d))]
        self.assertEqual(len(convs), 23)
        self.assertEqual(sum(isinstance(m, nn.ConvTranspose3d) for m in net.modules()), 4)
        self.assertEqual(sum(isinstance(m, nn.PReLU) for m in net.modules()), 17)
        norms = [m for m in net.modules() if isinstance(m, nn.InstanceNorm3d)]
        self.assertEqual(len(norms), 17)
        self.assertFalse(any(n.affine for n in norms))

    def test_batch_norm_variant_matches_the_spleen_bundle(self):
        self.assertEqual(count_parameters(build_network({"norm": "batch"})), SPLEEN_UNET_PARAMS)

    def test_defaults_are_the_reference_unet(self):
        self.assertEqual(count_parameters(build_network({})), HEART_UNET_PARAMS)

    def test_unet_without_residual_units_2d(self):
        # 2D, 1->3, channels (8, 16, 32), strides (2, 2), num_res_units 0: single Convolution
        # blocks; the top transposed conv is bare (conv_only), the others have PReLU.
        expected = (
            conv_params(1, 8, 3, 2) + 1        # down 1->8
            + conv_params(8, 16, 3, 2) + 1     # down 8->16
            + conv_params(16, 32, 3, 2) + 1    # bottom 16->32
            + conv_params(48, 8, 3, 2) + 1     # up (16 skip + 32) -> 8
            + conv_params(16, 3, 3, 2)         # top up (8 skip + 8) -> 3, bare
        )
        self.assertEqual(expected, 9791)
        net = build_network({"spatial_dims": 2, "in_channels": 1, "out_channels": 3, "channels": [8, 16, 32],
                             "strides": [2, 2], "num_res_units": 0})
        self.assertEqual(count_parameters(net), expected)

    def test_basic_unet_default_matches_monai(self):
        self.assertEqual(count_parameters(build_network({"family": "basic_unet"})), BASIC_UNET_DEFAULT_PARAMS)

    def test_basic_unet_2d_tissue_config(self):
        # 2D, 3 -> 4 classes, features (32, 64, 128, 256, 512, 32), instance affine norm.
        def two(cin, cout):
            return conv_params(cin, cout, 3, 2) + 2 * cout + conv_params(cout, cout, 3, 2) + 2 * cout

        def up(cin, cat, cout, halves=True):
            cup = cin // 2 if halves else cin
            return cin * cup * 4 + cup + two(cat + cup, cout)

        f = (32, 64, 128, 256, 512, 32)
        expected = (two(3, f[0]) + two(f[0], f[1]) + two(f[1], f[2]) + two(f[2], f[3]) + two(f[3], f[4])
                    + up(f[4], f[3], f[3]) + up(f[3], f[2], f[2]) + up(f[2], f[1], f[1])
                    + up(f[1], f[0], f[5], halves=False) + f[5] * 4 + 4)
        net = build_network({"family": "basic_unet", "spatial_dims": 2, "in_channels": 3, "out_channels": 4,
                             "features": list(f), "dropout": 0.4})
        self.assertEqual(count_parameters(net), expected)
        self.assertEqual(sum(isinstance(m, nn.Dropout) for m in net.modules()), 18)  # every conv block


def monai_style_forward(net, x, channels):
    """MONAI's recursion, restated with our modules' weights:
    block(x) = up(cat([down(x), sub(down(x))])), sub = next block or the bottom unit."""

    def block(level, h):
        d = net.down[level](h)
        sub = block(level + 1, d) if level + 1 < len(channels) - 1 else net.bottom(d)
        return net.up[level](torch.cat([d, sub], dim=1))

    return block(0, x)


class ForwardTest(unittest.TestCase):
    def test_unet_wiring_matches_monai_recursion(self):
        for dims, shape in ((2, (2, 1, 16, 16)), (3, (1, 2, 8, 8, 8))):
            net = build_network({"spatial_dims": dims, "in_channels": shape[1], "out_channels": 3,
                                 "channels": [4, 8, 16], "strides": [2, 2]}, seed=1).eval()
            x = torch.randn(*shape, generator=torch.Generator().manual_seed(2))
            with torch.no_grad():
                y = net(x)
                self.assertEqual(tuple(y.shape), (shape[0], 3) + shape[2:])
                self.assertTrue(torch.equal(y, monai_style_forward(net, x, [4, 8, 16])))

    def test_residual_unit_adds_its_residual_path(self):
        net = build_network({"spatial_dims": 2, "channels": [4, 8], "strides": [2]}, seed=0).eval()
        ru = net.down[0]
        x = torch.randn(1, 1, 8, 8)
        with torch.no_grad():
            h = x
            for block in ru.convs:
                h = block.act(block.norm(block.conv(h)))
            expected = h + F.conv2d(x, ru.residual.weight, ru.residual.bias, stride=2, padding=1)
            self.assertTrue(torch.allclose(ru(x), expected, atol=1e-6))
        # Top up layer: the last conv is bare (no norm, no activation): raw logits.
        self.assertEqual([n for n, _ in net.up[0][1].convs[0].named_children()], ["conv"])

    def test_basic_unet_shapes_including_odd_sizes(self):
        net = build_network({"family": "basic_unet", "spatial_dims": 2, "in_channels": 1, "out_channels": 3,
                             "features": [4, 4, 8, 8, 16, 4]}, seed=0).eval()
        with torch.no_grad():
            self.assertEqual(tuple(net(torch.randn(2, 1, 32, 16)).shape), (2, 3, 32, 16))
            # 36 -> 18 -> 9 -> 4 -> 2: the decoder pads the upsampled 8 back to 9.
            self.assertEqual(tuple(net(torch.randn(1, 1, 36, 20)).shape), (1, 3, 36, 20))
        net3 = build_network({"family": "basic_unet", "features": [2, 2, 4, 4, 8, 2]}, seed=0)
        self.assertEqual(tuple(net3(torch.randn(1, 1, 32, 16, 16)).shape), (1, 2, 32, 16, 16))


    def test_patch_multiple_is_where_the_unet_skips_line_up(self):
        # strides [2, 3]: 6 | n goes through, anything else fails at a skip concatenation.
        net = build_network({"spatial_dims": 2, "channels": [4, 8, 8], "strides": [2, 3], "num_res_units": 1})
        self.assertEqual(patch_multiple(net.config), 6)
        for n in (6, 12, 18, 24):
            self.assertEqual(net(torch.zeros(1, 1, n, 12)).shape, (1, 2, n, 12))
        for n in (4, 8, 9, 10, 14, 16):
            with self.assertRaises(RuntimeError):
                net(torch.zeros(1, 1, n, 12))
        self.assertEqual(patch_multiple({}), 16)  # the reference UNet: 2 x 2 x 2 x 2
        self.assertEqual(patch_multiple({"family": "basic_unet"}), 1)


class InitTest(unittest.TestCase):
    CFG = {"spatial_dims": 3, "channels": [4, 8, 16], "strides": [2, 2]}

    def test_seeded_init_is_reproducible_and_leaves_the_global_rng_alone(self):
        torch.manual_seed(123)
        expected_next = torch.rand(3)
        torch.manual_seed(123)
        a = build_network(self.CFG, seed=7)
        self.assertTrue(torch.equal(torch.rand(3), expected_next))
        b = build_network(self.CFG, seed=7)
        c = build_network(self.CFG, seed=8)
        sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
        self.assertTrue(all(torch.equal(sa[k], sb[k]) for k in sa))
        self.assertFalse(all(torch.equal(sa[k], sc[k]) for k in sa))

    def test_pytorch_default_init(self):
        net = build_network(self.CFG, seed=0)
        for m in net.modules():
            if isinstance(m, nn.PReLU):
                self.assertTrue(torch.all(m.weight == 0.25))
            if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
                # kaiming_uniform(a=sqrt(5)) and the bias both give U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
                # fan_in = weight.shape[1] * kernel volume (for transposed convs too).
                fan_in = m.weight.shape[1] * math.prod(m.weight.shape[2:])
                bound = 1 / math.sqrt(fan_in)
                self.assertLessEqual(m.weight.abs().max().item(), bound)
                self.assertLessEqual(m.bias.abs().max().item(), bound)
                self.assertGreater(m.weight.abs().max().item(), 0.5 * bound)


class ConfigTest(unittest.TestCase):
    def test_masked_classes_get_no_probability_and_change_nothing_else(self):
        # Labels 0, 1, 2, 4: class 3 stands for no value. Its logits are 1e4 lower, so softmax
        # gives it exactly 0 in float32; the weights (names and values) and the other logits are
        # those of the same network without the mask.
        for family, extra in (("unet", {"channels": [4, 8], "strides": [2]}),
                              ("basic_unet", {"features": [4, 4, 8, 8, 16, 4]})):
            cfg = {"family": family, "spatial_dims": 2, "out_channels": 5, **extra}
            plain, masked = build_network(cfg, seed=3), build_network({**cfg, "masked_classes": [3]}, seed=3)
            self.assertEqual(masked.config["masked_classes"], [3])
            self.assertNotIn("masked_classes", plain.config)
            sp, sm = plain.state_dict(), masked.state_dict()
            self.assertEqual(list(sp), list(sm))
            self.assertTrue(all(torch.equal(sp[k], sm[k]) for k in sp))
            x = torch.randn(2, 1, 32, 32)
            with torch.no_grad():
                yp, ym = plain(x), masked(x)
            self.assertTrue(torch.equal(ym[:, [0, 1, 2, 4]], yp[:, [0, 1, 2, 4]]))
            self.assertTrue(torch.allclose(ym[:, 3], yp[:, 3] - 1e4))
            self.assertEqual(float(ym.softmax(1)[:, 3].max()), 0.0)
            self.assertFalse(bool((ym.argmax(1) == 3).any()))
        with self.assertRaisesRegex(ValueError, "masked_classes"):
            build_network({"spatial_dims": 2, "out_channels": 3, "masked_classes": [3]})
        with self.assertRaisesRegex(ValueError, "masked_classes"):
            build_network({"spatial_dims": 2, "out_channels": 3, "masked_classes": [0]})

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "unknown keys"):
            build_network({"chanels": [4, 8]})
        with self.assertRaisesRegex(ValueError, "family"):
            build_network({"family": "vnet"})
        with self.assertRaisesRegex(ValueError, "strides"):
            build_network({"channels": [4, 8, 16], "strides": [2]})
        with self.assertRaisesRegex(ValueError, "norm"):
            build_network({"norm": "layer"})
        with self.assertRaisesRegex(ValueError, "six features"):
            build_network({"family": "basic_unet", "features": [4, 8]})

    def test_layer_specs(self):
        net = build_network({"spatial_dims": 2, "channels": [4, 8], "strides": [2],
                             "act": ["leakyrelu", {"negative_slope": 0.2}],
                             "norm": {"name": "instance", "affine": True}})
        acts = [m for m in net.modules() if isinstance(m, nn.LeakyReLU)]
        self.assertTrue(acts and all(a.negative_slope == 0.2 for a in acts))
        self.assertTrue(all(m.affine for m in net.modules() if isinstance(m, nn.InstanceNorm2d)))
        full = network_config({"family": "basic_unet"})
        self.assertEqual(full["features"], [32, 32, 64, 128, 256, 32])
        self.assertEqual(net.config["channels"], [4, 8])


if __name__ == "__main__":
    unittest.main()
