"""Full-volume sliding-window prediction of preprocessed cases with a trained checkpoint.

    python -m medpipe.predict --checkpoint CKPT --cases CASES.json --output-dir DIR \
        [--plan plan.json] [--inference JSON] [--device auto] [--probabilities]
    # or: from medpipe.predict import predict; summary = predict(checkpoint, cases, out, inference)

The network is rebuilt from the checkpoint's own `architecture` metadata (the full
nets.build_network config train.py writes), so a checkpoint is all the model there is:
no plan is needed to know its layers, and no pickle is involved anywhere.

Inputs:
  CASES.json   a JSON list of {"id", "image"} (or {"cases": [...]}): image.npy paths of
               the preprocessed data contract (schemas/preprocessed.md): Fortran order,
               shape (nx, ny[, nz], C); a file without the channel axis is one channel.
               Relative paths are taken against the folder of CASES.json.
  inference    {"patch_size", "overlap", "mode", "sw_batch_size", "tta"}: the plan's
               `inference` section plus its `patch_size`. --plan supplies both from a
               plan.json; --inference (a JSON object, inline or a file path) overrides
               key by key. patch_size is required one way or the other.

Outputs (DIR), per case, on the preprocessed grid:
  <id>.label.npy  uint8 argmax of the probabilities (ties: the lowest class), Fortran,
                  shape (nx, ny[, nz]): arr[x, y, z] is voxel (x, y, z), as image.npy.
  <id>.probs.npy  only with --probabilities: float16 per-class probabilities, Fortran,
                  shape (nx, ny[, nz], K) (the channel-last layout of image.npy, so the
                  TS side reads class k as one contiguous block).
  predict.json    written last, atomically: checkpoint path, weights_digest (the
                  safetensors_io digest_of_digests of the checkpoint's tensors: the same
                  number train.py reports as best_digest/last_digest), the checkpoint's
                  kind/epoch/metric, architecture, inference settings, device, torch,
                  per-case {id, image, shape, label, probabilities, seconds}, timings,
                  peak_rss_mb, peak_gpu_mb.

Events (NDJSON on stdout, flushed):
  {"event": "start", "device", "cases", "weights_digest"}
  {"event": "case", "id", "index", "of", "shape", "seconds"}
  {"event": "done", "cases", "seconds"}
  {"event": "error", "status": "oom" | "error", "message"}   (exit code 3 | 1)

Determinism: on the CPU the same checkpoint and image give the same bytes (the model is
in eval mode and nothing is random). On CUDA, bf16 autocast is used as in training.
"""

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
import traceback

import numpy as np
import torch

from medpipe.nets import build_network
from medpipe.safetensors_io import digest_of_digests, load_file, tensor_digests
from medpipe.sliding_window import sliding_window_inference
from medpipe.train import emit_stdout, is_oom, peak_gpu_mb, peak_rss_mb, pick_device, write_json

INFERENCE_DEFAULTS = {"patch_size": None, "overlap": 0.5, "mode": "hann", "sw_batch_size": 4, "tta": False}
# plan.inference keys that matter only after prediction (native space, TS side)
POSTPROCESS_KEYS = ("keep_largest_component", "threshold")
EXIT_OOM = 3


# ---------------------------------------------------------------------------- inputs


def resolve_inference(plan=None, override=None):
    """The sliding-window settings: defaults < plan (inference + patch_size) < override.
    Unknown keys are an error, except the post-processing ones a plan carries."""
    s = dict(INFERENCE_DEFAULTS)
    layers = []
    if plan is not None:
        layers.append({**plan.get("inference", {}), "patch_size": plan.get("patch_size")})
    if override:
        layers.append(dict(override))
    for layer in layers:
        for key, value in layer.items():
            if key in POSTPROCESS_KEYS:
                continue
            if key not in INFERENCE_DEFAULTS:
                raise ValueError(f"inference has unknown key {key!r}; known: {sorted(INFERENCE_DEFAULTS)}")
            if value is not None:
                s[key] = value
    if s["patch_size"] is None:
        raise ValueError("no patch_size: give --plan or an --inference object with patch_size")
    s["patch_size"] = [int(p) for p in s["patch_size"]]
    s["overlap"], s["sw_batch_size"], s["tta"] = float(s["overlap"]), int(s["sw_batch_size"]), bool(s["tta"])
    return s


