"""Segmentation networks, built from the plan.json `network` section.

Two families, each equivalent in architecture (layers, order, parameter count) to a
MONAI network, written from scratch so the GPU side needs only torch:

* "unet": MONAI's `UNet` with residual units (Kerfoot et al., 2018). Every level has
  a down path (a residual unit whose first conv is strided), a skip connection
  (concatenation, encoder features first), and an up path (a strided transposed conv,
  then a one-conv residual unit). The bottom is a residual unit without stride.
* "basic_unet": MONAI's `BasicUNet`: two 3x3 convs per level, max-pool down,
  transposed-conv (kernel 2, stride 2) up, five encoder levels plus a last decoder
  width (six feature sizes), a final 1x1 conv.

Parameter names are our own (readable, not MONAI's nested `model.1.submodule...`),
so MONAI checkpoints do not load by name; the computation is the same.

`masked_classes` (optional, e.g. [3] for labels 0, 1, 2, 4: value k is class k) lists
output classes no label value stands for: their logits get MASK_LOGIT added at the end
of forward (a non-persistent buffer, so the weights and their names do not change), so
softmax gives them 0 and no argmax, in torch or in the exported ONNX graph, can emit a
value the dataset does not have.

Initialisation is PyTorch's default for every layer (we never override
`reset_parameters`). With a `seed`, the network is built on the CPU inside a forked
RNG seeded with it: the same seed gives the same weights on any machine, and the
caller's global RNG state is left untouched.
"""

import math

import torch
import torch.nn as nn

MASK_LOGIT = -1e4  # exp(-1e4) is 0 in float32: a masked class gets no probability

UNET_DEFAULTS = {
    "family": "unet",
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 2,
    "channels": [16, 32, 64, 128, 256],
    "strides": [2, 2, 2, 2],
    "num_res_units": 2,
    "kernel_size": 3,
    "up_kernel_size": 3,
    "norm": {"name": "instance", "affine": False},  # MONAI Norm.INSTANCE: torch's default, no affine
    "act": {"name": "prelu"},  # one shared slope per layer, init 0.25
    "dropout": 0.0,
    "bias": True,
}

BASIC_UNET_DEFAULTS = {
    "family": "basic_unet",
    "spatial_dims": 3,
    "in_channels": 1,
    "out_channels": 2,
    "features": [32, 32, 64, 128, 256, 32],
    "norm": {"name": "instance", "affine": True},
    "act": {"name": "leakyrelu", "negative_slope": 0.1},
    "dropout": 0.0,
    "bias": True,
    "upsample": "deconv",
}


# ---------------------------------------------------------------------------- layers


def _spec(value):
    """A layer spec from the plan: "name", {"name": ..., **kwargs}, [name, {kwargs}],
    or None / "none". Returns (lowercase name or None, kwargs)."""
    if value is None:
        return None, {}
    if isinstance(value, str):
        return (None if value.lower() == "none" else value.lower()), {}
    if isinstance(value, dict):
        kwargs = dict(value)
        name = kwargs.pop("name", None)
        if not isinstance(name, str):
            raise ValueError(f"layer spec {value!r} needs a string 'name'")
        return (None if name.lower() == "none" else name.lower()), kwargs
    if isinstance(value, (list, tuple)) and len(value) == 2 and isinstance(value[1], dict):
        return _spec({"name": value[0], **value[1]})
    raise ValueError(f"invalid layer spec {value!r}: expected a name, {{name, ...args}} or [name, {{args}}]")


def make_norm(spec, spatial_dims, channels):
    name, kwargs = _spec(spec)
    if name is None:
        return None
    if name == "instance":
        return (nn.InstanceNorm2d, nn.InstanceNorm3d)[spatial_dims - 2](channels, **kwargs)
    if name == "batch":
        return (nn.BatchNorm2d, nn.BatchNorm3d)[spatial_dims - 2](channels, **kwargs)
    if name == "group":
        return nn.GroupNorm(num_channels=channels, **kwargs)
    raise ValueError(f"unknown norm {name!r}: expected instance, batch, group or none")


