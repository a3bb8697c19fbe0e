"""Train one segmentation model on preprocessed patches; select a checkpoint by the EMA
of the validation Dice (over fixed validation patches, or over whole validation volumes).

    python -m medpipe.train --config CONFIG.json --output-dir DIR
    # or: from medpipe.train import train; result = train(config, output_dir)

Config (JSON object; unknown keys are an error; relative paths are resolved against
the current working directory):

  network            required. The nets.build_network dict; out_channels = number of
                     classes (background = class 0), in_channels = image channels.
  loss               {} -> losses.build_loss (default dice_ce, background excluded,
                     batch Dice: the reference).
  train_cases        required, non-empty: [{"id", "image", "label"}] .npy paths.
  val_cases          []: same form. Empty: no validation, no selection (the final
                     model on all data): best = last, selection "last (no validation)".
  nominal_validation false: the val_cases are a nominal-validation subset that is
                     also trained on (the final model watching a few of its own
                     training cases), not held out. Validation runs and is traced as
                     usual (trace/result flagged "nominal_validation": true,
                     "held_out": false), but it selects nothing: a Dice on cases the
                     model trains on measures fit, not generalisation, so picking an
                     epoch by it would only pick the most over-fitted one; best =
                     last, selection "last (nominal validation)", and the checkpoints'
                     metric is "null" so no nominal number reaches a model card.
  patch_size         required: [px, py(, pz)] in voxels, as many as spatial_dims.
  batch_size         2 patches per step.
  samples_per_volume 8 patches per training case per epoch.
  sampler            {"name": "label", "probabilities": null}; or "uniform" /
                     "label". probabilities: [p0, p1, ...] or {"0": p0, ...}; null =
                     0.5 background, 0.5 shared by the foreground classes.
  augment            []: the augment.Augmenter list ({"name", "p", ...} each).
  optimizer          {"name": "adam", "lr": 1e-3, "weight_decay": 0.0,
                     "momentum": 0.9, "beta2": 0.99, "eps": 1e-5, "nesterov": false}.
                     name adam | adamw (decoupled weight decay) | sgd; momentum is
                     SGD's momentum or Adam's beta1 (fastai's Adam: betas 0.9/0.99,
                     eps 1e-5). Weight decay never touches biases and normalization
                     layers' parameters (fastai's wd_bn_bias=False); fastai's Adam is
                     adamw with weight_decay 0.01.
  schedule           {"name": "one_cycle", "pct_start": 0.25, "div": 25.0,
                     "div_final": 1e5, "moms": [0.95, 0.85, 0.95], "power": 0.9}.
                     Stepped every iteration i of T = epochs x batches per epoch,
                     pos = i / T (fastai's fit_one_cycle):
                       one_cycle: pos < pct_start: cos-anneal lr/div -> lr and moms[0]
                                  -> moms[1]; then lr -> lr/div_final and moms[1] ->
                                  moms[2], where cos-anneal(a -> b) at phase fraction f
                                  is a + (1 + cos(pi (1 - f))) (b - a) / 2; moms null
                                  leaves the momentum alone;
                       poly:      lr (1 - pos)^power;   constant: lr.
  epochs             20.
  val_every          1: validate after every val_every-th epoch and after the last.
  ema                0.9: ema_1 = dice_1, ema_n = ema ema_(n-1) + (1 - ema) dice_n;
                     the checkpoint with the highest EMA (first on ties) is "best".
                     0 selects by the raw validation Dice (ema_n = dice_n exactly).
  early_stopping     null (off) or {"patience": N}: stop after the first validation
                     that makes N validations in a row without a new best EMA (the
                     selection metric; ema 0 selects on the raw Dice). Only with held-out
                     validation (nominal validation selects nothing, so nothing stops it).
                     best stays the best seen; last is the stopping epoch; trace/result
                     record "stopped_early" and "stop_epoch" (null when every epoch ran).
  time_limit_s       null (off) or seconds > 0: a wall-clock budget for the epoch loop
                     (validations included). After the first epoch that ends past it the
                     run stops, validating that epoch first if validation runs and it was
                     not due, so the last weights are scored and selectable. A schedule
                     planned over `epochs` is cut where it stands (one-cycle or poly then
                     end above their final lr). "stop_reason" says which rule stopped a
                     run: "patience", "time_limit" or null.
  init_checkpoint    null: a safetensors file whose tensors replace the fresh init
                     (finetuning). Keys and shapes must match the network's state
                     exactly (an error names the first tensor that does not);
                     init_digest is then the digest of those pretrained weights.
  val_at_start       false: validate once before the first step; the row is epoch 0
                     of trace.validations and competes in the selection like any
                     other (first on ties), so a run no later epoch beats keeps the
                     initial (e.g. pretrained) weights as best.
  validate_on        "patches" | "volumes". patches (the patch-based references):
                     samples_per_volume patches per validation case, drawn once before
                     training by the training sampler's rule (seed + 3; zero-padded like
                     training cases), cut into batches of batch_size, no augmentation;
                     every validation scores the same patches. volumes: every whole
                     validation volume by sliding window, Dice per volume averaged (the
                     2D reference; finetuning).
  inference          {"overlap": 0.5, "mode": "hann", "sw_batch_size": 4, "tta": false}
                     for sliding_window.sliding_window_inference on each full
                     validation volume (validate_on "volumes").
  seed               0: model init (nets.build_network(seed)), the global torch RNG
                     (dropout), the patch sampler (seed + 1), the augmenter (seed + 2),
                     the validation patches (seed + 3).
  device             "auto" (cuda when available) | "cpu" | "cuda".
  amp                true: bf16 autocast, only when running on CUDA.
  channels_last      "auto" | true | false: the model and the training batches in
                     channels-last memory layout (channels_last_3d for 3D), which cuDNN's
                     bf16 convolutions prefer. "auto": on CUDA, unless the network has
                     instance norm (use_channels_last). The numbers are the same up to
                     summation order; checkpoints are saved contiguous either way.
  compile            false: torch.compile the training forward, only with torch >= 2
                     on CUDA.
  data_on_gpu        "auto" (memory check, data.GPU_DATA_FRACTION of the free memory)
                     | true | false. Only matters on CUDA.
  metadata           {}: extra string -> string checkpoint metadata (e.g. plan_hash).
  output_dir         null: where outputs go when train() gets no output_dir (the
                     CLI's --output-dir always wins).

Validation Dice (computed here in torch; the TS metrics recompute formally later), each
reference's own: on patches, fastMONAI's accumulated Dice: the argmax of the logits of
every validation patch; per foreground class k, TP, FP and FN summed over all patches,
Dice_k = 2 TP / (2 TP + FP + FN); the reported dice is the mean over foreground classes
(the background is excluded), skipping a class absent from both prediction and truth
everywhere (1.0 when all are absent). On volumes, MONAI's DiceMetric (mean reduction):
the argmax of every validation volume's sliding-window probabilities, Dice per volume
and foreground class, a class whose truth is empty in a volume not counted there, each
volume's mean over its counted classes, then the mean over the volumes
(dice_mean_over_volumes). The validation loss is the training loss: on patches, of each batch's logits,
averaged over the patches; on volumes, of each volume, its sliding-window probabilities
taken as log-probabilities (softmax of log p is p; p floored at 1e-12), averaged over
the volumes: on a volume that is one window it equals the loss of the model's logits.

Output directory:
  checkpoints/best.safetensors, checkpoints/last.safetensors
      model.state_dict() tensors; metadata (strings): format, kind (best|last),
      architecture (the full network config, JSON), epoch, metric (validation Dice or
      "null"), metric_name, ema, seed, init_digest, selection, + config metadata.
  trace.json    {"epochs": [{epoch, loss, lr, seconds, fwd_bwd_seconds,
                data_seconds}], "validations": [{epoch, dice, ema, loss,
                per_class, seconds}], "ema_momentum", "selection", "nominal_validation",
                "held_out", "validate_on" (null without validation), "best": {epoch,
                dice, ema}, "stopped_early", "stop_epoch",
                "timing": {...}}
                seconds is the epoch's wall time (host clock); fwd_bwd_seconds the
                forward + loss + backward + optimizer step of the same steps and
                data_seconds the patch sampling + augmentation, both measured on
                the device's timeline on CUDA (events recorded around each part,
                read after one synchronize at the epoch's end; a part the host is
                too slow to feed shows its idle gaps in its own share) and with
                perf_counter on the CPU. "held_out" is true for real validation
                cases, false for nominal ones (and null without validation).
  result.json   written last, atomically; see `train` for the keys. status "ok", or
                "oom" (exit code 3) or "error" (exit code 1).

Events (NDJSON, one per line on stdout, flushed):
  {"event": "start", "device", "data_device", "train_cases", "val_cases",
   "iterations_per_epoch", "epochs", "init_digest"}
  {"event": "epoch", "epoch": 3, "of": 20, "loss", "lr", "seconds", "fwd_bwd_seconds",
   "data_seconds"}
  {"event": "val", "epoch": 3, "loss", "dice", "ema", "best": bool, "seconds"} (+ "nominal": true
   for nominal validation, where "best" is always false: nothing is selected)
  {"event": "early_stop", "epoch", "patience", "best_epoch"}
  {"event": "time_limit", "epoch", "time_limit_s", "seconds"}
  {"event": "done", "status": "ok", "best_epoch", "best_dice", "best_ema", "seconds"}
  {"event": "error", "status": "oom" | "error", "message"}
Failures also print one line on stderr (MEDPIPE_TRACEBACK=1 adds the traceback).

On the GPU the loop never waits for the device inside an epoch: losses are summed on
the device and read once per epoch; learning rates are host floats; patch positions
come from a CPU generator; the timing events are only read after the epoch's one
synchronize. cudnn.benchmark is on.

Data-parallel: under torchrun (`python3 -m torch.distributed.run --nproc_per_node N -m
medpipe.train ...`, WORLD_SIZE > 1) every rank trains the same model on its own patches
(sampler and augmenter seeds offset by the rank; rank 0 keeps the single-process seeds),
DistributedDataParallel averages the gradients (nccl on CUDA, each rank on cuda:LOCAL_RANK;
gloo on the CPU), and the reported loss is the mean over ranks. The weights stay identical
on every rank and every rank validates, but selection and early stopping use rank 0's Dice
(broadcast), so the ranks cannot part on a last-bit difference; only rank 0 writes the output
directory and emits events (the others write into a scratch folder removed at exit).
result["world_size"] says how many ranks trained. torch.compile is not applied under DDP.

Determinism: on the CPU, the same config and seed give bitwise the same weights, losses
and validation numbers (every CPU op used is deterministic for a given torch build and
thread count; src/cvtrain/determinism.test.ts checks it through the whole pipeline).
Only the timings differ. On CUDA, cudnn.benchmark may pick other kernels run to run, so
results agree to rounding only.
"""

