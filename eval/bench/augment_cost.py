"""What one training batch's data pipeline costs beside its forward+backward (issue 5's
"epoch wall time <= 1.25 x forward+backward": the data side may take at most a quarter of
the compute). Times, on one device, for the reference batch (4 x 1 x 160 x 160 x 80, the
reference UNet and the plan's default augmentations):

  cut         the sampler cutting a batch from volumes on the device
  <name>      each augmentation alone, at the plan's probability (what training pays on
              average) and at p = 1 (what one selected batch pays)
  augment     the whole list as the trainer runs it
  fwd_bwd     forward (bf16 autocast on CUDA, the trainer's layout), loss, backward and
              an AdamW step; then the same step in the other memory layout
              (fwd_bwd_channels_last or fwd_bwd_contiguous), on CUDA in float32
              (fwd_bwd_fp32), and with --compile under torch.compile

Usage (Debian's python3 on the CPU, or the GPU machine's):
  python3 eval/bench/augment_cost.py [--device cpu|cuda] [--batch 4] [--patch 160,160,80]
                                     [--repeats 10] [--threads N] [--compile]
Prints one JSON object. Every figure is the mean over --repeats timed runs after two
warm-up runs, in milliseconds (the mean: at the plan's probabilities a transform costs
nothing in most batches and much in a few); CUDA timings synchronize before each clock read.
"""

import argparse
import contextlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "py"))

import torch  # noqa: E402

from medpipe.augment import Augmenter  # noqa: E402
from medpipe.data import Case, PatchSampler, possible_centres  # noqa: E402
from medpipe.losses import build_loss  # noqa: E402
from medpipe.nets import build_network  # noqa: E402
from medpipe.train import DEFAULTS, make_optimizer, use_channels_last  # noqa: E402

# The plan's defaults (src/plan/defaults.ts defaultAugment, 3D).
PLAN_AUGMENT = [
    {"name": "flip", "axes": [0, 1, 2], "p": 0.5},
    {"name": "affine", "rotate": 0.26, "scale": 0.1, "translate": 0, "p": 0.2},
    {"name": "gamma", "range": [0.7, 1.5], "p": 0.3},
    {"name": "noise", "std": 0.1, "p": 0.15},
    {"name": "blur", "sigma": [0.5, 1.0], "p": 0.2},
    {"name": "bias_field", "coeff": 0.3, "p": 0.1},
    {"name": "shift", "offset": 0.1, "p": 0.5},
]

# The plan's default optimizer (src/plan/build.ts) over the trainer's defaults.
PLAN_OPTIMIZER = {**DEFAULTS["optimizer"], "name": "adamw", "lr": 1e-3, "weight_decay": 0.01}


def timed(fn, device, repeats):
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    for _ in range(2):
        fn()
    sync()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        out.append((time.perf_counter() - t0) * 1000)
    return sum(out) / len(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--patch", default="160,160,80")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--compile", action="store_true", help="also time the step under torch.compile (torch >= 2)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    patch = [int(v) for v in a.patch.split(",")]
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True

    # Two volumes twice the patch on the device, as the trainer holds them.
    g = torch.Generator().manual_seed(0)
    shape = [2 * p for p in patch]
    cases = []
    for i in range(2):
        label = (torch.rand(shape, generator=g) > 0.7).to(torch.uint8)
        image = (label.float() + 0.3 * torch.randn(shape, generator=g))[None]
        centres = possible_centres(label.numpy(), patch, num_classes=2)
        cases.append(Case(f"c{i}", image.to(device), label.to(device), **centres))
    sampler = PatchSampler(cases, patch, samples_per_volume=a.batch, batch_size=a.batch, seed=1)
    plan = sampler.epoch_plan()[0]
    image, label = sampler.cut(plan, device)

    result = {"device": str(torch.cuda.get_device_name(device) if cuda else "cpu"), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "batch": a.batch, "patch": patch, "ms": {}}
    ms = result["ms"]
    ms["cut"] = timed(lambda: sampler.cut(plan, device), device, a.repeats)
    for spec in PLAN_AUGMENT:
        at_plan = Augmenter([spec], seed=2, device=device)
        always = Augmenter([{**spec, "p": 1.0}], seed=2, device=device)
        ms[spec["name"]] = timed(lambda aug=at_plan: aug(image, label), device, a.repeats)
        ms[spec["name"] + "@p1"] = timed(lambda aug=always: aug(image, label), device, a.repeats)
    augment = Augmenter(PLAN_AUGMENT, seed=2, device=device)
    ms["augment"] = timed(lambda: augment(image, label), device, a.repeats)

    loss_fn = build_loss({"name": "dice_ce", "include_background": False, "batch": True})

    def network():
        return build_network({"spatial_dims": 3, "in_channels": 1, "out_channels": 2}, seed=0).to(device).train()

    def fwd_bwd(amp, channels_last, compiled=False):
        model = network()
        layout = torch.channels_last_3d if channels_last else torch.contiguous_format
        model = model.to(memory_format=layout)
        forward = torch.compile(model) if compiled else model
        x = image.contiguous(memory_format=layout)
        opt = make_optimizer(model, PLAN_OPTIMIZER)
        autocast = (lambda: torch.autocast(device_type="cuda", dtype=torch.bfloat16)) if amp else contextlib.nullcontext

        def step():
            with autocast():
                logits = forward(x)
            loss = loss_fn(logits, label)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return timed(step, device, max(3, a.repeats // 2))

    # The trainer's settings first (the ratio below uses them), then the other layout, and
    # on CUDA float32: the trainer's choices a first GPU run should confirm (channels-last
    # suits cuDNN's bf16 kernels, but instance norm makes its input contiguous).
    trainer_layout = use_channels_last("auto", device, network())
    result["channels_last"] = trainer_layout
    ms["fwd_bwd"] = fwd_bwd(amp=cuda, channels_last=trainer_layout)
    other = "fwd_bwd_contiguous" if trainer_layout else "fwd_bwd_channels_last"
    ms[other] = fwd_bwd(amp=cuda, channels_last=not trainer_layout)
    if cuda:
        ms["fwd_bwd_fp32"] = fwd_bwd(amp=False, channels_last=trainer_layout)
    if a.compile:
        ms["fwd_bwd_compiled"] = fwd_bwd(amp=cuda, channels_last=trainer_layout, compiled=True)
    data = ms["cut"] + ms["augment"]
    result["data_over_compute"] = data / ms["fwd_bwd"]
    result["epoch_over_compute_bound"] = 1 + result["data_over_compute"]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
