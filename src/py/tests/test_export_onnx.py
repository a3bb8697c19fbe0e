"""ONNX export, checked with a from-scratch protobuf reader (the `onnx` package is not
installed on CI). When onnxruntime happens to be installed, the exported graph is also
run and compared with the torch model."""

import os
import shutil
import tempfile
import unittest

import torch

from medpipe.export_onnx import export_onnx
from medpipe.nets import build_network

try:
    import onnxruntime  # noqa: F401

    HAVE_ORT = True
except ImportError:
    HAVE_ORT = False


def _varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, i


def fields(buf):
    """Protobuf wire format: [(field number, value)], value an int or bytes."""
    out, i = [], 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(buf, i)
        elif wire == 1:
            v, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = _varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wire == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.append((num, v))
    return out


def get(msg, num):
    return [v for n, v in fields(msg) if n == num]


def value_info(vi):
    """ValueInfoProto -> (name, elem_type, [dim_value int or dim_param str])."""
    name = get(vi, 1)[0].decode()
    tensor = get(get(vi, 2)[0], 1)[0]  # TypeProto.tensor_type
    elem = get(tensor, 1)[0]
    dims = []
    for d in get(get(tensor, 2)[0], 1):  # shape.dim
        fv = dict(fields(d))
        dims.append(fv[2].decode() if 2 in fv else fv.get(1))
    return name, elem, dims


def parse_model(path):
    with open(path, "rb") as f:
        model = f.read()
    opsets = {(dict(fields(o)).get(1, b"").decode(), dict(fields(o))[2]) for o in get(model, 8)}
    graph = get(model, 7)[0]
    ops = [get(node, 4)[0].decode() for node in get(graph, 1)]
    initializers = {get(t, 8)[0].decode() for t in get(graph, 5)}
    inputs = [value_info(v) for v in get(graph, 11)]
    outputs = [value_info(v) for v in get(graph, 12)]
    return {"opsets": opsets, "ops": ops, "initializers": initializers,
            "inputs": [i for i in inputs if i[0] not in initializers], "outputs": outputs}


class ExportTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="medpipe-onnx-")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def test_unet_3d(self):
        net = build_network({"spatial_dims": 3, "channels": [4, 8, 16], "strides": [2, 2]}, seed=0)
        net.train()
        path = os.path.join(self.dir, "model.onnx")
        info = export_onnx(net, path, in_channels=1, spatial_dims=3)
        self.assertTrue(net.training)  # the caller's model is left as it was
        self.assertIn(info["opset"], (17, 13))
        m = parse_model(path)
        self.assertIn(("", info["opset"]), m["opsets"])
        self.assertEqual(m["inputs"], [("image", 1, ["batch", 1, "z", "y", "x"])])  # 1 = FLOAT
        self.assertEqual(m["outputs"], [("logits", 1, ["batch", 2, "z", "y", "x"]),
                                        ("foreground", 1, ["batch", 1, "z", "y", "x"])])
        self.assertEqual(info["outputs"], {"logits": 2, "foreground": 1})
        self.assertTrue(info["fast"])
        # Rewritten for onnxruntime: transposed convs as sub-pixel convs + voxel shuffle,
        # the shared-slope PReLU as LeakyRelu.
        for op in ("Conv", "InstanceNormalization", "LeakyRelu", "Concat", "Add", "Transpose", "Reshape",
                   "Sub", "Sigmoid"):
            self.assertIn(op, m["ops"])
        for op in ("ConvTranspose", "PRelu", "Pad"):
            self.assertNotIn(op, m["ops"])
        # 2 down units x (2 convs + residual), bottom (2 convs + 1x1), 2 up layers x (sub-pixel + conv)
        self.assertEqual(m["ops"].count("Conv"), 2 * 3 + 3 + 2 * 2)
        self.assertEqual(m["ops"].count("Transpose"), 2)
        self.assertEqual(os.listdir(self.dir), ["model.onnx"])

    def test_unet_3d_plain(self):
        net = build_network({"spatial_dims": 3, "channels": [4, 8, 16], "strides": [2, 2]}, seed=0)
        path = os.path.join(self.dir, "model.onnx")
        info = export_onnx(net, path, in_channels=1, spatial_dims=3, fast=False)
        self.assertFalse(info["fast"])
        m = parse_model(path)
        for op in ("Conv", "ConvTranspose", "InstanceNormalization", "PRelu", "Concat", "Add"):
            self.assertIn(op, m["ops"])
        self.assertEqual(m["ops"].count("Conv") + m["ops"].count("ConvTranspose"), 2 * 3 + 3 + 2 * 2)
        self.assertNotIn("Transpose", m["ops"])

    def test_basic_unet_2d(self):
        net = build_network({"family": "basic_unet", "spatial_dims": 2, "in_channels": 2, "out_channels": 3,
                             "features": [4, 4, 8, 8, 16, 4]}, seed=0)
        path = os.path.join(self.dir, "b.onnx")
        export_onnx(net, path, in_channels=2, spatial_dims=2)
        m = parse_model(path)
        self.assertEqual(m["inputs"], [("image", 1, ["batch", 2, "y", "x"])])
        self.assertEqual(m["outputs"], [("logits", 1, ["batch", 3, "y", "x"])])
        self.assertEqual(m["ops"].count("MaxPool"), 4)
        self.assertEqual(m["ops"].count("Pad"), 4)  # one per decoder level, by the traced sizes: any size runs
        self.assertNotIn("ConvTranspose", m["ops"])  # kernel-2 stride-2 upsampling: a 1x1 conv + shuffle
        # 4 voxel shuffles; the other 4 reorder the Pads' small index vectors (torch's exporter)
        self.assertEqual(m["ops"].count("Transpose"), 8)

    @unittest.skipUnless(HAVE_ORT, "onnxruntime not installed")
    def test_onnxruntime_matches_torch(self):
        import onnxruntime as ort

        net = build_network({"spatial_dims": 3, "channels": [4, 8, 16], "strides": [2, 2]}, seed=0).eval()
        path = os.path.join(self.dir, "model.onnx")
        export_onnx(net, path, in_channels=1, spatial_dims=3)
        x = torch.randn(2, 1, 16, 24, 8)  # not the export example's shape
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        (y,) = sess.run(None, {"image": x.numpy()})
        with torch.no_grad():
            self.assertTrue(torch.allclose(torch.from_numpy(y), net(x), atol=1e-4))


if __name__ == "__main__":
    unittest.main()
