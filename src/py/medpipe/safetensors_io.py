"""Safetensors, written and read by hand (no `safetensors` package, no pickle).

File layout (https://github.com/huggingface/safetensors, "Format"):

    [8 bytes]  N, unsigned 64-bit little-endian: length of the header in bytes
    [N bytes]  UTF-8 JSON object, padded at the end with spaces (0x20) so that 8 + N
               is a multiple of 8:
                 {"<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
                  ...,
                  "__metadata__": {"<key>": "<string value>", ...}}      (optional)
    [rest]     the byte buffer: each tensor's elements, C order, little-endian;
               data_offsets are relative to the start of this buffer.

We write tensors ordered by descending element size, then by name. The buffer starts
8-byte aligned (that is what the padding is for) so every tensor then starts at a
multiple of its own element size, and the same tensors always give the same bytes.

Reading is strict, like the reference implementation: the offsets, sorted, must tile
the buffer exactly (begin of the first is 0, each begins where the previous ended, the
last ends at the end of the file), and each tensor's byte count must equal
prod(shape) * itemsize. Anything else is a ValueError that names the file.

Per-tensor digests (`tensor_digests`, `digest_tensor`) are defined on the tensor, not
the file, so two files holding the same tensors in a different order or with different
metadata give the same digests. The definition (shared with the TypeScript verifier):

    sha256( ascii("<DTYPE>:<d0>,<d1>,...\\n") || raw little-endian bytes )

e.g. "F32:16,1,3,3,3\\n" followed by the 1728 bytes; a scalar is "F32:\\n".
"""

import hashlib
import json
import math
import os
import struct
import tempfile

import numpy as np
import torch

# Safetensors dtype name -> (torch dtype, numpy little-endian dtype used for the bytes).
# BF16 has no numpy dtype: its bytes travel as int16 and are reinterpreted in torch.
DTYPES = {
    "F64": (torch.float64, np.dtype("<f8")),
    "F32": (torch.float32, np.dtype("<f4")),
    "F16": (torch.float16, np.dtype("<f2")),
    "BF16": (torch.bfloat16, np.dtype("<i2")),
    "I64": (torch.int64, np.dtype("<i8")),
    "I32": (torch.int32, np.dtype("<i4")),
    "I16": (torch.int16, np.dtype("<i2")),
    "I8": (torch.int8, np.dtype("i1")),
    "U8": (torch.uint8, np.dtype("u1")),
    "BOOL": (torch.bool, np.dtype("?")),
}
_NAME_OF_TORCH_DTYPE = {t: name for name, (t, _) in DTYPES.items()}

# The reference implementation refuses headers above 100 MB; so do we (a corrupt length
# field must not make us allocate gigabytes).
MAX_HEADER_BYTES = 100_000_000
METADATA_KEY = "__metadata__"


def dtype_name(dtype):
    """The safetensors name of a torch dtype (F32, BF16, ...)."""
    if dtype not in _NAME_OF_TORCH_DTYPE:
        raise ValueError(f"safetensors: unsupported dtype {dtype}; supported: {sorted(DTYPES)}")
    return _NAME_OF_TORCH_DTYPE[dtype]


def tensor_bytes(tensor):
    """The raw little-endian C-order bytes of a tensor (moved to the CPU first)."""
    t = tensor.detach().to("cpu").contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)  # same bits; numpy can hold int16
    arr = t.numpy()
    np_dtype = DTYPES[dtype_name(tensor.dtype)][1]
    return arr.astype(np_dtype, copy=False).tobytes(order="C")


def _digest(dtype, shape, raw):
    h = hashlib.sha256()
    h.update(f"{dtype}:{','.join(str(int(d)) for d in shape)}\n".encode("ascii"))
    h.update(raw)
    return h.hexdigest()


def digest_tensor(tensor):
    """Digest of one in-memory tensor; equals what `tensor_digests` gives once it is saved."""
    return _digest(dtype_name(tensor.dtype), tuple(tensor.shape), tensor_bytes(tensor))


def digest_of_digests(digests):
    """One digest for a whole set of tensors (e.g. the init digest of a model):
    sha256 over "<name>\\t<digest>\\n" lines sorted by name."""
    h = hashlib.sha256()
    for name in sorted(digests):
        h.update(f"{name}\t{digests[name]}\n".encode("utf-8"))
    return h.hexdigest()


def build_header(entries, metadata=None):
    """The padded header bytes (without the 8-byte length) for a list of
    (name, dtype_name, shape, nbytes) in file order. Returned with the buffer size."""
    header = {}
    offset = 0
    for name, dtype, shape, nbytes in entries:
        header[name] = {"dtype": dtype, "shape": [int(d) for d in shape], "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    if metadata:
        header = {METADATA_KEY: dict(metadata), **header}
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)  # 8 + len(text) is then a multiple of 8
    return text, offset