def load_model(checkpoint, device):
    """(model in eval mode on `device`, metadata, weights digest) from a safetensors
    checkpoint written by train.py (or a package's weights.safetensors)."""
    tensors, meta = load_file(checkpoint)
    if "architecture" not in meta:
        raise ValueError(f"{checkpoint}: no 'architecture' metadata; not a medpipe checkpoint")
    model = build_network(json.loads(meta["architecture"]))
    # strict: a missing or extra tensor means the architecture and the weights disagree
    model.load_state_dict(tensors, strict=True)
    digest = digest_of_digests(tensor_digests(checkpoint))
    return model.to(device).eval(), meta, digest


def read_cases(path):
    with open(path, encoding="utf-8") as f:
        cases = json.load(f)
    if isinstance(cases, dict):
        cases = cases.get("cases")
    if not isinstance(cases, list) or not cases:
        raise ValueError(f"{path}: expected a non-empty list of {{id, image}} (or {{\"cases\": [...]}})")
    base = os.path.dirname(os.path.abspath(path))
    out = []
    for c in cases:
        if not isinstance(c, dict) or not isinstance(c.get("id"), str) or not isinstance(c.get("image"), str):
            raise ValueError(f"{path}: every case needs string 'id' and 'image', got {c!r}")
        out.append({"id": c["id"], "image": os.path.join(base, c["image"])})
    ids = [c["id"] for c in out]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate case ids")
    return out


def image_array(image, spatial_dims, name="image"):
    """(C, *spatial) float32 C-contiguous from an image.npy array (x, y[, z][, C])."""
    if image.ndim == spatial_dims:
        image = image[..., None]
    if image.ndim == spatial_dims + 2 and image.shape[spatial_dims] == 1:
        image = image.reshape(image.shape[:spatial_dims] + image.shape[-1:], order="A")  # 2D with a z of 1
    if image.ndim != spatial_dims + 1:
        raise ValueError(f"{name}: shape {image.shape} is not (x, y{', z' if spatial_dims == 3 else ''}, C)")
    if not np.issubdtype(image.dtype, np.number):
        raise ValueError(f"{name}: dtype {image.dtype} is not numeric")
    # Channel axis to the front, one copy into C order: arr[c, x, y, z] is voxel (x, y, z).
    return np.ascontiguousarray(np.moveaxis(image, -1, 0), dtype=np.float32)


