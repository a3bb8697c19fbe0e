"""Batched data augmentation on the device where the batch is (the GPU in training).

`Augmenter(specs, seed, device)` takes the plan's list of transforms, e.g.

    [{"name": "flip", "axes": [0, 1, 2], "p": 0.5},
     {"name": "affine", "rotate": 0.26, "scale": 0.1, "translate": 0.0, "p": 0.2},
     {"name": "gamma", "range": [0.7, 1.5], "p": 0.3},
     {"name": "noise", "std": 0.1, "p": 0.15},
     {"name": "blur", "sigma": [0.5, 1.0], "p": 0.2},
     {"name": "bias_field", "coeff": 0.3, "p": 0.1},
     {"name": "shift", "offset": 0.1, "p": 0.5}]

and is called on a batch: `image, label = aug(image, label)` with image (B, C, *S)
float32 and label (B, *S) integer, 2D or 3D. Transforms run in list order. Each one
decides per sample (Bernoulli(p)) whether it applies. The coins come from a seeded
generator on the host, so a transform is computed only for the samples it selected (with
p = 0.2 and a batch of 4, no sample at all in 41% of batches) and no decision needs a
host-device sync; the parameters come from a seeded generator on the batch's device,
drawn for the whole batch at every call, selected or not (the noise field only for the
samples that take it). Unselected samples are passed through bit for bit. The caller's
tensors are not modified.

Spatial axes are numbered 0..d-1 as in the volume (x, y, z). The transforms:

flip        {axes, p}: every listed axis is flipped independently with probability p
            (image and label together). Exact.
affine      {rotate, scale, translate, p, isotropic=false}: one affine map per sample,
            about the patch centre, in voxel units (so a rotation stays a rotation on a
            non-cubic patch): input = R diag(1/s) output + t. rotate: the angle about
            each axis (3D: about x, y, z, composed Rx Ry Rz; 2D: one angle) uniform in
            [-rotate, rotate] radians (a number or one per angle); scale: s uniform in
            [1 - scale, 1 + scale] per axis (one for all axes if isotropic); translate:
            t uniform in [-translate, translate] x the patch size per axis. Sampled with
            affine_grid/grid_sample (align_corners=False), padding "border": the image
            bilinear (trilinear in 3D), the label nearest, so every output label is a
            copy of an input label and the label set never gains values.
gamma       {range, p}: per sample g uniform in range; per sample and channel, with
            m = min, r = max - min over the sample's voxels: x -> ((x - m) / r)^g r + m
            (a channel with r = 0 is left as it is).
noise       {std, p}: x + sigma * N(0, 1), sigma per sample uniform in [0, std] (or
            in [lo, hi] when std is a pair).
blur        {sigma, p}: a Gaussian blur, sigma (voxels, all axes) per sample uniform in
            the range (or fixed when a number); separable: one 1-D convolution per axis
            with w_i = exp(-i^2 / (2 sigma^2)), i = -R..R, R = ceil(3 max sigma), divided by
            its sum, the volume edge-padded (replicate) by R.
bias_field  {coeff, order=3, p}: x * exp(sum_t c_t P_t) with P_t every monomial
            x^i y^j (z^k) of total degree <= order over voxel centres normalised to
            [-1, 1] ((2v + 1) / n - 1), c_t uniform in [-coeff, coeff] (TorchIO's
            RandomBiasField).
shift       {offset, p}: x + o, o per sample uniform in [-offset, offset] (or [lo, hi]).

All intensity transforms act on every channel of a selected sample.
"""

import math

import torch
import torch.nn.functional as F

KNOWN = {
    "flip": {"axes": None, "p": 0.5},
    "affine": {"rotate": 0.0, "scale": 0.0, "translate": 0.0, "isotropic": False, "p": 0.2},
    "gamma": {"range": [0.7, 1.5], "p": 0.3},
    "noise": {"std": 0.1, "p": 0.15},
    "blur": {"sigma": [0.5, 1.0], "p": 0.2},
    "bias_field": {"coeff": 0.3, "order": 3, "p": 0.1},
    "shift": {"offset": 0.1, "p": 0.5},
}


def transform_specs(specs):
    """Validated transform specs, defaults filled in. Unknown names or keys are errors."""
    out = []
    for spec in specs or []:
        if not isinstance(spec, dict) or "name" not in spec:
            raise ValueError(f"augmentation {spec!r} needs a 'name'")
        name = spec["name"]
        if name not in KNOWN:
            raise ValueError(f"unknown augmentation {name!r}; known: {sorted(KNOWN)}")
        unknown = sorted(set(spec) - set(KNOWN[name]) - {"name"})
        if unknown:
            raise ValueError(f"augmentation {name!r} has unknown keys {unknown}; known: {sorted(KNOWN[name])}")
        full = {**KNOWN[name], **spec}
        if not 0.0 <= float(full["p"]) <= 1.0:
            raise ValueError(f"augmentation {name!r}: p must be in [0, 1], got {full['p']}")
        out.append(full)
    return out


