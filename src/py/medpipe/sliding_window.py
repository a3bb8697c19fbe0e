"""Sliding-window inference over a whole (C, *spatial) volume.

This docstring is the shared specification with the TypeScript implementation
(src/inference/, onnxruntime-node); the two must agree voxel for voxel up to float
rounding. All arithmetic on sizes below is IEEE double, exactly as written.

1. Padding. On every axis where the volume is smaller than the patch, it is padded
   with zeros to the patch size, symmetrically: before = (patch - size) // 2,
   after = patch - size - before (the odd voxel goes at the end). Axes at least as
   large as the patch are not padded. The result is cropped back at the end.

2. Window positions, per axis, on the (padded) size S with patch P and overlap o in
   [0, 1):
       step  = max(1, trunc(P * (1 - o)))
       n     = 1                          if S <= P
               ceil((S - P) / step) + 1   otherwise
       start_i = min(i * step, S - P)     for i = 0 .. n-1
   so windows start at 0, step, 2*step, ... and the last one is moved back to end
   exactly at the border. Windows are the Cartesian product of the per-axis starts,
   visited in C order (last axis fastest); that order only matters for batching.

3. Importance weights w (a patch-sized map, the product of one 1-D profile per axis,
   i = 0 .. P-1 on an axis of length P):
     "constant":  w_i = 1.
     "gaussian":  c = (P - 1) / 2, sigma = P / 8,  w_i = exp(-(i - c)^2 / (2 sigma^2));
                  the product map is divided by its maximum (peak exactly 1), then
                  every value below 1e-3 is raised to 1e-3 so border voxels, covered
                  by a single window's tail, keep a usable weight.
     "hann":      w_i = 0.5 - 0.5 cos(2 pi (i + 1) / (P + 1))  (= sin^2(pi (i+1)/(P+1)));
                  this is the symmetric Hann window of length P + 2 with its two zero
                  end points dropped, so every weight is > 0 without clamping; the map
                  is not renormalised (its peak is <= 1).
   The weights are computed in float64 and used as float32.

4. Aggregation. For every window: probabilities = softmax over channels of the
   model's logits (float32); with TTA, the mean of the probabilities over all 2^d
   subsets of the spatial axes, each computed by flipping the window on those axes,
   running the model, and flipping the output back (flips are per window, so TTA
   does not move the window grid). Then
       acc[:, window] += w * probabilities,   norm[window] += w
   and the result is acc / norm (every voxel is covered by at least one window, and
   w > 0 everywhere, so norm > 0), cropped to the unpadded volume.

Windows are run sw_batch_size at a time under torch.no_grad(). bf16 autocast is used
only when the device is CUDA and torch.cuda.is_available(). The caller puts the model
in eval mode.
"""

import contextlib
import itertools
import math

import numpy as np
import torch

GAUSSIAN_SIGMA_SCALE = 1.0 / 8.0
GAUSSIAN_FLOOR = 1e-3
MODES = ("constant", "gaussian", "hann")


def window_starts(size, patch, overlap):
    """Start indices along one axis (rule 2 of the module docstring)."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if size <= patch:
        return [0]
    step = max(1, int(patch * (1.0 - overlap)))
    n = math.ceil((size - patch) / step) + 1
    return [min(i * step, size - patch) for i in range(n)]


def window_grid(shape, patch, overlap):
    """Every window's start tuple over a (padded) spatial shape, C order."""
    return list(itertools.product(*[window_starts(s, p, overlap) for s, p in zip(shape, patch)]))