def save_npy(path, array):
    """np.save, atomically (temp file + rename): a reader never sees half an array."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


# ---------------------------------------------------------------------------- prediction


def predict_volume(model, image, s, device):
    """Probabilities (K, *spatial) float32 on the CPU for one (C, *spatial) image."""
    amp = device.type == "cuda"
    probs = sliding_window_inference(image, model, s["patch_size"], overlap=s["overlap"], mode=s["mode"],
                                     sw_batch_size=s["sw_batch_size"], tta=s["tta"], device=device, amp=amp)
    return probs.cpu()


def channel_last_fortran(tensor):
    """A (K, *spatial) tensor as a Fortran (*spatial, K) numpy array, so that
    arr[x, y, z, k] is voxel (x, y, z) of class k and each class is one block."""
    return np.asfortranarray(np.moveaxis(tensor.numpy(), 0, -1))


def predict(checkpoint, cases, output_dir, inference, device="auto", probabilities=False, emit=emit_stdout):
    """Predicts every case (list of {"id", "image"}) into `output_dir` and returns the
    predict.json dict (module docstring)."""
    t_start = time.perf_counter()
    os.makedirs(output_dir, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):  # a stale summary must not pass for this run's
        os.unlink(os.path.join(output_dir, "predict.json"))
    dev = pick_device(device)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t0 = time.perf_counter()
    model, meta, digest = load_model(checkpoint, dev)
    load_s = time.perf_counter() - t0
    net = model.config
    dims, num_classes = net["spatial_dims"], net["out_channels"]
    if len(inference["patch_size"]) != dims:
        raise ValueError(f"patch_size {inference['patch_size']} does not fit a {dims}D network")
    if num_classes > 256:
        raise ValueError(f"{num_classes} classes do not fit a uint8 label map")
    emit({"event": "start", "device": str(dev), "cases": len(cases), "weights_digest": digest})

    rows = []
    for i, case in enumerate(cases):
        t0 = time.perf_counter()
        raw = np.load(case["image"], allow_pickle=False)
        image = image_array(raw, dims, case["image"])
        if image.shape[0] != net["in_channels"]:
            raise ValueError(f"{case['id']}: {image.shape[0]} image channels, the network takes {net['in_channels']}")
        probs = predict_volume(model, image, inference, dev)
        spatial = list(image.shape[1:])
        # argmax takes the first maximum: ties go to the lowest class, as on the TS side
        label = np.asfortranarray(probs.argmax(0).numpy().astype(np.uint8))
        label_name = f"{case['id']}.label.npy"
        save_npy(os.path.join(output_dir, label_name), label)
        probs_name = None
        if probabilities:
            probs_name = f"{case['id']}.probs.npy"
            save_npy(os.path.join(output_dir, probs_name), channel_last_fortran(probs.half()))
        seconds = time.perf_counter() - t0
        rows.append({"id": case["id"], "image": case["image"], "shape": spatial, "label": label_name,
                     "probabilities": probs_name, "seconds": seconds})
        emit({"event": "case", "id": case["id"], "index": i + 1, "of": len(cases), "shape": spatial,
              "seconds": seconds})

    total = time.perf_counter() - t_start
    summary = {
        "status": "ok",
        "checkpoint": os.path.abspath(checkpoint),
        "weights_digest": digest,
        "checkpoint_kind": meta.get("kind"),
        "checkpoint_epoch": int(meta["epoch"]) if meta.get("epoch", "").isdigit() else None,
        "init_digest": meta.get("init_digest"),
        "architecture": net,
        "inference": inference,
        "device": str(dev),
        "torch": torch.__version__,
        "num_classes": num_classes,
        "cases": rows,
        "timings": {"load_s": load_s, "predict_s": sum(r["seconds"] for r in rows), "total_s": total},
        "peak_rss_mb": peak_rss_mb(),
        "peak_gpu_mb": peak_gpu_mb(dev),
    }
    write_json(os.path.join(output_dir, "predict.json"), summary)  # last: its presence means done
    emit({"event": "done", "cases": len(rows), "seconds": total})
    return summary


# ---------------------------------------------------------------------------- CLI


def _json_arg(value):
    """An inline JSON object, or the path of a file holding one."""
    if value.lstrip().startswith("{"):
        obj = json.loads(value)
    else:
        with open(value, encoding="utf-8") as f:
            obj = json.load(f)
    if not isinstance(obj, dict):
        raise ValueError(f"--inference must be a JSON object, got {type(obj).__name__}")
    return obj


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m medpipe.predict", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="safetensors checkpoint with architecture metadata")
    parser.add_argument("--cases", required=True, help="JSON list of {id, image}")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--plan", help="plan.json: inference settings and patch_size")
    parser.add_argument("--inference", help="JSON object (inline or a file): overrides the plan's settings")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--probabilities", action="store_true", help="also write <id>.probs.npy (float16)")
    args = parser.parse_args(argv)
    try:
        plan = None
        if args.plan:
            with open(args.plan, encoding="utf-8") as f:
                plan = json.load(f)
        inference = resolve_inference(plan, _json_arg(args.inference) if args.inference else None)
        predict(args.checkpoint, read_cases(args.cases), args.output_dir, inference, args.device, args.probabilities)
    except Exception as e:  # noqa: BLE001 - one line on stderr, an event that says why
        oom = is_oom(e)
        message = " ".join(str(e).split()) or type(e).__name__
        with contextlib.suppress(Exception):
            emit_stdout({"event": "error", "status": "oom" if oom else "error", "message": message})
        if os.environ.get("MEDPIPE_TRACEBACK"):
            traceback.print_exc()
        hint = " (reduce sw_batch_size or patch_size, or turn tta off)" if oom else ""
        print(f"medpipe.predict: {type(e).__name__}: {message}{hint}", file=sys.stderr)
        return EXIT_OOM if oom else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