def _range(value, symmetric=False):
    """(lo, hi) from a number or a pair; a number n means [-n, n] if symmetric else [n, n]."""
    if isinstance(value, (list, tuple)):
        lo, hi = float(value[0]), float(value[1])
    else:
        lo, hi = (-float(value), float(value)) if symmetric else (float(value), float(value))
    if hi < lo:
        raise ValueError(f"augmentation range [{lo}, {hi}] is reversed")
    return lo, hi


class Augmenter:
    def __init__(self, specs, seed=0, device="cpu"):
        self.specs = transform_specs(specs)
        self.device = torch.device(device)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.generator = torch.Generator(device=self.device).manual_seed(int(seed))
        self.coins = torch.Generator().manual_seed(int(seed))

    def uniform(self, n, lo, hi, device):
        return lo + (hi - lo) * torch.rand(n, generator=self.generator, device=device)

    def chosen(self, n, p):
        """The samples (plain ints) a transform applies to: one host coin per sample."""
        return torch.nonzero(torch.rand(n, generator=self.coins) < p).reshape(-1).tolist()

    @torch.no_grad()
    def __call__(self, image, label):
        if image.device != self.device:
            raise ValueError(f"batch on {image.device} but the augmenter's generator is on {self.device}")
        # Transforms write the samples they select in place, into copies of the batch.
        image, label = image.clone(), label.clone()
        for spec in self.specs:
            getattr(self, "_" + spec["name"])(spec, image, label)
        return image, label

    # -------------------------------------------------------------------- spatial

    def _flip(self, spec, image, label):
        d = image.dim() - 2
        axes = list(range(d)) if spec["axes"] is None else [int(a) for a in spec["axes"]]
        for a in axes:
            if not 0 <= a < d:
                raise ValueError(f"flip axis {a} out of range for {d}D patches")
            for i in self.chosen(image.shape[0], float(spec["p"])):
                image[i] = image[i].flip(1 + a)
                label[i] = label[i].flip(a)

    def affine_matrices(self, spec, b, size, device):
        """(B, d, d) A and (B, d) t in voxel units: input = A output + t about the centre."""
        d = len(size)
        n_angles = 3 if d == 3 else 1
        rot = spec["rotate"]
        rot = [float(r) for r in rot] if isinstance(rot, (list, tuple)) else [float(rot)] * n_angles
        if len(rot) != n_angles:
            raise ValueError(f"affine rotate needs {n_angles} angle(s) for {d}D, got {rot}")
        angles = torch.stack([self.uniform(b, -r, r, device) for r in rot], dim=1)  # (B, n_angles)
        s_lo, s_hi = 1.0 - float(spec["scale"]), 1.0 + float(spec["scale"])
        if spec["isotropic"]:
            scale = self.uniform(b, s_lo, s_hi, device)[:, None].expand(b, d)
        else:
            scale = torch.stack([self.uniform(b, s_lo, s_hi, device) for _ in range(d)], dim=1)
        tr = float(spec["translate"])
        t = torch.stack([self.uniform(b, -tr, tr, device) * n for n in size], dim=1)

        def rotation(theta, i, j):  # rotation in the plane of axes (i, j)
            r = torch.eye(d, device=device).repeat(b, 1, 1)
            c, s = torch.cos(theta), torch.sin(theta)
            r[:, i, i], r[:, j, j], r[:, i, j], r[:, j, i] = c, c, -s, s
            return r

        if d == 2:
            rmat = rotation(angles[:, 0], 0, 1)
        else:
            rmat = rotation(angles[:, 0], 1, 2) @ rotation(angles[:, 1], 0, 2) @ rotation(angles[:, 2], 0, 1)
        return rmat @ torch.diag_embed(1.0 / scale), t

    def _affine(self, spec, image, label):
        b, d = image.shape[0], image.dim() - 2
        size = tuple(image.shape[2:])
        a, t = self.affine_matrices(spec, b, size, image.device)
        rows = self.chosen(b, float(spec["p"]))
        if not rows:
            return
        # Voxel offsets from the centre are v = D u with u the normalised coordinate of
        # align_corners=False and D = diag(n / 2): in normalised units the map is
        # D^-1 A D u + D^-1 t. affine_grid orders coordinates last axis first, so the
        # matrix and vector are reversed on every axis. D is applied with host scalars: a
        # tensor made from a host list would be a blocking copy, a GPU sync at every step.
        a_n, t_n = a.clone(), t.clone()
        for k, n in enumerate(size):
            a_n[:, :, k] *= n / 2.0
        for k, n in enumerate(size):
            a_n[:, k, :] /= n / 2.0
            t_n[:, k] /= n / 2.0
        theta = torch.cat([a_n.flip(1).flip(2), t_n.flip(1)[:, :, None]], dim=2)
        for i in rows:
            grid = F.affine_grid(theta[i:i + 1], [1] + list(image.shape[1:]), align_corners=False)
            image[i] = F.grid_sample(image[i:i + 1], grid, mode="bilinear", padding_mode="border",
                                     align_corners=False)[0]
            label[i] = F.grid_sample(label[i:i + 1, None].float(), grid, mode="nearest", padding_mode="border",
                                     align_corners=False)[0, 0].round().to(label.dtype)

    # -------------------------------------------------------------------- intensity

    def _gamma(self, spec, image, label):
        b = image.shape[0]
        g = self.uniform(b, *_range(spec["range"]), image.device)
        for i in self.chosen(b, float(spec["p"])):
            x = image[i]  # (C, *S), one range per channel
            dims = tuple(range(1, x.dim()))
            lo = x.amin(dim=dims, keepdim=True)
            r = x.amax(dim=dims, keepdim=True) - lo
            safe = torch.where(r > 0, r, torch.ones_like(r))
            out = ((x - lo) / safe).clamp_(0.0, 1.0).pow(g[i]) * safe + lo
            image[i] = torch.where(r > 0, out, x)

    def _noise(self, spec, image, label):
        b = image.shape[0]
        std = spec["std"]
        sigma = self.uniform(b, *(_range(std) if isinstance(std, (list, tuple)) else (0.0, float(std))), image.device)
        for i in self.chosen(b, float(spec["p"])):
            noise = torch.randn(image.shape[1:], generator=self.generator, device=image.device)
            image[i] += sigma[i] * noise

    def _blur(self, spec, image, label):
        b = image.shape[0]
        lo, hi = _range(spec["sigma"])
        sigma = self.uniform(b, lo, hi, image.device)
        for i in self.chosen(b, float(spec["p"])):
            image[i] = gaussian_blur(image[i:i + 1], sigma[i:i + 1], radius=max(1, math.ceil(3.0 * hi)))[0]

    def _bias_field(self, spec, image, label):
        b, d = image.shape[0], image.dim() - 2
        order = int(spec["order"])
        # Coefficients c[b, i, j(, k)] of x^i y^j (z^k), zero above total degree `order`.
        # The field is evaluated separably (one power table per axis, einsum), never
        # as a stack of full-size monomials.
        powers = torch.arange(order + 1, device=image.device)
        degree = sum(powers.view([-1 if a == i else 1 for a in range(d)]) for i in range(d))
        coeff = float(spec["coeff"])
        c = self.uniform(b * (order + 1) ** d, -coeff, coeff, image.device).view((b,) + (order + 1,) * d)
        c = c * (degree <= order)
        rows = self.chosen(b, float(spec["p"]))
        if not rows:
            return
        tables = []
        for n in image.shape[2:]:
            u = (torch.arange(n, device=image.device, dtype=torch.float32) * 2 + 1) / n - 1
            tables.append(u[None, :] ** powers[:, None].float())  # (order+1, n)
        for i in rows:
            if d == 3:
                field = torch.einsum("ijk,ix,jy,kz->xyz", c[i], *tables)
            else:
                field = torch.einsum("ij,ix,jy->xy", c[i], *tables)
            image[i] *= torch.exp(field)  # one field for every channel

    def _shift(self, spec, image, label):
        b = image.shape[0]
        o = self.uniform(b, *_range(spec["offset"], symmetric=True), image.device)
        for i in self.chosen(b, float(spec["p"])):
            image[i] += o[i]


