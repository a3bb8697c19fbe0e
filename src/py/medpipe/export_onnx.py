"""ONNX export of a trained network for the CPU inference path (onnxruntime-node).

Uses torch's TorchScript-based exporter, which writes the protobuf itself and needs
neither the `onnx` nor the `onnxscript` package (checked on Debian's torch 1.13 where
`import onnx` fails). On torch >= 2.5 we pass dynamo=False explicitly: newer releases
default to the dynamo exporter, which does need those packages.

The graph has one input "image" (B, C, *spatial) and the output "logits"
(B, K, *spatial), with the batch and every spatial axis dynamic, so the TypeScript
sliding window can feed any batch of patches. A two-class network has a second output,
"foreground" (B, 1, *spatial) = sigmoid(logits[:, 1] - logits[:, 0]), which is softmax's
class-1 probability: the sliding window fetches it instead of the logits, so onnxruntime's
vectorised kernel does the per-voxel exp instead of JavaScript (24-29 ms of a 350 ms
160x160x80 window on the 2-core machine of eval/bench/RESULTS.md), and half the values
cross into JavaScript. onnxruntime runs every node of a graph whatever is fetched, so no
K-class softmax output is added: torch's Softmax over the channel axis, exported beside the
logits, made every pass 12-22% slower there. Opset 17 when the installed torch can
write it, else 13 (every layer we use exists in both).

By default the graph is rewritten for onnxruntime's CPU kernels (`fast=True`), on a
deep copy of the network (its parameters and the checkpoint are untouched), computing
the same function up to float rounding. Profiled on the reference UNet at patch
160x160x80 (eval/bench/RESULTS.md), onnxruntime spent a third of its time in
ConvTranspose (a GEMM followed by a scalar col2im scatter that is memory bound) and
10% in PRelu (a generic broadcasting kernel); the two take about 1.5x and 4x the time
they take in torch 1.13. So:

* every strided ConvTranspose becomes a sub-pixel convolution: one Conv producing
  all stride**d output phases as channels (the transposed kernel's taps rearranged;
  taps a phase does not use are zeros), then a voxel shuffle (Reshape, Transpose,
  Reshape; ONNX's DepthToSpace is 2D only). Its end padding is written as the Conv's
  own asymmetric `pads`, so no Pad node copies the input;
* PReLU with one shared slope becomes LeakyRelu with that slope as its alpha (the same
  formula, element for element), which onnxruntime runs with its vectorised kernel;
* instance norm without affine parameters gets explicit ones and zeros (x*1 + 0 is x):
  torch's exporter needs the channel count, which it cannot see through the shuffle's
  dynamic Reshape;
* for the same reason the output's channel count K is written into the file's declared
  output shape afterwards (`_declare_output_channels`).

Tested against the torch network in onnxruntime-node by src/inference/export.test.ts.
`fast=False` writes the plain export (kept for the benchmark's comparison).
"""

import copy
import inspect
import itertools
import math
import os
import tempfile
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

PREFERRED_OPSET = 17
FALLBACK_OPSET = 13
SPATIAL_AXIS_NAMES = ("z", "y", "x")


# ------------------------------------------------------------------- graph rewrites


