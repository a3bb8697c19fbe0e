"""The torch backend of the infer skill: one process that predicts many preprocessed
volumes with a model package's weights, one request at a time.

    python -m medpipe.infer_worker --weights weights.safetensors --inference JSON \
        [--device auto|cpu|cuda] [--threads N]

The TS side (src/infer/torch-backend.ts) does everything around the network itself:
preprocessing before, native space, argmax and post-processing after, exactly as for
onnxruntime. This process only runs medpipe.sliding_window over each volume.

--inference  {"patch_size", "overlap", "mode", "sw_batch_size", "tta"}, inline JSON: the
             settings the TS side resolved from plan.json, so both backends run the one
             specification of medpipe.sliding_window with the same numbers.

Protocol. Once the network is loaded, one event on stdout (NDJSON, flushed):
  {"event": "ready", "device", "torch", "in_channels", "out_channels", "spatial_dims",
   "weights_digest"}
then one request per stdin line, {"id", "image", "output"}: `image` is an .npy volume of
the preprocessed data contract (Fortran, (x, y[, z], C), float32), `output` where the
probabilities go: float32 (float16 would not meet the 1e-3 agreement with onnxruntime),
Fortran, (x, y[, z], K), written atomically. Each request gets one answer:
  {"event": "case", "id", "shape", "seconds", "peak_rss_mb", "peak_gpu_mb"}
  {"event": "case_error", "id", "status": "oom" | "error", "message"}
A failed request does not end the process; the next one runs. EOF on stdin ends it
(exit 0). A network that cannot be loaded: an "error" event, one stderr line, exit 1.

Numerics: float32 on every device, TF32 off on CUDA. bf16 autocast (what training and
medpipe.predict use on a GPU) keeps 8 significant bits and TF32 10, relative errors of
about 4e-3 and 1e-3 per operation: too coarse for the 1e-3 agreement the two backends
promise.
"""

import argparse
import contextlib
import json
import os
import sys
import time
import traceback

import numpy as np
import torch

from medpipe.predict import channel_last_fortran, image_array, load_model, resolve_inference, save_npy
from medpipe.sliding_window import sliding_window_inference
from medpipe.train import emit_stdout, is_oom, peak_gpu_mb, peak_rss_mb, pick_device


def one_line(exc):
    return " ".join(str(exc).split()) or type(exc).__name__


def predict_one(model, request, settings, device, in_channels, spatial_dims):
    """Probabilities of one request's volume, written to request["output"]."""
    image = image_array(np.load(request["image"], allow_pickle=False), spatial_dims, request["image"])
    if image.shape[0] != in_channels:
        raise ValueError(f"{request['image']}: {image.shape[0]} image channel(s), the network takes {in_channels}")
    probs = sliding_window_inference(image, model, settings["patch_size"], overlap=settings["overlap"],
                                     mode=settings["mode"], sw_batch_size=settings["sw_batch_size"],
                                     tta=settings["tta"], device=device, amp=False)
    save_npy(request["output"], channel_last_fortran(probs.cpu()))
    return list(image.shape[1:])


def serve(model, settings, device, net, requests, emit=emit_stdout):
    """Answers every request line of `requests` (an iterable of JSON strings)."""
    for line in requests:
        if not line.strip():
            continue
        t0 = time.perf_counter()
        case_id = None
        try:
            request = json.loads(line)
            case_id = request.get("id")
            shape = predict_one(model, request, settings, device, net["in_channels"], net["spatial_dims"])
            emit({"event": "case", "id": case_id, "shape": shape, "seconds": time.perf_counter() - t0,
                  "peak_rss_mb": peak_rss_mb(), "peak_gpu_mb": peak_gpu_mb(device)})
        except Exception as e:  # noqa: BLE001 - one case's failure is that case's, not the process's
            if os.environ.get("MEDPIPE_TRACEBACK"):
                traceback.print_exc()
            emit({"event": "case_error", "id": case_id, "status": "oom" if is_oom(e) else "error",
                  "message": one_line(e)})
            if device.type == "cuda":
                torch.cuda.empty_cache()


def tf32_off():
    """Full float32 in cuDNN convolutions and cuBLAS matmuls: torch >= 2.9's fp32_precision
    settings where they exist (it deprecates the allow_tf32 flags and refuses a mix of
    the two), else the flags."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        conv.fp32_precision = "ieee"
        torch.backends.cuda.matmul.fp32_precision = "ieee"
    else:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m medpipe.infer_worker", description=__doc__.split("\n")[0])
    parser.add_argument("--weights", required=True, help="a model package's weights.safetensors")
    parser.add_argument("--inference", required=True, help="sliding-window settings, inline JSON")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args(argv)
    try:
        if args.threads:
            torch.set_num_threads(args.threads)
        settings = resolve_inference(override=json.loads(args.inference))
        device = pick_device(args.device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            tf32_off()
        model, _, digest = load_model(args.weights, device)
        net = model.config
        if len(settings["patch_size"]) != net["spatial_dims"]:
            raise ValueError(f"patch_size {settings['patch_size']} does not fit a {net['spatial_dims']}D network")
    except Exception as e:  # noqa: BLE001 - one line on stderr, an event that says why
        with contextlib.suppress(Exception):
            emit_stdout({"event": "error", "status": "error", "message": one_line(e)})
        if os.environ.get("MEDPIPE_TRACEBACK"):
            traceback.print_exc()
        print(f"medpipe.infer_worker: {type(e).__name__}: {one_line(e)}", file=sys.stderr)
        return 1
    emit_stdout({"event": "ready", "device": str(device), "torch": torch.__version__,
                 "in_channels": net["in_channels"], "out_channels": net["out_channels"],
                 "spatial_dims": net["spatial_dims"], "weights_digest": digest})
    serve(model, settings, device, net, sys.stdin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
