"""The model package: one folder that is everything deployment needs (DESIGN.md).

    python -m medpipe.package --checkpoint CKPT --plan plan.json --output-dir DIR \
        [--card-json CARD.json]
    # or: from medpipe.package import build_package

DIR receives:
  model.onnx           export_onnx of the checkpoint's network: input "image" (B, C,
                       *spatial), output "logits" (B, K, *spatial), and for two classes
                       "foreground" (B, 1, *spatial), the class-1 probability; batch and
                       spatial axes dynamic, so any sliding-window patch size runs.
  weights.safetensors  the checkpoint's tensors, byte-identical per tensor (same per-tensor
                       digests), with the checkpoint's metadata plus package provenance
                       (plan_sha256, source_digest).
  plan.json            the plan, copied byte for byte (its sha256 is in the card), so
                       preprocessing at inference matches training by construction.
  model_card.json      written last: format, architecture, spatial_dims, in_channels,
                       labels, channels, modality, patch_size, target_spacing,
                       normalization, inference, metrics (from --card-json, else null),
                       data {name, fingerprint, cases}, provenance {plan_sha256,
                       checkpoint {file, kind, epoch, metric, ema, selection, digest},
                       init_digest, weights_digest, created, torch, onnx_opset}, files
                       {name: sha256} of the three other files, and every other key of
                       --card-json (e.g. fold, training summary) as given.

The ONNX file is exported from the weights just written and read back, so the graph and
the safetensors hold the same numbers. `created` honours SOURCE_DATE_EPOCH (reproducible
builds); otherwise it is the current UTC time.
"""

import argparse
import contextlib
import datetime
import hashlib
import json
import os
import shutil
import sys
import tempfile
import traceback

import torch

from medpipe.export_onnx import export_onnx
from medpipe.nets import build_network
from medpipe.safetensors_io import digest_of_digests, load_file, save_file, tensor_digests
from medpipe.train import write_json

CARD_FORMAT = "medpipe.model_card/1"
PACKAGE_FORMAT = "medpipe.package/1"
# Keys the card computes itself; a --card-json must not overwrite them with claims.
RESERVED = ("format", "architecture", "provenance", "files", "data", "labels", "spatial_dims", "in_channels")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def created_time():
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc) if epoch
            else datetime.datetime.now(datetime.timezone.utc))
    return when.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def example_size(net):
    """An ONNX tracing size every level of the network divides evenly: the product of
    the strides (unet) or 2^4 (basic_unet's four poolings), at least 32."""
    factor = 16 if net["family"] == "basic_unet" else 1
    for s in net.get("strides", []):
        factor *= int(s)
    return max(32, factor)


def _copy_atomic(src, dst):
    folder = os.path.dirname(os.path.abspath(dst))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _number(text):
    """A metadata string ("0.83", "null", "7") as JSON, or None."""
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return None