def _phase_taps(kernel, stride, padding, output_padding):
    """For one axis of a transposed conv, the taps of each output phase r = o mod stride:
    out[stride*m + r] = sum over (k, delta) of x[m + delta] * w[k]. Returns
    (taps per phase, lowest delta, highest delta), or None when the output is not exactly
    stride times the input (then the sub-pixel form would need a crop: not rewritten)."""
    if kernel + output_padding - 2 * padding != stride:
        return None
    phases = []
    for r in range(stride):
        # o = stride*i - padding + k  with  o = stride*m + r  =>  i = m + (r + padding - k) / stride
        phases.append([(k, (r + padding - k) // stride) for k in range(kernel) if (r + padding - k) % stride == 0])
    deltas = [d for taps in phases for _, d in taps]
    return phases, min(deltas), max(deltas)


class _AsymmetricConv(torch.autograd.Function):
    """A convolution with zero padding `pads` (before..., after...) that exports as one ONNX
    Conv with asymmetric pads; in torch it is F.pad then the convolution."""

    @staticmethod
    def forward(ctx, x, weight, bias, pads, kernel):
        d = x.dim() - 2
        torch_pads = []
        for a in reversed(range(d)):  # F.pad lists the last axis first
            torch_pads += [pads[a], pads[d + a]]
        conv = (F.conv1d, F.conv2d, F.conv3d)[d - 1]
        return conv(F.pad(x, torch_pads), weight, bias)

    @staticmethod
    def symbolic(g, x, weight, bias, pads, kernel):
        return g.op("Conv", x, weight, bias, kernel_shape_i=list(kernel), pads_i=list(pads),
                    strides_i=[1] * len(kernel), dilations_i=[1] * len(kernel), group_i=1)


class _VoxelShuffle(torch.autograd.Function):
    """(B, cout * prod(stride), *n) with phase channels ordered (cout, r0, r1[, r2]) to
    (B, cout, *(stride * n)): Reshape, Transpose, Reshape, written out as ONNX ops so the
    graph computes the target shape from the input's (torch's tracer would emit the
    same arithmetic as a chain of scalar ops)."""

    @staticmethod
    def forward(ctx, y, cout, stride):
        n = y.shape[2:]
        y = y.reshape((-1, cout) + stride + tuple(n))
        y = y.permute(_shuffle_perm(len(stride)))
        return y.reshape((-1, cout) + tuple(s * m for s, m in zip(stride, n)))

    @staticmethod
    def symbolic(g, y, cout, stride):
        d = len(stride)

        def const(values):
            return g.op("Constant", value_t=torch.tensor(values, dtype=torch.int64))

        spatial = g.op("Slice", g.op("Shape", y), const([2]), const([2 + d]), const([0]))
        phases = g.op("Reshape", y, g.op("Concat", const([-1, cout, *stride]), spatial, axis_i=0))
        moved = g.op("Transpose", phases, perm_i=_shuffle_perm(d))
        size = g.op("Concat", const([-1, cout]), g.op("Mul", spatial, const(list(stride))), axis_i=0)
        return g.op("Reshape", moved, size)


def _shuffle_perm(d):
    """(B, cout, r0.., n0..) -> (B, cout, n0, r0, n1, r1, ...)."""
    return [0, 1] + [i for a in range(d) for i in (2 + d + a, 2 + a)]


class SubpixelConvTranspose(nn.Module):
    """A ConvTranspose{2,3}d (groups 1, dilation 1, output exactly stride x input) as a
    convolution to cout * prod(stride) phase channels, ordered (cout, r0, r1[, r2]),
    followed by a voxel shuffle that interleaves the phases into the output grid."""

    def __init__(self, ct, plan):
        super().__init__()
        cin, cout = ct.weight.shape[:2]
        self.cout, self.stride = int(cout), tuple(int(s) for s in ct.stride)
        lows = [low for _, low, _ in plan]
        size = [high - low + 1 for _, low, high in plan]
        self.pads = tuple(-low for low in lows) + tuple(high for _, _, high in plan)
        w = ct.weight.detach()
        g = torch.zeros((cout,) + self.stride + (cin,) + tuple(size), dtype=w.dtype)
        for phase in itertools.product(*[range(s) for s in self.stride]):
            per_axis = [plan[a][0][r] for a, r in enumerate(phase)]
            for taps in itertools.product(*per_axis):
                src = tuple(k for k, _ in taps)
                dst = tuple(delta - lows[a] for a, (_, delta) in enumerate(taps))
                g[(slice(None),) + phase + (slice(None),) + dst] = w[(slice(None), slice(None)) + src].t()
        phases = math.prod(self.stride)
        self.weight = nn.Parameter(g.reshape((cout * phases, cin) + tuple(size)), requires_grad=False)
        bias = torch.zeros(cout) if ct.bias is None else ct.bias.detach()
        self.bias = nn.Parameter(bias.repeat_interleave(phases), requires_grad=False)

    def forward(self, x):
        y = _AsymmetricConv.apply(x, self.weight, self.bias, self.pads, tuple(self.weight.shape[2:]))
        return _VoxelShuffle.apply(y, self.cout, self.stride)


def _subpixel(ct):
    """SubpixelConvTranspose for `ct`, or None when its configuration is not covered."""
    if ct.groups != 1 or any(v != 1 for v in ct.dilation) or ct.padding_mode != "zeros":
        return None
    if all(s == 1 for s in ct.stride):
        return None  # nothing to interleave; a stride-1 ConvTranspose is not slow the same way
    plan = [_phase_taps(k, s, p, op) for k, s, p, op in
            zip(ct.kernel_size, ct.stride, ct.padding, ct.output_padding)]
    if any(p is None for p in plan):
        return None
    return SubpixelConvTranspose(ct, plan)


def _affine_instance_norm(norm):
    out = type(norm)(norm.num_features, eps=norm.eps, affine=True)
    nn.init.ones_(out.weight)
    nn.init.zeros_(out.bias)
    return out


def rewrite_for_onnxruntime(model):
    """In place: the module swaps described in the module docstring. Returns `model`."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            new = None
            if isinstance(child, (nn.ConvTranspose2d, nn.ConvTranspose3d)):
                new = _subpixel(child)
            elif isinstance(child, (nn.InstanceNorm2d, nn.InstanceNorm3d)) and not child.affine:
                if not child.track_running_stats:
                    new = _affine_instance_norm(child)
            elif isinstance(child, nn.PReLU) and child.weight.numel() == 1:
                new = nn.LeakyReLU(float(child.weight.detach()))
            if new is not None:
                setattr(module, name, new)
    return model


# ------------------------------------------------------------------- protobuf patch
#
# torch's shape inference cannot follow the shuffle's dynamic Reshape, so the rewritten
# graph would declare its output channels as a symbolic name instead of K. Loaders read
# K from the graph (src/inference/session.ts), so the declared output shape is patched
# in the file: a few nested length-delimited fields, re-encoded; everything else is
# copied byte for byte. Field numbers are onnx.proto's.

def _read_varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i


def _varint(value):
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        out.append(b | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _fields(buf):
    """[(field number, wire type, payload bytes or int, raw bytes of the whole field)]."""
    out, i = [], 0
    while i < len(buf):
        start = i
        key, i = _read_varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _read_varint(buf, i)
        elif wire == 2:
            n, i = _read_varint(buf, i)
            value, i = buf[i:i + n], i + n
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, i = buf[i:i + size], i + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.append((num, wire, value, buf[start:i]))
    return out


def _message(num, payload):
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _rewrite(buf, num, edit):
    """`buf` with every length-delimited field `num` replaced by edit(payload)."""
    return b"".join(_message(n, edit(v)) if n == num and w == 2 else raw for n, w, v, raw in _fields(buf))


def _declare_output_channels(path, output, channels):
    """Sets dimension 1 of graph output `output` in the ONNX file at `path` to `channels`."""
    with open(path, "rb") as f:
        model = f.read()

    def dims(shape):  # TensorShapeProto: dim = 1; Dimension: dim_value = 1 (int), dim_param = 2
        out = []
        for index, (n, w, v, raw) in enumerate(_fields(shape)):
            out.append(_message(1, _varint(1 << 3) + _varint(channels)) if n == 1 and index == 1 else raw)
        return b"".join(out)

    def value_info(vi):  # ValueInfoProto: name = 1, type = 2; TypeProto.tensor_type = 1; shape = 2
        name = next(v for n, w, v, _ in _fields(vi) if n == 1)
        if name.decode() != output:
            return vi
        return _rewrite(vi, 2, lambda t: _rewrite(t, 1, lambda tt: _rewrite(tt, 2, dims)))

    patched = _rewrite(model, 7, lambda graph: _rewrite(graph, 12, value_info))  # graph = 7, output = 12
    with open(path, "wb") as f:
        f.write(patched)


# ------------------------------------------------------------------- export


class _WithForeground(nn.Module):
    """A two-class network with its class-1 probability as a second output."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        logits = self.net(x)
        return logits, torch.sigmoid(logits[:, 1:2] - logits[:, 0:1])


def _export(model, example, path, opset, outputs):
    dims = example.dim() - 2
    names = SPATIAL_AXIS_NAMES[-dims:] if dims <= 3 else tuple(f"s{i}" for i in range(dims))
    dynamic = {0: "batch", **{2 + i: n for i, n in enumerate(names)}}
    kwargs = {
        "input_names": ["image"],
        "output_names": list(outputs),
        "dynamic_axes": {"image": dynamic, **{name: dynamic for name in outputs}},
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
        # The shuffle's Reshape has a dynamic shape: torch's shape inference says it cannot
        # fully infer it, which is expected (onnxruntime infers it at run time).
        warnings.filterwarnings("ignore", message=".*shape inference.*")
        # torch 1.13 calls a custom op's symbolic with a patched g.op it marks deprecated.
        warnings.filterwarnings("ignore", message=".*_graph_op.*", category=FutureWarning)
        torch.onnx.export(model, (example,), path, **kwargs)


def export_onnx(model, path, in_channels, spatial_dims, example_size=32, fast=True):
    """Writes `model` to `path` (atomically: temp file + rename). The caller's model is
    not modified (a float32 CPU copy in eval mode is exported, rewritten for
    onnxruntime unless fast=False). Returns {"path", "opset", "input", "output", "outputs",
    "fast"}: "output" is the logits, "outputs" every output with its channel count."""
    path = os.fspath(path)
    net = copy.deepcopy(model).to("cpu").float().eval()
    if fast:
        rewrite_for_onnxruntime(net)
    example = torch.zeros((1, in_channels) + (example_size,) * spatial_dims)
    with torch.no_grad():
        classes = int(net(example).shape[1])
    outputs = {"logits": classes}
    if classes == 2:
        net = _WithForeground(net)
        outputs["foreground"] = 1
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".onnx", dir=folder)
    os.close(fd)
    try:
        try:
            opset = PREFERRED_OPSET
            _export(net, example, tmp, opset, outputs)
        except Exception:  # this torch cannot write opset 17: fall back
            opset = FALLBACK_OPSET
            _export(net, example, tmp, opset, outputs)
        for name, channels in outputs.items():
            _declare_output_channels(tmp, name, channels)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return {"path": path, "opset": opset, "input": "image", "output": "logits", "outputs": outputs,
            "fast": bool(fast)}