import argparse
import atexit
import contextlib
import json
import math
import os
import resource
import shutil
import sys
import tempfile
import time
import traceback

import torch

from medpipe.augment import Augmenter
from medpipe.data import PatchSampler, choose_data_device, load_cases
from medpipe.losses import build_loss
from medpipe.nets import build_network, patch_multiple
from medpipe.safetensors_io import digest_of_digests, digest_tensor, load_file, save_file, tensor_digests
from medpipe.sliding_window import sliding_window_inference

DEFAULTS = {
    "network": None,
    "loss": {},
    "train_cases": None,
    "val_cases": [],
    "nominal_validation": False,
    "patch_size": None,
    "batch_size": 2,
    "samples_per_volume": 8,
    "sampler": {"name": "label", "probabilities": None},
    "augment": [],
    "optimizer": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0, "momentum": 0.9, "beta2": 0.99, "eps": 1e-5,
                  "nesterov": False},
    "schedule": {"name": "one_cycle", "pct_start": 0.25, "div": 25.0, "div_final": 1e5,
                 "moms": [0.95, 0.85, 0.95], "power": 0.9},
    "epochs": 20,
    "val_every": 1,
    "ema": 0.9,
    "early_stopping": None,
    "time_limit_s": None,
    "validate_on": "patches",
    "inference": {"overlap": 0.5, "mode": "hann", "sw_batch_size": 4, "tta": False},
    "seed": 0,
    "device": "auto",
    "amp": True,
    "channels_last": "auto",
    "compile": False,
    "data_on_gpu": "auto",
    "metadata": {},
    "output_dir": None,
    "init_checkpoint": None,
    "val_at_start": False,
}
REQUIRED = ("network", "train_cases", "patch_size")
NESTED = ("optimizer", "schedule", "inference")  # dicts merged key by key with their defaults
CHECKPOINT_FORMAT = "medpipe.checkpoint/1"
RANK_SEED_STRIDE = 100_003  # sampler/augmenter seed offset per data-parallel rank
EXIT_OOM = 3


