"""safetensors_io against hand-built bytes and an independent struct+json parser."""

import hashlib
import json
import os
import shutil
import struct
import tempfile
import unittest

import torch

from medpipe.safetensors_io import digest_tensor, load_file, read_metadata, save_file, tensor_digests


def independent_parse(path):
    """A from-scratch reader of the format (spec only): returns (header dict, buffer bytes)."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    return header, blob[8 + n:], n


def raw_file(path, header_obj, data, pad=True):
    text = json.dumps(header_obj).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


class SafetensorsTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="medpipe-st-")

    def tearDown(self):
        shutil.rmtree(self.dir)

    def p(self, name):
        return os.path.join(self.dir, name)

    def test_bytes_equal_a_hand_built_file(self):
        tensors = {
            "a": torch.tensor([1.0, -2.0], dtype=torch.float32),
            "b": torch.tensor([1, 2, 3], dtype=torch.uint8),
            "c": torch.tensor(7, dtype=torch.int64),
        }
        save_file(tensors, self.p("x.safetensors"), {"k": "v"})
        # Written widest element first, then by name: c (8 B), a (2 x 4 B), b (3 x 1 B).
        header = (
            '{"__metadata__":{"k":"v"},'
            '"c":{"dtype":"I64","shape":[],"data_offsets":[0,8]},'
            '"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},'
            '"b":{"dtype":"U8","shape":[3],"data_offsets":[16,19]}}'
        ).encode()
        header += b" " * (-len(header) % 8)
        data = struct.pack("<q", 7) + struct.pack("<2f", 1.0, -2.0) + bytes([1, 2, 3])
        expected = struct.pack("<Q", len(header)) + header + data
        with open(self.p("x.safetensors"), "rb") as f:
            self.assertEqual(f.read(), expected)

    def test_independent_parser_reads_every_dtype(self):
        tensors = {
            "f64": torch.tensor([0.5, -1.25], dtype=torch.float64),
            "f32": torch.tensor([[1.5, 2.0, -3.0]], dtype=torch.float32),
            "f16": torch.tensor([1.5, -0.25], dtype=torch.float16),
            "bf16": torch.tensor([1.5, -2.0, 0.0], dtype=torch.bfloat16),
            "i64": torch.tensor([-(2**40), 3]),
            "i32": torch.tensor([-5, 6], dtype=torch.int32),
            "i16": torch.tensor([-300], dtype=torch.int16),
            "i8": torch.tensor([-7, 8], dtype=torch.int8),
            "u8": torch.tensor([255, 0], dtype=torch.uint8),
            "bool": torch.tensor([True, False, True]),
        }
        path = self.p("all.safetensors")
        save_file(tensors, path, {"epoch": "3"})
        header, buf, n = independent_parse(path)
        self.assertEqual(n % 8, 0)  # so the buffer starts 8-byte aligned
        with open(path, "rb") as f:
            raw_header = f.read(8 + n)[8:]
        self.assertEqual(raw_header.rstrip(b" ").decode()[-1], "}")  # padding is spaces only
        self.assertEqual(header.pop("__metadata__"), {"epoch": "3"})

        # Offsets tile the buffer, and each tensor starts at a multiple of its itemsize.
        spans = sorted(tuple(v["data_offsets"]) for v in header.values())
        self.assertEqual(spans[0][0], 0)
        for (_, e0), (b1, _) in zip(spans, spans[1:]):
            self.assertEqual(e0, b1)
        self.assertEqual(spans[-1][1], len(buf))

        def unpack(name, fmt):
            b, e = header[name]["data_offsets"]
            self.assertEqual(b % struct.calcsize("<" + fmt[-1]), 0, name)
            return list(struct.unpack("<" + fmt, buf[b:e]))

        self.assertEqual(header["f32"]["shape"], [1, 3])
        self.assertEqual(header["bf16"]["dtype"], "BF16")
        self.assertEqual(unpack("f64", "2d"), [0.5, -1.25])
        self.assertEqual(unpack("f32", "3f"), [1.5, 2.0, -3.0])
        self.assertEqual(unpack("f16", "2e"), [1.5, -0.25])
        # bfloat16 is the top half of a float32: 1.5 = 0x3fc00000, -2.0 = 0xc0000000.
        self.assertEqual(unpack("bf16", "3H"), [0x3FC0, 0xC000, 0])
        self.assertEqual(unpack("i64", "2q"), [-(2**40), 3])
        self.assertEqual(unpack("i32", "2i"), [-5, 6])
        self.assertEqual(unpack("i16", "1h"), [-300])
        self.assertEqual(unpack("i8", "2b"), [-7, 8])
        self.assertEqual(unpack("u8", "2B"), [255, 0])
        self.assertEqual(unpack("bool", "3?"), [True, False, True])

    def test_round_trip(self):
        g = torch.Generator().manual_seed(0)
        tensors = {
            "w": torch.randn(4, 3, 2, generator=g),
            "transposed": torch.randn(3, 5, generator=g).t(),  # not contiguous
            "half": torch.randn(7, generator=g).half(),
            "bf": torch.randn(2, 3, generator=g).to(torch.bfloat16),
            "empty": torch.zeros(0, 4),
            "scalar": torch.tensor(2.5, dtype=torch.float64),
            "mask": torch.rand(5, generator=g) > 0.5,
            "idx": torch.arange(6, dtype=torch.int32).reshape(2, 3),
        }
        path = self.p("rt.safetensors")
        save_file(tensors, path, {"architecture": json.dumps({"family": "unet"}), "epoch": "12"})
        loaded, meta = load_file(path)
        self.assertEqual(set(loaded), set(tensors))
        for name, t in tensors.items():
            self.assertEqual(loaded[name].dtype, t.dtype, name)
            self.assertEqual(tuple(loaded[name].shape), tuple(t.shape), name)
            self.assertTrue(torch.equal(loaded[name], t), name)
        self.assertEqual(meta, {"architecture": '{"family": "unet"}', "epoch": "12"})
        self.assertEqual(read_metadata(path), meta)
        # A model state_dict survives the trip and loads back.
        net = torch.nn.Conv2d(2, 3, 3)
        save_file(dict(net.state_dict()), self.p("net.safetensors"))
        other = torch.nn.Conv2d(2, 3, 3)
        other.load_state_dict(load_file(self.p("net.safetensors"))[0])
        self.assertTrue(torch.equal(other.weight, net.weight))

    def test_reads_files_it_did_not_write(self):
        # Another writer's choices: name order, no padding, no metadata.
        data = struct.pack("<2f", 1.0, 2.0) + struct.pack("<q", -1)
        hdr = {
            "z": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "a": {"dtype": "I64", "shape": [1, 1], "data_offsets": [8, 16]},
        }
        raw_file(self.p("o.safetensors"), hdr, data, pad=False)
        loaded, meta = load_file(self.p("o.safetensors"))
        self.assertEqual(meta, {})
        self.assertEqual(loaded["z"].tolist(), [1.0, 2.0])
        self.assertEqual(loaded["a"].tolist(), [[-1]])

    def test_strict_validation_names_the_file(self):
        f32 = {"dtype": "F32", "shape": [2]}
        cases = {
            "gap": ({"a": {**f32, "data_offsets": [0, 8]}, "b": {**f32, "data_offsets": [12, 20]}}, 20, "gap"),
            "overlap": ({"a": {**f32, "data_offsets": [0, 8]}, "b": {**f32, "data_offsets": [4, 12]}}, 12, "overlap"),
            "not_at_zero": ({"a": {**f32, "data_offsets": [4, 12]}}, 12, "gap"),
            "past_end": ({"a": {**f32, "data_offsets": [0, 8]}}, 4, "file has"),
            "trailing": ({"a": {**f32, "data_offsets": [0, 8]}}, 12, "file has"),
            "size": ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, 8, "needs 12"),
            "dtype": ({"a": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}, 8, "unsupported dtype"),
            "shape": ({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, 8, "shape"),
            "reversed": ({"a": {**f32, "data_offsets": [8, 0]}}, 8, "before begin"),
            "extra_key": ({"a": {**f32, "data_offsets": [0, 8], "x": 1}}, 8, "exactly the keys"),
            "meta": ({"__metadata__": {"k": 1}, "a": {**f32, "data_offsets": [0, 8]}}, 8, "__metadata__"),
        }
        for label, (hdr, nbytes, message) in cases.items():
            path = self.p(f"{label}.safetensors")
            raw_file(path, hdr, b"\0" * nbytes)
            with self.assertRaises(ValueError, msg=label) as ctx:
                load_file(path)
            self.assertIn(path, str(ctx.exception), label)
            self.assertIn(message, str(ctx.exception), label)
            with self.assertRaises(ValueError, msg=label):
                tensor_digests(path)

        # Header-level damage.
        bad = {
            "short": b"\x01\x02",
            "huge_len": struct.pack("<Q", 1 << 40) + b"{}",
            "len_past_end": struct.pack("<Q", 100) + b"{}",
            "not_json": struct.pack("<Q", 8) + b"{nope}  ",
            "duplicate": struct.pack("<Q", 16) + b'{"a":1, "a":2}  ',
        }
        for label, blob in bad.items():
            path = self.p(f"{label}.safetensors")
            with open(path, "wb") as f:
                f.write(blob)
            with self.assertRaises(ValueError, msg=label) as ctx:
                load_file(path)
            self.assertIn(path, str(ctx.exception), label)

    def test_save_rejects_bad_input_and_is_atomic(self):
        path = self.p("keep.safetensors")
        save_file({"a": torch.ones(2)}, path)
        with self.assertRaises(ValueError):
            save_file({"a": torch.ones(2)}, path, {"epoch": 3})  # metadata values must be strings
        with self.assertRaises(ValueError):
            save_file({"__metadata__": torch.ones(2)}, path)
        with self.assertRaises(ValueError):
            save_file({"c": torch.ones(2, dtype=torch.complex64)}, path)
        self.assertTrue(torch.equal(load_file(path)[0]["a"], torch.ones(2)))  # untouched
        save_file({"b": torch.zeros(3)}, path)  # overwrite
        self.assertEqual(list(load_file(path)[0]), ["b"])
        self.assertEqual(os.listdir(self.dir), ["keep.safetensors"])  # no temp files left

    def test_tensor_digests(self):
        a = torch.tensor([1.0, -2.0])
        b = torch.arange(6, dtype=torch.int16).reshape(2, 3)
        save_file({"a": a, "b": b}, self.p("1.safetensors"), {"epoch": "1"})
        save_file({"b": b.clone(), "a": a.clone()}, self.p("2.safetensors"), {"epoch": "2", "x": "y"})
        d1 = tensor_digests(self.p("1.safetensors"))
        d2 = tensor_digests(self.p("2.safetensors"))
        self.assertEqual(d1, d2)  # independent of layout and metadata
        # The definition: sha256("<DTYPE>:<shape>\n" + raw little-endian bytes).
        self.assertEqual(d1["a"], hashlib.sha256(b"F32:2\n" + struct.pack("<2f", 1.0, -2.0)).hexdigest())
        self.assertEqual(d1["b"], hashlib.sha256(b"I16:2,3\n" + struct.pack("<6h", 0, 1, 2, 3, 4, 5)).hexdigest())
        self.assertEqual(d1["a"], digest_tensor(a))
        # Same bytes, different shape or dtype: different digest.
        self.assertNotEqual(digest_tensor(b.reshape(3, 2)), d1["b"])
        self.assertNotEqual(digest_tensor(torch.tensor([1.0, -2.0], dtype=torch.float64)), d1["a"])
        scalar = torch.tensor(1.0)
        self.assertEqual(digest_tensor(scalar), hashlib.sha256(b"F32:\n" + struct.pack("<f", 1.0)).hexdigest())
        save_file({"a": torch.tensor([1.0, -2.5]), "b": b}, self.p("3.safetensors"))
        d3 = tensor_digests(self.p("3.safetensors"))
        self.assertNotEqual(d3["a"], d1["a"])
        self.assertEqual(d3["b"], d1["b"])


if __name__ == "__main__":
    unittest.main()
