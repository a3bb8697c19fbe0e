"""Torch side of eval/bench/infer.bench.mjs (Debian's python3: torch + numpy).

    infer_torch.py prepare DIR CONFIG_JSON   builds the seeded network, writes its plain and
                                             fast ONNX exports and the seeded volume
    infer_torch.py run DIR CONFIG_JSON       one timed medpipe.sliding_window run in this fresh
                                             process; prints a JSON line

CONFIG_JSON: {"shape": [C, x, y, z], "patch": [...], "overlap", "mode", "sw", "tta", "threads",
"network": {...}, "save": bool}. Volumes and probabilities are Fortran (x, y, z, C) .npy, the
image.npy layout the Node side reads without a copy.
"""

import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "src", "py"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from medpipe.export_onnx import export_onnx  # noqa: E402
from medpipe.nets import build_network  # noqa: E402
from medpipe.sliding_window import sliding_window_inference  # noqa: E402


def prepare(d, cfg):
    model = build_network(cfg["network"], seed=0).eval()
    dims = len(cfg["patch"])
    infos = {name: export_onnx(model, os.path.join(d, f"{name}.onnx"), cfg["shape"][0], dims, fast=name == "fast")
             for name in ("plain", "fast")}
    vol = np.random.default_rng(0).standard_normal(cfg["shape"]).astype(np.float32)
    np.save(os.path.join(d, "image.npy"), np.asfortranarray(np.moveaxis(vol, 0, -1)))
    params = sum(p.numel() for p in model.parameters())
    return {"opset": infos["fast"]["opset"], "parameters": params,
            "onnx_bytes": {k: os.path.getsize(v["path"]) for k, v in infos.items()}}


def run(d, cfg):
    torch.set_num_threads(cfg["threads"])
    model = build_network(cfg["network"], seed=0).eval()
    with torch.no_grad():  # warm-up window: one-off allocations and oneDNN primitive creation
        model(torch.zeros([1, cfg["shape"][0]] + list(cfg["patch"])))
    vol = np.ascontiguousarray(np.moveaxis(np.load(os.path.join(d, "image.npy")), -1, 0))
    t, cpu = time.perf_counter(), time.process_time()
    p = sliding_window_inference(vol, model, cfg["patch"], overlap=cfg["overlap"], mode=cfg["mode"],
                                 sw_batch_size=cfg["sw"], tta=cfg["tta"], device="cpu", amp=False)
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if cfg.get("save"):
        np.save(os.path.join(d, "torch.npy"), np.asfortranarray(np.moveaxis(p.numpy(), 0, -1)))
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_rss": peak, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "numpy": np.__version__}


if __name__ == "__main__":
    command, folder, config = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    result = {"prepare": prepare, "run": run}[command](folder, config)
    print(json.dumps(result))