# ---------------------------------------------------------------------------- config


def resolve_config(config):
    """The full config: defaults filled in, unknown keys rejected, types normalised."""
    unknown = sorted(set(config) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"config has unknown keys {unknown}; known: {sorted(DEFAULTS)}")
    c = {**DEFAULTS, **config}
    for key in REQUIRED:
        if c[key] is None:
            raise ValueError(f"config needs {key!r}")
    for key in NESTED:
        extra = sorted(set(c[key]) - set(DEFAULTS[key]))
        if extra:
            raise ValueError(f"config {key!r} has unknown keys {extra}; known: {sorted(DEFAULTS[key])}")
        c[key] = {**DEFAULTS[key], **c[key]}
    sampler = c["sampler"]
    if isinstance(sampler, str):
        sampler = {"name": sampler}
    extra = sorted(set(sampler) - {"name", "probabilities"})
    if extra:
        raise ValueError(f"config 'sampler' has unknown keys {extra}; known: ['name', 'probabilities']")
    c["sampler"] = {"name": "label", "probabilities": None, **sampler}
    if not c["train_cases"]:
        raise ValueError("config 'train_cases' is empty")
    for case in list(c["train_cases"]) + list(c["val_cases"]):
        if not isinstance(case, dict) or "image" not in case or "label" not in case:
            raise ValueError(f"a case needs 'image' and 'label' paths, got {case!r}")
    for key in ("epochs", "val_every", "batch_size", "samples_per_volume"):
        if int(c[key]) < 1:
            raise ValueError(f"config {key!r} must be >= 1, got {c[key]}")
        c[key] = int(c[key])
    c["ema"], c["seed"] = float(c["ema"]), int(c["seed"])
    if not 0.0 <= c["ema"] < 1.0:
        raise ValueError(f"config 'ema' must be in [0, 1), got {c['ema']}")
    c["nominal_validation"] = bool(c["nominal_validation"])
    c["val_at_start"] = bool(c["val_at_start"])
    if c["val_at_start"] and not c["val_cases"]:
        raise ValueError("config 'val_at_start' is true but 'val_cases' is empty")
    if c["nominal_validation"] and not c["val_cases"]:
        raise ValueError("config 'nominal_validation' is true but 'val_cases' is empty")
    if c["validate_on"] not in ("patches", "volumes"):
        raise ValueError(f"config 'validate_on' must be \"patches\" or \"volumes\", got {c['validate_on']!r}")
    if c["channels_last"] not in ("auto", True, False):
        raise ValueError(f"config 'channels_last' must be \"auto\", true or false, got {c['channels_last']!r}")
    if c["data_on_gpu"] not in ("auto", True, False):
        raise ValueError(f"config 'data_on_gpu' must be \"auto\", true or false, got {c['data_on_gpu']!r}")
    if c["device"] not in ("auto", "cpu", "cuda"):
        raise ValueError(f"config 'device' must be auto, cpu or cuda, got {c['device']!r}")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in c["metadata"].items()):
        raise ValueError("config 'metadata' must map strings to strings")
    c["patch_size"] = [int(p) for p in c["patch_size"]]
    if c["early_stopping"] is not None:
        es = c["early_stopping"]
        if not isinstance(es, dict) or set(es) != {"patience"} or int(es["patience"]) < 1:
            raise ValueError(f"config 'early_stopping' must be null or {{\"patience\": N >= 1}}, got {es!r}")
        c["early_stopping"] = {"patience": int(es["patience"])}
    if c["time_limit_s"] is not None:
        limit = c["time_limit_s"]
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not limit > 0:
            raise ValueError(f"config 'time_limit_s' must be null or a number of seconds > 0, got {limit!r}")
        c["time_limit_s"] = float(limit)
    return c


def dist_setup(device_name):
    """(rank, world size): under torchrun (WORLD_SIZE > 1) the process group is joined, nccl
    when the run goes to CUDA, gloo on the CPU; otherwise (0, 1)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    if not torch.distributed.is_initialized():
        cuda = device_name != "cpu" and torch.cuda.is_available()
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
    return dist_rank_world()


def dist_rank_world():
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def pick_device(name):
    """A torch.device with an explicit index on CUDA ("cuda:0", not "cuda"), so that
    device comparisons with tensors' devices hold."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("config device 'cuda' but torch.cuda.is_available() is False")
        if "LOCAL_RANK" in os.environ:  # torchrun: one device per rank
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device(name)


# ---------------------------------------------------------------------------- optimisation


NORM_LAYERS = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d, torch.nn.InstanceNorm1d,
               torch.nn.InstanceNorm2d, torch.nn.InstanceNorm3d, torch.nn.GroupNorm, torch.nn.LayerNorm)


