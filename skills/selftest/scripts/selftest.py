"""selftest: does torch work here? A seeded 3D conv forward/backward and a torch-vs-numpy check.

Called by the engine as: python selftest.py --output-dir DIR [--seed N] [--size N]
Writes report.json and, last, output.json (the evidence envelope plus the payload).
"""
import argparse
import hashlib
import json
import os
import platform
import sys
import time

started = time.perf_counter()


def fail(message):
    sys.stderr.write(f"error: {message}\n")
    sys.exit(1)


parser = argparse.ArgumentParser()
parser.add_argument("--output-dir", required=True)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--size", type=int, default=16)
args = parser.parse_args()
if not 4 <= args.size <= 256:
    sys.stderr.write("error: --size must be between 4 and 256\n")
    sys.exit(2)

try:
    import numpy as np
    import torch
except ImportError as e:
    fail(f"cannot import {e.name}: install torch and numpy (pipeline doctor prints the command)")

device = "cuda" if torch.cuda.is_available() else "cpu"
print(json.dumps({"event": "device", "device": device}), flush=True)

# torch and numpy must agree on the same product: catches broken BLAS builds.
rng = np.random.default_rng(args.seed)
a = rng.standard_normal((64, 64)).astype(np.float64)
b = rng.standard_normal((64, 64)).astype(np.float64)
diff = float(np.abs((torch.from_numpy(a) @ torch.from_numpy(b)).numpy() - a @ b).max())
if not diff < 1e-9:
    fail(f"torch and numpy disagree on a float64 matrix product (max abs diff {diff})")

torch.manual_seed(args.seed)
net = torch.nn.Sequential(
    torch.nn.Conv3d(1, 8, 3, padding=1),
    torch.nn.InstanceNorm3d(8),
    torch.nn.PReLU(),
    torch.nn.Conv3d(8, 2, 1),
).to(device)
x = torch.randn(2, 1, args.size, args.size, args.size, device=device)
target = (x[:, 0] > 0).long()
t0 = time.perf_counter()
loss = torch.nn.functional.cross_entropy(net(x), target)
loss.backward()
if device == "cuda":
    torch.cuda.synchronize()
conv_ms = (time.perf_counter() - t0) * 1000
grads_finite = all(bool(torch.isfinite(p.grad).all()) for p in net.parameters())
if not (torch.isfinite(loss) and grads_finite):
    fail("the test network produced a non-finite loss or gradient")
print(json.dumps({"event": "conv", "ms": round(conv_ms, 2), "loss": float(loss)}), flush=True)

out = args.output_dir
os.makedirs(out, exist_ok=True)
payload = {
    "device": device,
    "matmul_max_abs_diff": diff,
    "conv_forward_backward_ms": conv_ms,
    "loss": float(loss),
    "ok": True,
}
with open(os.path.join(out, "report.json"), "w") as f:
    json.dump(payload, f, indent=2)


def digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


report = os.path.join(out, "report.json")
try:
    import resource

    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
except ImportError:
    peak_rss_mb = None
gpu = torch.cuda.get_device_properties(0) if device == "cuda" else None
envelope = {
    "skill": "selftest",
    "skill_version": "1.0.0",
    "stage": os.environ.get("MEDPIPE_STAGE", ""),
    "mode": os.environ.get("MEDPIPE_MODE", "full"),
    "status": "succeeded",
    "inputs": {"values": {"seed": args.seed, "size": args.size}, "hashes": {}},
    "environment": {
        "node": None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if device == "cuda" else None,
        "gpu_name": gpu.name if gpu else None,
        "gpu_memory_mb": gpu.total_memory / 2**20 if gpu else None,
        "platform": f"{platform.system().lower()} {platform.release()}",
    },
    "runtime": {
        "wall_s": time.perf_counter() - started,
        "exit_code": 0,
        "oom": False,
        "peak_rss_mb": peak_rss_mb,
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None,
    },
    "artifacts": [
        {"path": "report.json", "role": "report", "sha256": digest(report), "bytes": os.path.getsize(report)}
    ],
    **payload,
}
tmp = os.path.join(out, "output.json.tmp")
with open(tmp, "w") as f:
    json.dump(envelope, f, indent=2)
os.replace(tmp, os.path.join(out, "output.json"))