def save_file(tensors, path, metadata=None):
    """Writes `tensors` (name -> torch.Tensor) with optional string->string `metadata`.

    Atomic: the bytes go to a temporary file in the same folder, which is fsynced and
    then renamed over `path`, so a reader never sees a half-written checkpoint.
    """
    path = os.fspath(path)
    if metadata is not None:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ValueError(f"{path}: safetensors metadata must map str to str, got {k!r}: {type(v).__name__}")
    for name, t in tensors.items():
        if not isinstance(name, str) or name == METADATA_KEY or not name:
            raise ValueError(f"{path}: invalid tensor name {name!r}")
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{path}: {name} is a {type(t).__name__}, not a torch.Tensor")
        if t.is_sparse or t.is_complex():
            raise ValueError(f"{path}: {name}: sparse and complex tensors are not supported")

    def order(name):  # widest elements first keeps every tensor aligned to its itemsize
        return (-tensors[name].element_size(), name)

    names = sorted(tensors, key=order)
    blobs = [tensor_bytes(tensors[n]) for n in names]
    entries = [(n, dtype_name(tensors[n].dtype), tuple(tensors[n].shape), len(b)) for n, b in zip(names, blobs)]
    header, _ = build_header(entries, metadata)

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".safetensors", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(header)))
            f.write(header)
            for b in blobs:
                f.write(b)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _no_duplicate_keys(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def read_header(f, path, file_size):
    """Parses and validates the header of an open file. Returns (entries, metadata,
    data_start) where entries is a list of (name, dtype, shape, begin, end) sorted by begin."""
    head = f.read(8)
    if len(head) < 8:
        raise ValueError(f"{path}: not a safetensors file: {file_size} bytes, shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", head)
    if n > MAX_HEADER_BYTES:
        raise ValueError(f"{path}: safetensors header length {n} exceeds the {MAX_HEADER_BYTES}-byte limit")
    if 8 + n > file_size:
        raise ValueError(f"{path}: safetensors header length {n} runs past the end of the {file_size}-byte file")
    raw = f.read(n)
    try:
        text = raw.decode("utf-8")
        if not text.startswith("{"):
            raise ValueError("the header does not start with '{'")
        header = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except (UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"{path}: invalid safetensors header: {e}") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: safetensors header is not a JSON object")

    metadata = header.pop(METADATA_KEY, None)
    if metadata is not None:
        if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
        ):
            raise ValueError(f"{path}: __metadata__ must be an object of string values")

    entries = []
    for name, info in header.items():
        where = f"{path}: tensor {name!r}"
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"{where}: expected exactly the keys dtype, shape, data_offsets")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in DTYPES:
            raise ValueError(f"{where}: unsupported dtype {dtype!r}; supported: {sorted(DTYPES)}")
        if not isinstance(shape, list) or not all(_is_uint(d) for d in shape):
            raise ValueError(f"{where}: shape must be a list of non-negative integers, got {shape!r}")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_uint(o) for o in offsets)):
            raise ValueError(f"{where}: data_offsets must be [begin, end] non-negative integers, got {offsets!r}")
        begin, end = offsets
        if end < begin:
            raise ValueError(f"{where}: data_offsets end {end} is before begin {begin}")
        expected = math.prod(shape) * DTYPES[dtype][1].itemsize  # prod of [] is 1: a scalar
        if end - begin != expected:
            raise ValueError(
                f"{where}: data_offsets span {end - begin} bytes but {dtype} of shape {shape} needs {expected}"
            )
        entries.append((name, dtype, tuple(shape), begin, end))

    # The offsets must tile the buffer: no gap, no overlap, nothing left over.
    entries.sort(key=lambda e: (e[3], e[4]))
    data_start = 8 + n
    cursor = 0
    for name, _, _, begin, end in entries:
        if begin != cursor:
            kind = "overlaps the previous tensor" if begin < cursor else f"leaves a gap of {begin - cursor} bytes"
            raise ValueError(f"{path}: tensor {name!r} at byte {begin} {kind} (expected to start at {cursor})")
        cursor = end
    if data_start + cursor != file_size:
        raise ValueError(
            f"{path}: tensors end at byte {data_start + cursor} of the file but the file has {file_size} bytes"
        )
    return entries, metadata, data_start


def _is_uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def load_file(path, device="cpu"):
    """Reads a safetensors file. Returns (tensors, metadata): name -> torch.Tensor (in
    the order of the tensors' bytes in the file) and the __metadata__ dict ({} when
    absent). `device` is where the tensors go."""
    path = os.fspath(path)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        entries, metadata, data_start = read_header(f, path, size)
        f.seek(data_start)
        buf = f.read()
    tensors = {}
    for name, dtype, shape, begin, end in entries:
        torch_dtype, np_dtype = DTYPES[dtype]
        # astype copies: an owned, aligned, writable array in native byte order
        # (frombuffer over bytes is read-only and may be misaligned).
        arr = np.frombuffer(buf, dtype=np_dtype, count=(end - begin) // np_dtype.itemsize, offset=begin)
        t = torch.from_numpy(arr.astype(np_dtype.newbyteorder("=")))
        if torch_dtype == torch.bfloat16:
            t = t.view(torch.bfloat16)
        tensors[name] = t.reshape(shape).to(device)
    return tensors, (metadata or {})


def read_metadata(path):
    """Only the __metadata__ of a file (validates the header, reads no tensor data)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        _, metadata, _ = read_header(f, path, os.path.getsize(path))
    return metadata or {}


def tensor_digests(path):
    """name -> sha256 hex of (dtype, shape, raw bytes) for every tensor of a file,
    read straight from the file's bytes (no decoding, so it needs neither torch dtypes
    nor a device). See the module docstring for the exact definition."""
    path = os.fspath(path)
    size = os.path.getsize(path)
    out = {}
    with open(path, "rb") as f:
        entries, _, data_start = read_header(f, path, size)
        for name, dtype, shape, begin, end in entries:
            f.seek(data_start + begin)
            out[name] = _digest(dtype, shape, f.read(end - begin))
    return out