def param_groups(model, wd):
    """The parameters in two groups: weight decay `wd`, and none for biases and for the
    parameters of normalization layers (decaying a norm's scale or a bias towards 0
    regularises nothing useful; fastai's wd_bn_bias=False)."""
    decay, plain = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            (plain if isinstance(module, NORM_LAYERS) or name == "bias" else decay).append(p)
    return [g for g in ({"params": decay, "weight_decay": wd}, {"params": plain, "weight_decay": 0.0}) if g["params"]]


def use_channels_last(setting, device, model):
    """The channels_last config resolved for this model on this device. "auto" leaves
    networks with instance norm contiguous: torch's instance norm makes its input
    contiguous, so each norm would add two layout copies (forward and backward) around
    every convolution. eval/bench/augment_cost.py times both layouts on a GPU."""
    if setting != "auto":
        return bool(setting)
    instance = (torch.nn.InstanceNorm1d, torch.nn.InstanceNorm2d, torch.nn.InstanceNorm3d)
    return device.type == "cuda" and not any(isinstance(m, instance) for m in model.modules())


def make_optimizer(model, o):
    name = o["name"]
    lr, wd, mom = float(o["lr"]), float(o["weight_decay"]), float(o["momentum"])
    params = param_groups(model, wd)
    if name in ("adam", "adamw"):
        cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
        return cls(params, lr=lr, betas=(mom, float(o["beta2"])), eps=float(o["eps"]), weight_decay=wd)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=mom, weight_decay=wd, nesterov=bool(o["nesterov"]))
    raise ValueError(f"unknown optimizer {name!r}: expected adam, adamw or sgd")


def _cos_anneal(a, b, f):
    return a + (1.0 + math.cos(math.pi * (1.0 - f))) * (b - a) / 2.0


def schedule_at(step, total, lr, s):
    """(lr, momentum or None) for iteration `step` (0-based) of `total` (module docstring)."""
    pos = step / total
    name = s["name"]
    if name == "constant":
        return lr, None
    if name == "poly":
        return lr * (1.0 - pos) ** float(s["power"]), None
    if name == "one_cycle":
        pct = float(s["pct_start"])
        lo, hi, end = lr / float(s["div"]), lr, lr / float(s["div_final"])
        moms = s["moms"]
        if pos < pct:
            f = pos / pct
            return _cos_anneal(lo, hi, f), (_cos_anneal(moms[0], moms[1], f) if moms else None)
        f = (pos - pct) / (1.0 - pct)
        return _cos_anneal(hi, end, f), (_cos_anneal(moms[1], moms[2], f) if moms else None)
    raise ValueError(f"unknown schedule {name!r}: expected one_cycle, poly or constant")


def set_hyper(optimizer, lr, momentum):
    for group in optimizer.param_groups:
        group["lr"] = lr
        if momentum is not None:
            if "betas" in group:
                group["betas"] = (momentum, group["betas"][1])
            else:
                group["momentum"] = momentum


def ema_update(previous, value, momentum):
    """The smoothed validation metric: the first value as is, then
    momentum * previous + (1 - momentum) * value."""
    return value if previous is None else momentum * previous + (1.0 - momentum) * value


budget_clock = time.perf_counter  # the time_limit_s clock (a module attribute so tests can script it)


def time_is_up(start, limit_s, world, device):
    """Whether the epoch loop begun at `start` (perf_counter) has used its budget. Under DDP
    rank 0's clock decides for every rank (broadcast), so all ranks stop after the same epoch."""
    if limit_s is None:
        return False
    up = budget_clock() - start >= limit_s
    if world > 1:
        flag = torch.tensor([1.0 if up else 0.0], device=device)  # the loss's device: the backend's
        torch.distributed.broadcast(flag, src=0)
        up = bool(flag.item())
    return up


def rank0_value(value, world, device):
    """Rank 0's float on every rank (broadcast under DDP). Validation numbers decide the
    selection and early stopping, which must agree on every rank: cuDNN may pick other
    kernels on each, and a last-bit difference at a near tie would part the ranks."""
    if world == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    torch.distributed.broadcast(t, src=0)
    return float(t.item())


def select_best(values, momentum):
    """(EMA list, 0-based index of the highest EMA, first on ties) of a recorded trace."""
    emas, ema = [], None
    for v in values:
        ema = ema_update(ema, v, momentum)
        emas.append(ema)
    return emas, (max(range(len(emas)), key=lambda i: (emas[i], -i)) if emas else None)


# ---------------------------------------------------------------------------- validation


def dice_counts(pred, label, num_classes):
    """(K-1, 3) float64 [TP, FP, FN] per foreground class, on pred's device."""
    rows = []
    for k in range(1, num_classes):
        p, t = pred == k, label == k
        tp = (p & t).sum()
        rows.append(torch.stack([tp, p.sum() - tp, t.sum() - tp]))
    return torch.stack(rows).double()


def dice_from_counts(counts):
    """(mean foreground Dice, per-class list with None for absent classes)."""
    per_class = []
    for tp, fp, fn in counts.tolist():
        denom = 2 * tp + fp + fn
        per_class.append(None if denom == 0 else 2 * tp / denom)
    present = [d for d in per_class if d is not None]
    return (sum(present) / len(present) if present else 1.0), per_class


def validate_patches(model, sampler, batches, device, amp, loss_fn, layout=None):
    """(accumulated foreground Dice, per-class Dice, loss) over the fixed validation
    patches `batches` of `sampler` (module docstring)."""
    num_classes = model.config["out_channels"]
    model.eval()
    counts = torch.zeros((num_classes - 1, 3), dtype=torch.float64, device=device)
    loss_sum, n = torch.zeros((), dtype=torch.float64, device=device), 0
    with torch.no_grad():
        for batch in batches:
            image, label = sampler.cut(batch, device)
            if layout is not None:
                image = image.contiguous(memory_format=layout)
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16) if amp else contextlib.nullcontext():
                logits = model(image)
            counts += dice_counts(logits.argmax(1), label, num_classes)
            loss_sum += loss_fn(logits, label).double() * len(batch)
            n += len(batch)
    model.train()
    dice, per_class = dice_from_counts(counts.cpu())  # the syncs of a validation: here
    return dice, per_class, float(loss_sum) / n  # and here


