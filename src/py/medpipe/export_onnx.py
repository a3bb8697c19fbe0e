"""ONNX export of a trained network for the CPU inference path (onnxruntime-node).

Uses torch's TorchScript-based exporter, which writes the protobuf itself and needs
neither the `onnx` nor the `onnxscript` package (checked on Debian's torch 1.13 where
`import onnx` fails). On torch >= 2.5 we pass dynamo=False explicitly: newer releases
default to the dynamo exporter, which does need those packages.

The graph has one input "image" (B, C, *spatial) and one output "logits"
(B, K, *spatial), with the batch and every spatial axis dynamic, so the TypeScript
sliding window can feed any batch of patches. Opset 17 when the installed torch can
write it, else 13 (every layer we use exists in both).
"""

import copy
import inspect
import os
import tempfile
import warnings

import torch

PREFERRED_OPSET = 17
FALLBACK_OPSET = 13
SPATIAL_AXIS_NAMES = ("z", "y", "x")


def _export(model, example, path, opset):
    dims = example.dim() - 2
    names = SPATIAL_AXIS_NAMES[-dims:] if dims <= 3 else tuple(f"s{i}" for i in range(dims))
    dynamic = {0: "batch", **{2 + i: n for i, n in enumerate(names)}}
    kwargs = {
        "input_names": ["image"],
        "output_names": ["logits"],
        "dynamic_axes": {"image": dynamic, "logits": dynamic},
        "opset_version": opset,
        "do_constant_folding": True,
        "training": torch.onnx.TrainingMode.EVAL,
    }
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    with warnings.catch_warnings():
        # Instance norm without running stats is exported "in training mode"; it computes
        # the same thing either way, so torch's warning about it is noise.
        warnings.filterwarnings("ignore", message=".*instance_norm.*")
        # ...and so is the tracer's note about instance norm's spatial-size check.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning, module="torch.nn.functional")
        torch.onnx.export(model, (example,), path, **kwargs)


def export_onnx(model, path, in_channels, spatial_dims, example_size=32):
    """Writes `model` to `path` (atomically: temp file + rename). The caller's model is
    not modified (a float32 CPU copy in eval mode is exported). Returns
    {"path", "opset", "input", "output"}."""
    path = os.fspath(path)
    net = copy.deepcopy(model).to("cpu").float().eval()
    example = torch.zeros((1, in_channels) + (example_size,) * spatial_dims)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".onnx", dir=folder)
    os.close(fd)
    try:
        try:
            opset = PREFERRED_OPSET
            _export(net, example, tmp, opset)
        except Exception:  # this torch cannot write opset 17: fall back
            opset = FALLBACK_OPSET
            _export(net, example, tmp, opset)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return {"path": path, "opset": opset, "input": "image", "output": "logits"}