def pad_widths(shape, patch):
    """(before, after) zero padding per axis (rule 1)."""
    out = []
    for s, p in zip(shape, patch):
        total = max(p - s, 0)
        out.append((total // 2, total - total // 2))
    return out


def weight_profile(length, mode):
    """The 1-D profile of rule 3 along one axis, float64 numpy (before normalisation)."""
    i = np.arange(length, dtype=np.float64)
    if mode == "constant":
        return np.ones(length)
    if mode == "gaussian":
        c = (length - 1) / 2.0
        sigma = length * GAUSSIAN_SIGMA_SCALE
        return np.exp(-((i - c) ** 2) / (2.0 * sigma**2))
    if mode == "hann":
        return 0.5 - 0.5 * np.cos(2.0 * np.pi * (i + 1.0) / (length + 1.0))
    raise ValueError(f"unknown weighting {mode!r}: expected one of {MODES}")


def importance_map(patch, mode):
    """The patch-sized weight map of rule 3 as a float32 torch tensor (on the CPU)."""
    w = np.ones((), dtype=np.float64)
    for length in patch:
        w = np.multiply.outer(w, weight_profile(int(length), mode))
    if mode == "gaussian":
        w = np.maximum(w / w.max(), GAUSSIAN_FLOOR)
    return torch.from_numpy(w.astype(np.float32))


def flip_subsets(spatial_dims):
    """All 2^d subsets of the spatial axes (as tensor dims of a (B, C, *spatial) batch),
    the empty one (no flip) first."""
    axes = [2 + a for a in range(spatial_dims)]
    return [list(c) for r in range(spatial_dims + 1) for c in itertools.combinations(axes, r)]


def _autocast(device):
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _probabilities(model, batch, tta, device, amp):
    subsets = flip_subsets(batch.dim() - 2) if tta else [[]]
    total = None
    for axes in subsets:
        x = batch.flip(axes) if axes else batch
        with _autocast(device) if amp else contextlib.nullcontext():
            logits = model(x)
        p = torch.softmax(logits.float(), dim=1)
        p = p.flip(axes) if axes else p
        total = p if total is None else total + p
    return total / len(subsets)


@torch.no_grad()
def sliding_window_inference(volume, model, patch_size, overlap=0.5, mode="gaussian", sw_batch_size=4,
                             tta=False, device=None, amp=True):
    """Softmax probabilities (K, *spatial), float32, for a (C, *spatial) volume.

    `volume`: torch tensor or numpy array; `model`: callable (B, C, *patch) -> logits
    (B, K, *patch); `device`: where windows run and probabilities accumulate (default
    the volume's device). See the module docstring for the exact rules."""
    if isinstance(volume, np.ndarray):
        volume = torch.from_numpy(np.ascontiguousarray(volume))
    device = torch.device(device) if device is not None else volume.device
    spatial = tuple(volume.shape[1:])
    patch = tuple(int(p) for p in patch_size)
    if len(patch) != len(spatial):
        raise ValueError(f"patch {patch} has {len(patch)} axes but the volume has {len(spatial)} spatial axes")
    if mode not in MODES:
        raise ValueError(f"unknown weighting {mode!r}: expected one of {MODES}")
    if sw_batch_size < 1:
        raise ValueError(f"sw_batch_size must be >= 1, got {sw_batch_size}")

    x = volume.to(device=device, dtype=torch.float32)
    pads = pad_widths(spatial, patch)
    if any(b or a for b, a in pads):
        flat = [v for b, a in reversed(pads) for v in (b, a)]  # F.pad lists the last axis first
        x = torch.nn.functional.pad(x, flat)  # zeros
    padded = tuple(x.shape[1:])
    weight = importance_map(patch, mode).to(device)
    starts = window_grid(padded, patch, overlap)

    acc = None
    norm = torch.zeros((1,) + padded, dtype=torch.float32, device=device)
    for first in range(0, len(starts), sw_batch_size):
        group = starts[first:first + sw_batch_size]
        slices = [tuple(slice(s, s + p) for s, p in zip(start, patch)) for start in group]
        batch = torch.stack([x[(slice(None),) + sl] for sl in slices])
        probs = _probabilities(model, batch, tta, device, amp)
        if acc is None:
            acc = torch.zeros((probs.shape[1],) + padded, dtype=torch.float32, device=device)
        for p, sl in zip(probs, slices):
            acc[(slice(None),) + sl] += p * weight
            norm[(slice(None),) + sl] += weight

    out = acc / norm
    crop = tuple(slice(b, b + s) for (b, _), s in zip(pads, spatial))
    return out[(slice(None),) + crop].contiguous()