def dice_mean_over_volumes(counts):
    """(mean foreground Dice, per-class list) from (V, K-1, 3) [TP, FP, FN] per volume, as
    MONAI's DiceMetric(include_background=False, reduction="mean") averages: a (volume, class)
    whose truth is empty does not count; each volume's Dice is the mean over its counted
    classes, the result the mean over volumes with one at least (0.0 when none has). The
    per-class list: each class's mean over the volumes that hold it (None where none does)."""
    tp, fp, fn = counts.unbind(-1)
    counted = (tp + fn) > 0
    dice = torch.where(counted, 2 * tp / (2 * tp + fp + fn).clamp_min(1), torch.zeros_like(tp))
    per_volume = counted.sum(1)
    has = per_volume > 0
    mean = float((dice.sum(1)[has] / per_volume[has]).mean()) if bool(has.any()) else 0.0
    per_class = [float(dice[counted[:, k], k].mean()) if bool(counted[:, k].any()) else None
                 for k in range(counts.shape[1])]
    return mean, per_class


def validate(model, cases, c, device, amp, loss_fn):
    """(mean foreground Dice over volumes, per-class Dice, loss) over whole validation
    volumes (module docstring)."""
    inf = c["inference"]
    num_classes = model.config["out_channels"]
    model.eval()
    counts = []
    losses = []
    for case in cases:
        probs = sliding_window_inference(case.image, model, c["patch_size"], overlap=float(inf["overlap"]),
                                         mode=inf["mode"], sw_batch_size=int(inf["sw_batch_size"]),
                                         tta=bool(inf["tta"]), device=device, amp=amp)
        label = case.label.to(device, non_blocking=True)
        counts.append(dice_counts(probs.argmax(0), label, num_classes))
        # The training loss of the volume: the probabilities go in as log-probabilities, whose
        # softmax is the probabilities again (the floor keeps a certain 0 finite).
        losses.append(loss_fn(probs.clamp_min(1e-12).log()[None], label[None]))
    model.train()
    dice, per_class = dice_mean_over_volumes(torch.stack(counts).cpu())  # the syncs of a validation: here
    return dice, per_class, float(torch.stack(losses).mean())  # and here


# ---------------------------------------------------------------------------- I/O


def write_json(path, obj):
    """Atomic: a temp file in the same folder, fsynced, renamed over `path`."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _finite(x):
    return x if x is None or math.isfinite(x) else None


def emit_stdout(event):
    print(json.dumps(event, allow_nan=False), flush=True)


def state_tensors(model):
    # contiguous: a channels-last weight has permuted strides; files and digests use the plain layout
    return {name: t.detach().contiguous() for name, t in model.state_dict().items()}


def save_checkpoint(model, path, kind, epoch, dice, ema, c, init_digest, selection):
    meta = {
        "format": CHECKPOINT_FORMAT,
        "kind": kind,
        "architecture": json.dumps(model.config, sort_keys=True),
        "epoch": str(epoch),
        "metric_name": "val_dice",
        "metric": json.dumps(dice),
        "ema": json.dumps(ema),
        "seed": str(c["seed"]),
        "init_digest": init_digest,
        "selection": selection,
        **c["metadata"],
    }
    save_file(state_tensors(model), path, metadata=meta)


def load_init(model, path):
    """Copies the tensors of the safetensors file `path` into `model`: every key of the
    model's state, nothing else, each with the same shape."""
    tensors, _ = load_file(path)
    state = model.state_dict()
    missing = [k for k in state if k not in tensors]
    extra = [k for k in tensors if k not in state]
    if missing or extra:
        name = (missing or extra)[0]
        raise ValueError(f"init_checkpoint {path}: tensor {name!r} is "
                         f"{'missing from the file' if missing else 'not in the network'} "
                         f"({len(missing)} missing, {len(extra)} unexpected)")
    for k, t in state.items():
        if tuple(tensors[k].shape) != tuple(t.shape):
            raise ValueError(f"init_checkpoint {path}: tensor {k!r} has shape {list(tensors[k].shape)}, "
                             f"the network needs {list(t.shape)}")
    model.load_state_dict(tensors, strict=True)


def file_digest(path):
    return digest_of_digests(tensor_digests(path))


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def peak_gpu_mb(device):
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return None


def is_oom(exc):
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    msg = str(exc)
    # cuBLAS and cuDNN report their own allocation failures (CUBLAS_STATUS_ALLOC_FAILED, ...).
    return isinstance(exc, RuntimeError) and any(s in msg for s in ("out of memory", "can't allocate memory",
                                                                    "_STATUS_ALLOC_FAILED"))


# ---------------------------------------------------------------------------- timing


