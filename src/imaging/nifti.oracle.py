import gzip, os
import numpy as np, nibabel as nib
from nibabel.orientations import io_orientation, ornt2axcodes

d = INPUT["dir"]
rng = np.random.default_rng(7)

def rot(axis, deg):
    t = np.deg2rad(deg); c, s = np.cos(t), np.sin(t)
    m = np.eye(3)
    i, j = [(1, 2), (0, 2), (0, 1)][axis]
    m[i, i] = c; m[j, j] = c; m[i, j] = -s; m[j, i] = s
    return m

def aff(lin, t=(-40.5, 12.25, -7.0)):
    a = np.eye(4); a[:3, :3] = lin; a[:3, 3] = t
    return a

Z = np.diag([1.25, 0.75, 2.5])
AFF = {
    "RAS": aff(Z),
    "LPS": aff(np.diag([-1, -1, 1]) @ Z),
    "LAS": aff(np.diag([-1, 1, 1]) @ Z),
    "PIR": aff(np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]]) @ Z),
    "oblique": aff(rot(0, 20) @ rot(2, -15) @ Z),
    "oblique_left": aff(rot(1, 25) @ rot(2, 10) @ np.diag([1, -1, 1]) @ Z),
    "oblique_big": aff(rot(2, 160) @ rot(0, 35) @ Z),
}

def data(dtype, shape, nan=False):
    dt = np.dtype(dtype)
    n = int(np.prod(shape))
    if dt.kind in "iu":
        ii = np.iinfo(dt)
        v = rng.integers(ii.min, ii.max, size=n, endpoint=True, dtype=dt)
        v[0], v[-1] = ii.min, ii.max
    else:
        v = (rng.standard_normal(n) * 100).astype(dt)
        if nan:
            v[3] = np.nan; v[5] = np.inf
    return v.reshape(shape, order="F")

# name, version, ext, dtype, shape, sform (aff, code) | None, qform (aff, code) | None, slope, inter, extras
C = [
    ("u8_ras", 1, ".nii", "uint8", (5, 4, 3), ("RAS", 1), ("RAS", 1), None, None, {}),
    ("i8_lps_gz", 1, ".nii.gz", "int8", (5, 4, 3), ("LPS", 1), ("LPS", 1), None, None, {}),
    ("i16_las_qonly", 1, ".nii", "int16", (5, 4, 3), None, ("LAS", 1), None, None, {}),
    ("u16_obl_sonly", 1, ".nii.gz", "uint16", (5, 4, 3), ("oblique", 2), None, None, None, {}),
    ("i32_obl_qonly", 1, ".nii", "int32", (5, 4, 3), None, ("oblique", 1), None, None, {}),
    ("u32_base", 1, ".nii.gz", "uint32", (5, 4, 3), None, None, None, None, {}),
    ("f32_sform_wins", 1, ".nii.gz", "float32", (5, 4, 3), ("LPS", 1), ("oblique", 1), None, None, {"nan": True}),
    ("f64_pir", 1, ".nii", "float64", (5, 4, 3), ("PIR", 1), None, None, None, {}),
    ("i16_scaled", 1, ".nii.gz", "int16", (5, 4, 3), ("RAS", 1), ("RAS", 1), 2.5, -10.0, {}),
    ("u8_slope0", 1, ".nii", "uint8", (5, 4, 3), ("LAS", 1), None, 0.0, 5.0, {}),
    ("i16_slope_nan", 1, ".nii.gz", "int16", (5, 4, 3), ("RAS", 1), None, np.nan, np.nan, {}),
    ("i32_scaled", 1, ".nii", "int32", (5, 4, 3), ("LPS", 1), None, 0.5, 3.0, {}),
    ("f32_scaled", 1, ".nii", "float32", (5, 4, 3), ("RAS", 1), None, 2.0, 1.0, {}),
    ("i16_4d_lps", 1, ".nii.gz", "int16", (4, 3, 2, 3), ("LPS", 1), ("LPS", 1), None, None, {}),
    ("i16_bigendian", 1, ".nii", "int16", (5, 4, 3), ("oblique", 1), ("oblique", 1), None, None, {"endian": ">"}),
    ("u8_extension", 1, ".nii.gz", "uint8", (5, 4, 3), ("RAS", 1), None, None, None, {"ext": True}),
    ("n2_u8_ras", 2, ".nii", "uint8", (5, 4, 3), ("RAS", 1), ("RAS", 1), None, None, {}),
    ("n2_i16_lps_qonly", 2, ".nii.gz", "int16", (5, 4, 3), None, ("LPS", 1), None, None, {}),
    ("n2_f64_obl", 2, ".nii", "float64", (5, 4, 3), ("oblique_big", 3), ("oblique", 1), None, None, {}),
    ("n2_f32_4d_scaled", 2, ".nii.gz", "float32", (4, 3, 2, 2), ("LAS", 1), None, 1.5, 0.25, {}),
    ("n2_u16_badpix", 2, ".nii", "uint16", (5, 4, 3), None, None, None, None, {"pixdim": [0.0, -2.0, 0.0]}),
    ("u8_2d", 1, ".nii", "uint8", (6, 5), ("RAS", 1), None, None, None, {}),
    ("i16_oblique_left_q", 1, ".nii.gz", "int16", (5, 4, 3), None, ("oblique_left", 1), None, None, {}),
    ("n2_i32_be_scaled", 2, ".nii.gz", "int32", (5, 4, 3), ("oblique_left", 1), None, -1.0, 100.0, {"endian": ">"}),
    ("u8_ambiguous_q", 1, ".nii", "uint8", (5, 4, 3), None, ("oblique_big", 4), None, None, {}),
]

