"""Segmentation losses on logits (B, K, *spatial) and class-index targets.

The Dice loss follows MONAI's DiceLoss(softmax=True, to_onehot_y=True) semantics:

    p = softmax(logits over channels), g = one_hot(target)
    optionally drop channel 0 (the background) from both
    per class k (and per batch item unless batch=True):
        I = sum(p * g),  D = sum(p) + sum(g)          sums over space (and batch)
        loss_k = 1 - (2 I + smooth_nr) / (D + smooth_dr)
    loss = mean of loss_k over classes (and batch items)

`batch=True` sums over the batch before the ratio, so an item with no foreground of
class k does not contribute a 0/0 ~ "perfect" or "zero" term of its own; that is the
reference configuration (background excluded, batch Dice). The smoothing terms
(1e-5) keep an empty class finite: with no prediction and no truth it scores 0 loss.

Everything is computed in float32, also under autocast.
"""

import torch
import torch.nn.functional as F

SMOOTH = 1e-5


def one_hot(target, num_classes):
    """(B, *spatial) class indices -> (B, K, *spatial) float32 one-hot."""
    t = _class_indices(target)
    oh = F.one_hot(t, num_classes)  # (B, *spatial, K)
    return oh.movedim(-1, 1).float()


def _class_indices(target, spatial_rank=None):
    """(B, *spatial) or (B, 1, *spatial) integer labels -> (B, *spatial) int64."""
    t = target.long()
    if spatial_rank is not None and t.dim() == spatial_rank + 2:
        if t.shape[1] != 1:
            raise ValueError(f"target with a channel axis must have one channel, got shape {tuple(target.shape)}")
        t = t[:, 0]
    return t


def dice_loss(logits, target, include_background=True, batch=False, smooth_nr=SMOOTH, smooth_dr=SMOOTH):
    """Soft Dice loss; `target` holds class indices (B, *spatial) or (B, 1, *spatial)."""
    k = logits.shape[1]
    t = _class_indices(target, logits.dim() - 2)
    p = torch.softmax(logits.float(), dim=1)
    g = one_hot(t, k)
    if not include_background:
        if k == 1:
            raise ValueError("include_background=False needs at least two channels")
        p, g = p[:, 1:], g[:, 1:]
    dims = list(range(2, p.dim()))
    if batch:
        dims = [0] + dims
    inter = (p * g).sum(dims)
    denom = p.sum(dims) + g.sum(dims)
    return (1.0 - (2.0 * inter + smooth_nr) / (denom + smooth_dr)).mean()


def cross_entropy(logits, target):
    """Mean cross-entropy over every voxel, all classes (background included)."""
    t = _class_indices(target, logits.dim() - 2)
    return F.cross_entropy(logits.float(), t)


def dice_ce_loss(logits, target, lambda_dice=1.0, lambda_ce=1.0, include_background=True, batch=False,
                 smooth_nr=SMOOTH, smooth_dr=SMOOTH):
    """lambda_dice * Dice + lambda_ce * CE (MONAI DiceCELoss semantics)."""
    d = dice_loss(logits, target, include_background, batch, smooth_nr, smooth_dr)
    return lambda_dice * d + lambda_ce * cross_entropy(logits, target)


LOSS_DEFAULTS = {
    "name": "dice_ce",
    "lambda_dice": 1.0,
    "lambda_ce": 1.0,
    "include_background": False,  # the reference configuration
    "batch": True,
    "smooth_nr": SMOOTH,
    "smooth_dr": SMOOTH,
}


def build_loss(config=None):
    """A loss callable (logits, target) -> scalar from a plan.json `loss` dict
    (name "dice_ce" | "dice" | "ce"; other keys as in LOSS_DEFAULTS)."""
    unknown = sorted(set(config or {}) - set(LOSS_DEFAULTS))
    if unknown:
        raise ValueError(f"loss config has unknown keys {unknown}; known: {sorted(LOSS_DEFAULTS)}")
    c = {**LOSS_DEFAULTS, **(config or {})}
    dice_args = {k: c[k] for k in ("include_background", "batch", "smooth_nr", "smooth_dr")}
    if c["name"] == "dice_ce":
        return lambda logits, target: dice_ce_loss(logits, target, c["lambda_dice"], c["lambda_ce"], **dice_args)
    if c["name"] == "dice":
        return lambda logits, target: dice_loss(logits, target, **dice_args)
    if c["name"] == "ce":
        return cross_entropy
    raise ValueError(f"unknown loss {c['name']!r}: expected dice_ce, dice or ce")