def gaussian_kernels(sigma, radius):
    """(B, 2R+1) normalised 1-D Gaussian kernels, one per sigma."""
    i = torch.arange(-radius, radius + 1, device=sigma.device, dtype=torch.float32)
    w = torch.exp(-(i[None, :] ** 2) / (2.0 * sigma[:, None].float() ** 2))
    return w / w.sum(dim=1, keepdim=True)


def gaussian_blur(image, sigma, radius):
    """Separable Gaussian blur of (B, C, *S) with one sigma per sample: the batch and
    channels are folded into the channel axis of one grouped convolution per axis,
    on the replicate-padded volume."""
    b, c = image.shape[:2]
    d = image.dim() - 2
    conv = (F.conv2d, F.conv3d)[d - 2]
    k = gaussian_kernels(sigma, radius).repeat_interleave(c, dim=0)  # (B*C, 2R+1)
    x = image.reshape((1, b * c) + tuple(image.shape[2:]))
    for axis in range(d):
        pad = [0, 0] * d
        pad[2 * (d - 1 - axis):2 * (d - 1 - axis) + 2] = [radius, radius]  # F.pad lists the last axis first
        shape = [b * c, 1] + [1] * d
        shape[2 + axis] = 2 * radius + 1
        x = conv(F.pad(x, pad, mode="replicate"), k.view(shape), groups=b * c)
    return x.reshape(image.shape)