out = []
for name, v, ext, dtype, shape, sform, qform, slope, inter, extra in C:
    H = nib.Nifti1Header if v == 1 else nib.Nifti2Header
    hdr = H(endianness=extra.get("endian", "<"))
    arr = data(dtype, shape, extra.get("nan", False))
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(dtype)
    if qform is not None:
        hdr.set_qform(AFF[qform[0]], code=qform[1])
    else:
        hdr.set_qform(AFF["RAS"], code=0)
    if sform is not None:
        hdr.set_sform(AFF[sform[0]], code=sform[1])
    else:
        hdr.set_sform(AFF["LPS"], code=0)
    if "pixdim" in extra:
        hdr["pixdim"][1:4] = extra["pixdim"]
    hdr["scl_slope"] = np.nan if slope is None else slope
    hdr["scl_inter"] = np.nan if inter is None else inter
    hsize = 348 if v == 1 else 540
    ext_bytes = b"\0\0\0\0"
    if extra.get("ext"):
        content = b"medpipe test extension".ljust(40, b"\0")
        ext_bytes = b"\x01\0\0\0" + np.array([48, 6], "<i4").tobytes() + content
    hdr["vox_offset"] = hsize + len(ext_bytes)
    raw = hdr.binaryblock + ext_bytes + arr.astype(hdr.get_data_dtype()).tobytes(order="F")
    path = os.path.join(d, name + ext)
    with (gzip.open(path, "wb") if ext.endswith(".gz") else open(path, "wb")) as f:
        f.write(raw)
    img = nib.load(path)
    got = np.asarray(img.dataobj)
    rec = {
        "name": name, "path": path, "dtype": got.dtype.name, "shape": list(got.shape),
        "data": got.ravel(order="F"), "affine": img.affine, "zooms": [float(z) for z in img.header.get_zooms()],
        "qform_code": int(img.header["qform_code"]), "sform_code": int(img.header["sform_code"]),
    }
    try:
        rec["ornt"] = io_orientation(img.affine)
        rec["axcodes"] = list(ornt2axcodes(rec["ornt"]))
        can = nib.as_closest_canonical(img)
        c = np.asarray(can.dataobj)
        rec["canonical"] = {"shape": list(c.shape), "data": c.ravel(order="F"), "affine": can.affine}
    except Exception as e:
        rec["canonical"] = None
    out.append(rec)

# Files nibabel reads but we must refuse with a clear message.
bad = {}
h = nib.Nifti1Header(); h.set_data_shape((3, 3, 3)); h.set_data_dtype(np.int64); h["vox_offset"] = 352
p = os.path.join(d, "bad_int64.nii"); open(p, "wb").write(h.binaryblock + b"\0" * 4 + np.zeros(27, np.int64).tobytes())
bad["int64"] = p
OUTPUT = {"cases": out, "bad": bad}