class StepTimer:
    """Per-epoch sums of the data time (sampling + augmentation) and the compute time
    (forward + loss + backward + optimizer step). `mark()` at each boundary; `read()` once
    at the epoch's end. On CUDA the marks are recorded events (no host sync per step) and
    read() synchronizes once; on the CPU they are perf_counter readings."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"
        self.reset()

    def reset(self):
        self.spans = {"data": [], "compute": []}
        self._last = None

    def mark(self, ended=None):
        """A boundary; `ended` names the part that ran since the previous mark (None: the
        first mark of a step)."""
        if self.cuda:
            now = torch.cuda.Event(enable_timing=True)
            now.record()
        else:
            now = time.perf_counter()
        if ended is not None:
            self.spans[ended].append((self._last, now))
        self._last = now

    def read(self):
        """{"data": seconds, "compute": seconds} of the epoch (CUDA: one synchronize)."""
        if self.cuda and self._last is not None:
            self._last.synchronize()  # the last event: every earlier one has completed too
        out = {}
        for part, spans in self.spans.items():
            if self.cuda:
                out[part] = sum(a.elapsed_time(b) for a, b in spans) / 1000.0
            else:
                out[part] = sum(b - a for a, b in spans)
        self.reset()
        return out


# ---------------------------------------------------------------------------- training


def train(config, output_dir=None, emit=emit_stdout):
    """Trains per `config` (module docstring) into `output_dir` and returns the
    result dict that is also written to result.json:

      status "ok" | "oom", selection, best_epoch, best_dice, best_ema, last_epoch,
      last_dice, last_ema, stopped_early, stop_epoch (null unless stopped early),
      stop_reason (null, "patience" or "time_limit"), time_limit_s,
      epochs_run (= last_epoch), init_digest, best_digest, last_digest, final_digest
      (= last), epochs (as configured), iterations_per_epoch, device, data_device, amp,
      compile, channels_last, torch, seed, world_size (1, or the torchrun ranks), nominal_validation
      (bool), held_out (bool, null without validation), checkpoints {best, last}, trace,
      peak_gpu_mb (null on the CPU), peak_rss_mb, timings {load_s, train_s, val_s,
      checkpoint_s, epoch_mean_s, fwd_bwd_s, data_s, total_s}, epoch_over_compute (sum of
      the epochs' wall seconds over the sum of
      their fwd_bwd_seconds; null if that is 0), oom (bool); with status "oom" also
      message and hint. With nominal validation best_dice and best_ema are null (the
      nominal numbers are last_dice / last_ema and the trace's validations).

    Other failures raise (the CLI turns them into status "error", exit code 1)."""
    t_start = time.perf_counter()
    c = resolve_config(config)
    out = output_dir if output_dir is not None else c["output_dir"]
    if out is None:
        raise ValueError("no output directory: pass output_dir or set config 'output_dir'")
    out = os.fspath(out)
    rank, world = dist_setup(c["device"])
    if rank > 0:  # only rank 0 writes and reports (module docstring)
        out, emit = tempfile.mkdtemp(prefix=f"medpipe-rank{rank}-"), (lambda event: None)
        atexit.register(shutil.rmtree, out, True)
    os.makedirs(os.path.join(out, "checkpoints"), exist_ok=True)
    with contextlib.suppress(FileNotFoundError):  # a stale result must not pass for this run's
        os.unlink(os.path.join(out, "result.json"))
    device = pick_device(c["device"])
    on_cuda = device.type == "cuda"
    amp = bool(c["amp"]) and on_cuda and torch.cuda.is_available()
    use_compile = bool(c["compile"]) and on_cuda and int(torch.__version__.split(".")[0]) >= 2
    result = {"status": "running", "device": str(device), "torch": torch.__version__, "seed": c["seed"],
              "world_size": world}
    timings = {"load_s": 0.0, "train_s": 0.0, "val_s": 0.0, "checkpoint_s": 0.0}
    if on_cuda:
        torch.backends.cudnn.benchmark = True  # fixed patch shapes: pick the fastest conv once
        torch.cuda.reset_peak_memory_stats(device)
    try:
        return _train(c, out, device, amp, use_compile, emit, result, timings, t_start)
    except Exception as e:  # noqa: BLE001 - only OOM is handled; everything else re-raises
        if not is_oom(e):
            raise
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = "reduce patch_size or batch_size (or sw_batch_size for validation)"
        sharing = int(os.environ.get("MEDPIPE_STAGES_PER_GPU") or 1)  # set by the engine
        if sharing > 1:
            hint += f"; up to {sharing} stages share this GPU (pipeline run --stages-per-gpu 1 gives each its own)"
        result.update({
            "status": "oom", "oom": True, "message": f"out of memory: {message}",
            "hint": hint,
            "peak_gpu_mb": peak_gpu_mb(device), "peak_rss_mb": peak_rss_mb(),
            "timings": {**timings, "total_s": time.perf_counter() - t_start},
        })
        write_json(os.path.join(out, "result.json"), result)
        emit({"event": "error", "status": "oom", "message": result["message"]})
        return result


def _train(c, out, device, amp, use_compile, emit, result, timings, t_start):
    seed = c["seed"]
    torch.manual_seed(seed)  # dropout and anything else on the global RNG

    # Model: built on the CPU from a forked RNG seeded with `seed`, so the init depends
    # only on (network config, seed); its digest proves a fresh init per fold.
    model = build_network(c["network"], seed=seed)
    if c["init_checkpoint"] is not None:
        load_init(model, c["init_checkpoint"])
    init_digest = digest_of_digests({k: digest_tensor(t) for k, t in state_tensors(model).items()})
    model = model.to(device).train()
    net = model.config
    num_classes, spatial_dims = net["out_channels"], net["spatial_dims"]
    if len(c["patch_size"]) != spatial_dims:
        raise ValueError(f"patch_size {c['patch_size']} has {len(c['patch_size'])} axes for a {spatial_dims}D network")
    multiple = patch_multiple(net)
    if any(p % multiple for p in c["patch_size"]):
        raise ValueError(f"patch_size {c['patch_size']}: every axis must be a multiple of {multiple}, the product of "
                         f"the UNet's strides {net['strides']}")
    channels_last = use_channels_last(c["channels_last"], device, model)
    layout = (torch.channels_last_3d if spatial_dims == 3 else torch.channels_last) if channels_last else None
    if layout is not None:
        model = model.to(memory_format=layout)
    forward = torch.compile(model) if use_compile else model
    rank, world = dist_rank_world()
    if world > 1:  # gradients averaged over the ranks at every backward
        device_ids = [device.index] if device.type == "cuda" else None
        forward = torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)

    # Data: loaded once, on the GPU when it fits.
    t0 = time.perf_counter()
    # One placement for training and validation volumes, decided on the files' sizes
    # (an upper bound: float64 images are narrowed to float32 on load).
    on_gpu = c["data_on_gpu"]
    if on_gpu == "auto":
        nbytes = sum(os.path.getsize(case[k]) for case in c["train_cases"] + c["val_cases"] for k in ("image", "label"))
        on_gpu = choose_data_device(nbytes, device).type == "cuda"
    train_cases, data_device = load_cases(c["train_cases"], spatial_dims, num_classes, c["patch_size"], device,
                                          bool(on_gpu), index_classes=c["sampler"]["name"] == "label")
    on_patches = c["validate_on"] == "patches"
    val_cases, _ = load_cases(c["val_cases"], spatial_dims, num_classes, c["patch_size"] if on_patches else None,
                              device, bool(on_gpu), index_classes=on_patches and c["sampler"]["name"] == "label")
    for case in train_cases + val_cases:
        if case.image.shape[0] != net["in_channels"]:
            raise ValueError(f"{case.id}: {case.image.shape[0]} image channels, the network takes {net['in_channels']}")
    sampler = PatchSampler(train_cases, c["patch_size"], c["samples_per_volume"], c["batch_size"],
                           c["sampler"]["name"], c["sampler"]["probabilities"], seed=seed + 1 + RANK_SEED_STRIDE * rank,
                           num_classes=num_classes)
    augment = Augmenter(c["augment"], seed=seed + 2 + RANK_SEED_STRIDE * rank, device=device) if c["augment"] else None
    val_sampler, val_batches = None, None
    if on_patches and val_cases:  # no rank offset: every rank validates on the same patches
        val_sampler = PatchSampler(val_cases, c["patch_size"], c["samples_per_volume"], c["batch_size"],
                                   c["sampler"]["name"], c["sampler"]["probabilities"], seed=seed + 3,
                                   num_classes=num_classes)
        val_batches = val_sampler.fixed_batches()

    def run_validation():
        if val_batches is not None:
            dice, per_class, loss = validate_patches(model, val_sampler, val_batches, device, amp, loss_fn, layout)
        else:
            dice, per_class, loss = validate(model, val_cases, c, device, amp, loss_fn)
        return rank0_value(dice, world, device), per_class, loss
    timings["load_s"] = time.perf_counter() - t0

    loss_fn = build_loss(c["loss"])
    optimizer = make_optimizer(model, c["optimizer"])
    epochs, per_epoch = c["epochs"], sampler.batches_per_epoch()
    total_steps = epochs * per_epoch
    base_lr = float(c["optimizer"]["lr"])
    autocast = (lambda: torch.autocast(device_type="cuda", dtype=torch.bfloat16)) if amp else contextlib.nullcontext
    validating = len(val_cases) > 0
    nominal = c["nominal_validation"]
    selecting = validating and not nominal  # nominal validation is watched, never selected on
    selection = "best ema" if selecting else ("last (nominal validation)" if nominal else "last (no validation)")
    held_out = (not nominal) if validating else None
    ckpt = {k: os.path.join(out, "checkpoints", f"{k}.safetensors") for k in ("best", "last")}
    trace = {"epochs": [], "validations": [], "ema_momentum": float(c["ema"]), "selection": selection,
             "nominal_validation": nominal, "held_out": held_out,
             "validate_on": c["validate_on"] if validating else None, "best": None}
    result.update({"data_device": str(data_device), "amp": amp, "compile": use_compile, "channels_last": channels_last,
                   "init_digest": init_digest,
                   "epochs": epochs, "iterations_per_epoch": per_epoch, "nominal_validation": nominal,
                   "held_out": held_out})
    emit({"event": "start", "device": str(device), "data_device": str(data_device),
          "train_cases": len(train_cases), "val_cases": len(val_cases), "iterations_per_epoch": per_epoch,
          "epochs": epochs, "init_digest": init_digest})

    step, ema, best, last_val = 0, None, None, None
    patience = c["early_stopping"]["patience"] if c["early_stopping"] and selecting else None
    stale, stop_epoch, stop_reason = 0, None, None  # stale: validations since the last new best
    loop_start = budget_clock()
    timer = StepTimer(device)
    fwd_bwd_total = 0.0
    if c["val_at_start"]:  # epoch 0: the initial weights, selectable like any epoch
        t0 = time.perf_counter()
        dice, per_class, val_loss = run_validation()
        ema, seconds = dice, time.perf_counter() - t0
        timings["val_s"] += seconds
        last_val = {"epoch": 0, "dice": dice, "ema": ema}
        trace["validations"].append({**last_val, "loss": val_loss, "per_class": per_class, "seconds": seconds})
        emit({"event": "val", "epoch": 0, "loss": val_loss, "dice": dice, "ema": ema, "best": selecting,
              "seconds": seconds,
              **({"nominal": True} if nominal else {})})
        if selecting:
            best = dict(last_val)
            save_checkpoint(model, ckpt["best"], "best", 0, dice, ema, c, init_digest, selection)
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        batches = iter(sampler.epoch(device))
        while True:
            timer.mark()  # data: sampling + augmentation
            try:
                image, label = next(batches)
            except StopIteration:
                break
            if augment is not None:
                image, label = augment(image, label)
            if layout is not None:
                image = image.contiguous(memory_format=layout)
            timer.mark("data")  # compute: forward + loss + backward + step
            lr, momentum = schedule_at(step, total_steps, base_lr, c["schedule"])
            set_hyper(optimizer, lr, momentum)
            with autocast():
                logits = forward(image)
            loss = loss_fn(logits, label)  # float32 inside, also under autocast
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += loss.detach()  # stays on the device: no sync per step
            timer.mark("compute")
            step += 1
        if world > 1:
            torch.distributed.all_reduce(loss_sum)
            loss_sum /= world
        mean_loss = float(loss_sum) / per_epoch  # the one host sync of the epoch
        parts = timer.read()  # events read after that sync (one more synchronize, already done)
        seconds = time.perf_counter() - t0
        timings["train_s"] += seconds
        fwd_bwd_total += parts["compute"]
        timings["fwd_bwd_s"] = timings.get("fwd_bwd_s", 0.0) + parts["compute"]
        timings["data_s"] = timings.get("data_s", 0.0) + parts["data"]
        if not math.isfinite(mean_loss):
            raise FloatingPointError(f"epoch {epoch}: the training loss is {mean_loss}; try a lower lr")
        row = {"epoch": epoch, "loss": mean_loss, "lr": lr, "seconds": seconds,
               "fwd_bwd_seconds": parts["compute"], "data_seconds": parts["data"]}
        trace["epochs"].append(row)
        emit({"event": "epoch", "epoch": epoch, "of": epochs, "loss": mean_loss, "lr": lr, "seconds": seconds,
              "fwd_bwd_seconds": parts["compute"], "data_seconds": parts["data"]})

        out_of_time = epoch < epochs and time_is_up(loop_start, c["time_limit_s"], world, device)
        if validating and (epoch % c["val_every"] == 0 or epoch == epochs or out_of_time):
            t0 = time.perf_counter()
            dice, per_class, val_loss = run_validation()
            ema = ema_update(ema, dice, c["ema"])
            seconds = time.perf_counter() - t0
            timings["val_s"] += seconds
            improved = selecting and (best is None or ema > best["ema"])
            last_val = {"epoch": epoch, "dice": dice, "ema": ema}
            trace["validations"].append({**last_val, "loss": val_loss, "per_class": per_class, "seconds": seconds})
            emit({"event": "val", "epoch": epoch, "loss": val_loss, "dice": dice, "ema": ema, "best": improved,
                  "seconds": seconds,
                  **({"nominal": True} if nominal else {})})
            if improved:
                best = dict(last_val)
                t0 = time.perf_counter()
                save_checkpoint(model, ckpt["best"], "best", epoch, dice, ema, c, init_digest, selection)
                timings["checkpoint_s"] += time.perf_counter() - t0
            stale = 0 if improved else stale + 1
            if patience is not None and stale >= patience and epoch < epochs:
                stop_epoch, stop_reason = epoch, "patience"
                emit({"event": "early_stop", "epoch": epoch, "patience": patience, "best_epoch": best["epoch"]})
                break
        if out_of_time:
            stop_epoch, stop_reason = epoch, "time_limit"
            emit({"event": "time_limit", "epoch": epoch, "time_limit_s": c["time_limit_s"],
                  "seconds": budget_clock() - loop_start})
            break

    # The last weights; without (real) validation they are also "best" (no selection made).
    # Nominal numbers stay out of the checkpoints' metadata (they are no performance claim).
    epochs = stop_epoch or epochs  # from here on: the epochs that ran
    trace.update({"stopped_early": stop_epoch is not None, "stop_epoch": stop_epoch, "stop_reason": stop_reason})
    t0 = time.perf_counter()
    last_dice = last_val["dice"] if last_val else None
    save_checkpoint(model, ckpt["last"], "last", epochs, None if nominal else last_dice, None if nominal else ema, c,
                    init_digest, selection)
    if not selecting:
        save_checkpoint(model, ckpt["best"], "best", epochs, None, None, c, init_digest, selection)
        best = {"epoch": epochs, "dice": None, "ema": None}
    best_digest, last_digest = file_digest(ckpt["best"]), file_digest(ckpt["last"])
    timings["checkpoint_s"] += time.perf_counter() - t0
    trace["best"] = best
    write_json(os.path.join(out, "trace.json"), trace)

    timings["epoch_mean_s"] = timings["train_s"] / epochs
    timings["total_s"] = time.perf_counter() - t_start
    result["epoch_over_compute"] = timings["train_s"] / fwd_bwd_total if fwd_bwd_total > 0 else None
    result.update({
        "status": "ok", "oom": False, "selection": selection, "stopped_early": stop_epoch is not None,
        "stop_epoch": stop_epoch, "stop_reason": stop_reason, "time_limit_s": c["time_limit_s"], "epochs_run": epochs,
        "best_epoch": best["epoch"], "best_dice": _finite(best["dice"]), "best_ema": _finite(best["ema"]),
        "last_epoch": epochs, "last_dice": _finite(last_dice), "last_ema": _finite(ema) if validating else None,
        "best_digest": best_digest, "last_digest": last_digest, "final_digest": last_digest,
        "checkpoints": {"best": "checkpoints/best.safetensors", "last": "checkpoints/last.safetensors"},
        "trace": "trace.json",
        "peak_gpu_mb": peak_gpu_mb(device), "peak_rss_mb": peak_rss_mb(), "timings": timings,
    })
    write_json(os.path.join(out, "result.json"), result)  # last: its presence means done
    emit({"event": "done", "status": "ok", "best_epoch": best["epoch"], "best_dice": result["best_dice"],
          "best_ema": result["best_ema"], "seconds": timings["total_s"]})
    return result


# ---------------------------------------------------------------------------- CLI


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m medpipe.train", description=__doc__.split("\n")[0])
    parser.add_argument("--config", required=True, help="config JSON file (see the module docstring)")
    parser.add_argument("--output-dir", required=True, help="where checkpoints, trace.json, result.json go")
    args = parser.parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    try:
        with open(args.config, encoding="utf-8") as f:
            config = json.load(f)
        if not isinstance(config, dict):
            raise ValueError(f"{args.config}: the config must be a JSON object")
        result = train(config, args.output_dir)
    except Exception as e:  # noqa: BLE001 - one line on stderr, a result that says why
        message = " ".join(str(e).split()) or type(e).__name__
        with contextlib.suppress(Exception):
            write_json(os.path.join(args.output_dir, "result.json"),
                       {"status": "error", "oom": False, "message": message, "error_type": type(e).__name__,
                        "peak_rss_mb": peak_rss_mb()})
        with contextlib.suppress(Exception):
            emit_stdout({"event": "error", "status": "error", "message": message})
        if os.environ.get("MEDPIPE_TRACEBACK"):
            traceback.print_exc()
        print(f"medpipe.train: {type(e).__name__}: {message}", file=sys.stderr)
        return 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    if result["status"] == "oom":
        print(f"medpipe.train: {result['message']} ({result['hint']})", file=sys.stderr)
        return EXIT_OOM
    return 0


if __name__ == "__main__":
    sys.exit(main())