def make_act(spec):
    name, kwargs = _spec(spec)
    if name is None:
        return None
    table = {"prelu": nn.PReLU, "leakyrelu": nn.LeakyReLU, "relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU}
    if name not in table:
        raise ValueError(f"unknown activation {name!r}: expected one of {sorted(table)} or none")
    return table[name](**kwargs)


def _per_axis(value, spatial_dims):
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) * spatial_dims


class ConvBlock(nn.Sequential):
    """conv (or transposed conv) -> norm -> dropout -> activation, each optional after
    the conv (MONAI's `Convolution` with its default "NDA" ordering).

    "Same" padding (k-1)//2, so a stride-s conv maps n to ceil(n/s); the transposed conv
    adds output_padding s-1 so it maps n back to n*s."""

    def __init__(self, dims, cin, cout, *, stride=1, kernel=3, transposed=False, norm=None, act=None,
                 dropout=0.0, bias=True, conv_only=False):
        super().__init__()
        k = _per_axis(kernel, dims)
        s = _per_axis(stride, dims)
        pad = tuple((ki - 1) // 2 for ki in k)
        if transposed:
            cls = (nn.ConvTranspose2d, nn.ConvTranspose3d)[dims - 2]
            out_pad = tuple(si - 1 for si in s)
            self.conv = cls(cin, cout, k, stride=s, padding=pad, output_padding=out_pad, bias=bias)
        else:
            cls = (nn.Conv2d, nn.Conv3d)[dims - 2]
            self.conv = cls(cin, cout, k, stride=s, padding=pad, bias=bias)
        if conv_only:
            return
        n = make_norm(norm, dims, cout)
        if n is not None:
            self.norm = n
        if dropout:
            # Element-wise dropout, as MONAI's default dropout_dim=1.
            self.drop = nn.Dropout(dropout)
        a = make_act(act)
        if a is not None:
            self.act = a


class ResidualUnit(nn.Module):
    """`subunits` ConvBlocks (only the first strided) plus a residual path added to
    their output. The residual path is the identity when neither the shape nor the
    channel count changes; a conv with the block's kernel and stride when the stride
    is not 1; a 1x1 conv when only the channel count changes."""

    def __init__(self, dims, cin, cout, *, stride=1, kernel=3, subunits=2, norm=None, act=None, dropout=0.0,
                 bias=True, last_conv_only=False):
        super().__init__()
        subunits = max(1, subunits)
        self.convs = nn.Sequential(*[
            ConvBlock(dims, cin if i == 0 else cout, cout, stride=stride if i == 0 else 1, kernel=kernel,
                      norm=norm, act=act, dropout=dropout, bias=bias,
                      conv_only=last_conv_only and i == subunits - 1)
            for i in range(subunits)
        ])
        strided = math.prod(_per_axis(stride, dims)) != 1
        if strided:
            k = _per_axis(kernel, dims)
            conv = (nn.Conv2d, nn.Conv3d)[dims - 2]
            self.residual = conv(cin, cout, k, stride=stride, padding=tuple((ki - 1) // 2 for ki in k), bias=bias)
        elif cin != cout:
            self.residual = (nn.Conv2d, nn.Conv3d)[dims - 2](cin, cout, 1, bias=bias)
        else:
            self.residual = nn.Identity()

    def forward(self, x):
        return self.convs(x) + self.residual(x)


# ---------------------------------------------------------------------------- UNet


class ClassMask(nn.Module):
    """The networks' common end: logits + class_offset (None, or MASK_LOGIT on the
    masked classes and 0 elsewhere, shaped to broadcast over (B, K, *spatial))."""

    def __init__(self):
        super().__init__()
        self.register_buffer("class_offset", None, persistent=False)

    def masked(self, logits):
        return logits if self.class_offset is None else logits + self.class_offset


class UNet(ClassMask):
    """MONAI-equivalent residual UNet. For channels (c0..cL) and strides (s0..s(L-1)):

        down[i]:  cin_i -> c_i, stride s_i        (cin_0 = in_channels, cin_i = c_(i-1))
        bottom:   c_(L-1) -> c_L, stride 1
        up[i]:    (c_i + c_(i+1) if i == L-1 else 2*c_i) -> (out_channels if i == 0 else c_(i-1))

    With residual units, down[i] and bottom are ResidualUnits of `num_res_units`
    convs; up[i] is a transposed ConvBlock (with norm and activation, even at the
    top) followed by a one-conv ResidualUnit whose conv is bare at the top (the
    logits). Without residual units they are single ConvBlocks and the top
    transposed conv is bare.
    """

    def __init__(self, config):
        super().__init__()
        c = config
        dims, ch, strides, nru = c["spatial_dims"], list(c["channels"]), list(c["strides"]), c["num_res_units"]
        if dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {dims}")
        if len(ch) < 2:
            raise ValueError("channels needs at least two entries")
        if len(strides) < len(ch) - 1:
            raise ValueError(f"strides needs {len(ch) - 1} entries for {len(ch)} channels, got {len(strides)}")
        common = {"norm": c["norm"], "act": c["act"], "dropout": c["dropout"], "bias": c["bias"]}
        k, uk = c["kernel_size"], c["up_kernel_size"]
        levels = len(ch) - 1

        def down_layer(cin, cout, stride):
            if nru > 0:
                return ResidualUnit(dims, cin, cout, stride=stride, kernel=k, subunits=nru, **common)
            return ConvBlock(dims, cin, cout, stride=stride, kernel=k, **common)

        def up_layer(cin, cout, stride, top):
            up = ConvBlock(dims, cin, cout, stride=stride, kernel=uk, transposed=True,
                           conv_only=top and nru == 0, **common)
            if nru == 0:
                return up
            ru = ResidualUnit(dims, cout, cout, stride=1, kernel=k, subunits=1, last_conv_only=top, **common)
            return nn.Sequential(up, ru)

        self.down = nn.ModuleList(
            [down_layer(c["in_channels"] if i == 0 else ch[i - 1], ch[i], strides[i]) for i in range(levels)]
        )
        self.bottom = down_layer(ch[-2], ch[-1], 1)
        self.up = nn.ModuleList([
            up_layer(ch[i] + ch[i + 1] if i == levels - 1 else 2 * ch[i],
                     c["out_channels"] if i == 0 else ch[i - 1], strides[i], i == 0)
            for i in range(levels)
        ])

    def forward(self, x):
        skips = []
        for down in self.down:
            x = down(x)
            skips.append(x)
        x = self.bottom(x)
        for i in reversed(range(len(self.up))):
            x = self.up[i](torch.cat([skips[i], x], dim=1))
        return self.masked(x)


# ---------------------------------------------------------------------------- BasicUNet


def _two_conv(dims, cin, cout, c):
    return nn.Sequential(
        ConvBlock(dims, cin, cout, norm=c["norm"], act=c["act"], dropout=c["dropout"], bias=c["bias"]),
        ConvBlock(dims, cout, cout, norm=c["norm"], act=c["act"], dropout=c["dropout"], bias=c["bias"]),
    )


class UpCat(nn.Module):
    """Transposed conv (kernel 2, stride 2) to `cup` channels, concatenation with the
    encoder features (encoder first), then two convs. When an encoder size was odd the
    upsampled map is one voxel short on that axis: it is padded at the end by
    replicating its last slice, as BasicUNet does."""

    def __init__(self, dims, cin, ccat, cout, c, halves=True):
        super().__init__()
        cup = cin // 2 if halves else cin
        self.upsample = (nn.ConvTranspose2d, nn.ConvTranspose3d)[dims - 2](cin, cup, 2, stride=2, bias=c["bias"])
        self.convs = _two_conv(dims, ccat + cup, cout, c)

    def forward(self, x, skip):
        x = self.upsample(x)
        pad = []
        for axis in range(x.dim() - 1, 1, -1):  # F.pad lists the last axis first
            pad += [0, skip.shape[axis] - x.shape[axis]]
        # While tracing for ONNX the shapes are traced values, so the pad is always written and
        # the exported graph pads whatever size it is given (a check here would be frozen at
        # the export example's sizes); run eagerly, a pad of nothing is skipped.
        if torch.jit.is_tracing() or any(pad):
            x = nn.functional.pad(x, pad, mode="replicate")
        return self.convs(torch.cat([skip, x], dim=1))


class BasicUNet(ClassMask):
    """MONAI-equivalent BasicUNet with features (f0..f5): encoder widths f0..f4 (the
    first level at full resolution, then four max-pool levels), decoder widths f3, f2,
    f1, f5, then a 1x1 conv to out_channels. Any spatial size: a decoder level pads an
    upsampled map that came out one voxel short (UpCat)."""

    def __init__(self, config):
        super().__init__()
        c = config
        dims, f = c["spatial_dims"], list(c["features"])
        if dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got {dims}")
        if len(f) != 6:
            raise ValueError(f"basic_unet needs six features, got {f}")
        if c["upsample"] != "deconv":
            raise ValueError(f"basic_unet upsample {c['upsample']!r} is not supported (only 'deconv')")
        pool = (nn.MaxPool2d, nn.MaxPool3d)[dims - 2]
        self.enc0 = _two_conv(dims, c["in_channels"], f[0], c)
        self.down = nn.ModuleList([nn.Sequential(pool(2), _two_conv(dims, f[i], f[i + 1], c)) for i in range(4)])
        self.up = nn.ModuleList([
            UpCat(dims, f[4], f[3], f[3], c),
            UpCat(dims, f[3], f[2], f[2], c),
            UpCat(dims, f[2], f[1], f[1], c),
            UpCat(dims, f[1], f[0], f[5], c, halves=False),
        ])
        self.head = (nn.Conv2d, nn.Conv3d)[dims - 2](f[5], c["out_channels"], 1)

    def forward(self, x):
        skips = [self.enc0(x)]
        for down in self.down:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up in self.up:
            x = up(x, skips.pop())
        return self.masked(self.head(x))


# ---------------------------------------------------------------------------- building


def network_config(config):
    """The complete config (defaults filled in) for a plan.json `network` section.
    Unknown keys are an error: a typo must not silently fall back to a default."""
    family = config.get("family", "unet")
    defaults = {"unet": UNET_DEFAULTS, "basic_unet": BASIC_UNET_DEFAULTS}.get(family)
    if defaults is None:
        raise ValueError(f"unknown network family {family!r}: expected 'unet' or 'basic_unet'")
    unknown = sorted(set(config) - set(defaults) - {"masked_classes"})
    if unknown:
        known = sorted([*defaults, "masked_classes"])
        raise ValueError(f"network config for {family!r} has unknown keys {unknown}; known: {known}")
    out = {**defaults, **config, "family": family}
    if "masked_classes" in out:  # only where given: the other architectures' configs stay as they were
        masked = sorted({int(k) for k in out["masked_classes"]})
        if any(not 0 < k < out["out_channels"] for k in masked):
            raise ValueError(f"masked_classes {masked} must be foreground classes below out_channels "
                             f"{out['out_channels']}")
        out["masked_classes"] = masked
    for key in ("channels", "strides", "features"):
        if key in out:
            out[key] = [int(v) for v in out[key]]
    return out


def build_network(config, seed=None):
    """An nn.Module (on the CPU, in train mode) from a plan.json `network` dict.

    With `seed`, the weights are drawn from a CPU RNG seeded with it inside
    torch.random.fork_rng, so they depend only on (config, seed) and the caller's RNG
    state is unchanged. The full config is kept as `model.config` (for checkpoint
    metadata)."""
    full = network_config(config)
    cls = UNet if full["family"] == "unet" else BasicUNet
    if seed is None:
        model = cls(full)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            model = cls(full)
    if full.get("masked_classes"):
        offset = torch.zeros((1, full["out_channels"]) + (1,) * full["spatial_dims"])
        offset[0, full["masked_classes"]] = MASK_LOGIT
        model.class_offset = offset
    model.config = full
    return model


def patch_multiple(config):
    """What every patch axis must be a multiple of: the residual UNet's skips only line up
    when each down step halves the axis exactly; the basic UNet pads a short axis itself."""
    full = network_config(config)
    return math.prod(full["strides"]) if full["family"] == "unet" else 1


def count_parameters(model, trainable_only=False):
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
