# Writes a small MSD-layout dataset with one problem per case (nibabel), for the analyze tests.
# INPUT: {"dir": path}. OUTPUT: {"cases": [{id, image: [..], label}], "missing": [paths]}.
import gzip
import json
import os

import nibabel as nib
import numpy as np

root = INPUT["dir"]
os.makedirs(f"{root}/imagesTr", exist_ok=True)
os.makedirs(f"{root}/labelsTr", exist_ok=True)
rng = np.random.default_rng(7)
SHAPE = (20, 18, 16)
RAS = np.diag([1.0, 1.1, 2.0, 1.0])
RAS[:3, 3] = [-10, -9, -16]


def blob(shape=SHAPE, value=1):
    lab = np.zeros(shape, np.uint8)
    lab[5:12, 4:10, 3:9] = value
    lab[15:17, 14:16, 12:14] = value  # a second component
    return lab


def image(shape=SHAPE, dtype=np.float32):
    return (rng.normal(100, 20, shape)).astype(dtype)


def save(arr, affine, path):
    nib.save(nib.Nifti1Image(arr, affine), path)


cases = []
missing = []


def case(cid, img, lab, img_aff=RAS, lab_aff=None, lab_path=None):
    ip = f"{root}/imagesTr/{cid}.nii.gz"
    lp = lab_path or f"{root}/labelsTr/{cid}.nii.gz"
    save(img, img_aff, ip)
    if lab is not None:
        save(lab, img_aff if lab_aff is None else lab_aff, lp)
    else:
        missing.append(lp)
    cases.append({"id": cid, "image": [ip], "label": lp})


case("bad_a_ok", image(), blob())
case("bad_b_shape", image(), blob((20, 18, 15)))
shifted = RAS.copy()
shifted[:3, 3] += [0.3, 0.4, 0.0]
case("bad_c_affine", image(), blob(), lab_aff=shifted)
three = blob()
three[0, 0, 0] = 3
three[1, 0, 0] = 3
case("bad_d_values", image(), three)
case("bad_e_empty", image(), np.zeros(SHAPE, np.uint8))
nan = image()
nan[6, 5, 4] = np.nan
nan[0, 0, 0] = np.inf
nan[7, 5, 4] = -np.inf
case("bad_f_nan", nan, blob())
case("bad_g_trunc", image(dtype=np.int16), blob())
tp = f"{root}/imagesTr/bad_g_trunc.nii.gz"
raw = gzip.decompress(open(tp, "rb").read())
open(tp, "wb").write(gzip.compress(raw[: len(raw) // 2]))
lps = np.diag([-1.0, -1.1, 2.0, 1.0])
lps[:3, 3] = [10, 9, -16]
case("bad_h_lps", image(), blob(), img_aff=lps)
case("bad_i_nolabel", image(), None)
half = blob().astype(np.float32)
half[8, 6, 5] = 0.5
case("bad_j_nonint", image(), half)
case("bad_k_ok", image(), blob())

json.dump({
    "name": "bad",
    "modality": {"0": "MRI"},
    "labels": {"0": "background", "1": "thing"},
    "numTraining": len(cases),
    "training": [{"image": c["image"][0].replace(root, "."), "label": c["label"].replace(root, ".")} for c in cases],
}, open(f"{root}/dataset.json", "w"))
OUTPUT = {"cases": cases, "missing": missing}