def build_package(checkpoint, plan_path, output_dir, card_extra=None):
    """Writes the package (module docstring) and returns the model card dict."""
    card_extra = dict(card_extra or {})
    clash = sorted(set(card_extra) & set(RESERVED))
    if clash:
        raise ValueError(f"--card-json may not set {clash}: the card computes them")
    os.makedirs(output_dir, exist_ok=True)
    card_path = os.path.join(output_dir, "model_card.json")
    with contextlib.suppress(FileNotFoundError):  # a stale card must not pass for this package
        os.unlink(card_path)

    with open(plan_path, "rb") as f:
        plan_bytes = f.read()
    plan = json.loads(plan_bytes)
    plan_sha = hashlib.sha256(plan_bytes).hexdigest()

    tensors, meta = load_file(checkpoint)
    if "architecture" not in meta:
        raise ValueError(f"{checkpoint}: no 'architecture' metadata; not a medpipe checkpoint")
    source_digest = digest_of_digests(tensor_digests(checkpoint))
    net = json.loads(meta["architecture"])
    labels = plan.get("dataset", {}).get("labels", {})
    # Label value k is class k (src/plan/classes.ts): the outputs run to the largest value.
    classes = max(int(k) for k in labels) + 1 if labels else None
    if classes is not None and classes != net["out_channels"]:
        raise ValueError(f"the plan's labels {sorted(int(k) for k in labels)} need {classes} outputs, "
                         f"the network has {net['out_channels']}")

    weights = os.path.join(output_dir, "weights.safetensors")
    save_file(tensors, weights, metadata={**meta, "package_format": PACKAGE_FORMAT, "plan_sha256": plan_sha,
                                          "source_digest": source_digest})
    weights_digest = digest_of_digests(tensor_digests(weights))
    if weights_digest != source_digest:  # cannot happen unless save/load lose bits; say so loudly
        raise RuntimeError(f"weights digest {weights_digest} differs from the checkpoint's {source_digest}")

    # The ONNX graph from the weights just written, read back, not from memory.
    model = build_network(net)
    model.load_state_dict(load_file(weights)[0], strict=True)
    onnx = export_onnx(model.eval(), os.path.join(output_dir, "model.onnx"), net["in_channels"],
                       net["spatial_dims"], example_size=example_size(net))
    _copy_atomic(plan_path, os.path.join(output_dir, "plan.json"))

    dataset = plan.get("dataset", {})
    card = {
        "format": CARD_FORMAT,
        "architecture": net,
        "spatial_dims": net["spatial_dims"],
        "in_channels": net["in_channels"],
        "labels": labels,
        "channels": dataset.get("channels"),
        "modality": dataset.get("modality"),
        "patch_size": plan.get("patch_size"),
        "target_spacing": plan.get("target_spacing"),
        "orientation": plan.get("orientation"),
        "normalization": plan.get("normalization"),
        "inference": plan.get("inference"),
        "metrics": card_extra.pop("metrics", None),
        "data": {"name": dataset.get("name"), "fingerprint": dataset.get("fingerprint"),
                 "cases": len(dataset.get("cases", []))},
        "provenance": {
            "plan_sha256": plan_sha,
            "checkpoint": {"file": os.path.basename(checkpoint), "kind": meta.get("kind"),
                           "epoch": _number(meta.get("epoch")), "metric_name": meta.get("metric_name"),
                           "metric": _number(meta.get("metric")), "ema": _number(meta.get("ema")),
                           "selection": meta.get("selection"), "seed": _number(meta.get("seed")),
                           "digest": source_digest},
            "init_digest": meta.get("init_digest"),
            "weights_digest": weights_digest,
            "created": created_time(),
            "torch": torch.__version__,
            "onnx_opset": onnx["opset"],
        },
        "files": {name: sha256_file(os.path.join(output_dir, name))
                  for name in ("model.onnx", "weights.safetensors", "plan.json")},
        **card_extra,
    }
    write_json(card_path, card)  # last: its presence means the package is complete
    return card


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m medpipe.package", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="the chosen checkpoint (safetensors)")
    parser.add_argument("--plan", required=True, help="plan.json the model was trained with")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--card-json", help="JSON object file: metrics and other facts for the model card")
    args = parser.parse_args(argv)
    try:
        extra = None
        if args.card_json:
            with open(args.card_json, encoding="utf-8") as f:
                extra = json.load(f)
            if not isinstance(extra, dict):
                raise ValueError(f"{args.card_json}: the card JSON must be an object")
        card = build_package(args.checkpoint, args.plan, args.output_dir, extra)
    except Exception as e:  # noqa: BLE001 - one line on stderr
        if os.environ.get("MEDPIPE_TRACEBACK"):
            traceback.print_exc()
        print(f"medpipe.package: {type(e).__name__}: {' '.join(str(e).split())}", file=sys.stderr)
        return 1
    print(json.dumps({"event": "package", "weights_digest": card["provenance"]["weights_digest"],
                      "onnx_opset": card["provenance"]["onnx_opset"]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
