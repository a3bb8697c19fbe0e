# The Python baseline for eval/bench/analyze.bench.mjs: the per-case statistics medpipe's analyze
# computes, written the way a competent nibabel + numpy + scipy user would, run over the cases with
# a multiprocessing pool. Per case:
#   - sha256 of every file (medpipe digests every file for its content fingerprint; hashlib, 1 MiB reads)
#   - shape, spacing (header zooms), orientation codes (nib.aff2axcodes), affine, data type
#   - foreground = label voxels holding a non-zero integer; intensity count/mean/std (float64,
#     ddof 0)/min/max and the 0.5/50/99.5 percentiles (numpy "linear") over the finite foreground
#     voxels, plus the NaN/Inf count of the whole image
#   - label values with voxel counts (integer labels: np.unique over the non-zero voxels, the rest
#     counted as 0; others: np.unique over the integer voxels), volumes in mm^3, connected
#     components per value and of the foreground union (scipy.ndimage.label, face connectivity;
#     the union is not labelled again when it is exactly one value's mask). With --crop, the
#     components are labelled inside the foreground's bounding box, on a C-ordered view: the
#     tuned variant, a harder baseline.
#   - nnU-Net's 10 000-voxel foreground intensity sample (numpy Generator, seeded)
#
#   /usr/bin/python3 eval/bench/analyze_baseline.py DATASET_DIR [--workers 2] [--crop] [--out results.json]
#
# DATASET_DIR is an MSD-layout folder (imagesTr/, labelsTr/, images and labels paired by name).
# Prints one JSON line: {"seconds": <wall time of the analysis, imports excluded>, "cases": N,
# "workers": W, "versions": {...}}; --out writes the per-case records as JSON.
import argparse
import hashlib
import json
import os
import sys
import time
from multiprocessing import Pool

import nibabel as nib
import numpy as np
from scipy import ndimage

SAMPLES_PER_CASE = 10_000


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def components(mask):
    return int(ndimage.label(mask)[1])


def bounding_box(mask):
    """The slices of the smallest box holding every True voxel (None when there is none)."""
    if not mask.any():
        return None
    box = []
    for axis in range(mask.ndim):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        where = np.flatnonzero(mask.any(axis=others))
        box.append(slice(int(where[0]), int(where[-1]) + 1))
    return tuple(box)


def intensity(data, mask):
    finite = np.isfinite(data) if data.dtype.kind == "f" else None
    non_finite = 0 if finite is None else int(data.size - np.count_nonzero(finite))
    sel = mask if finite is None else (mask & finite)
    x = data[sel]
    out = {"count": int(x.size), "non_finite": non_finite}
    if x.size == 0:
        return out, x
    p = np.percentile(x, [0.5, 50, 99.5])
    out.update({
        "mean": float(x.mean(dtype=np.float64)),
        "std": float(x.std(dtype=np.float64)),
        "min": float(x.min()),
        "max": float(x.max()),
        "p00_5": float(p[0]),
        "p50": float(p[1]),
        "p99_5": float(p[2]),
    })
    return out, x


def label_content(lab, spacing, crop):
    voxel = float(np.prod(spacing))
    if lab.dtype.kind in "iu":
        # Integer labels: count the non-zero voxels (a small subset) by value; the rest is 0.
        fg = lab != 0
        flat = lab.reshape(-1, order="A")  # memory order, no copy
        values, counts = np.unique(flat[fg.reshape(-1, order="A")], return_counts=True)
        background = lab.size - int(counts.sum())
        if background:
            values, counts = np.concatenate([[0], values]), np.concatenate([[background], counts])
        not_integer = 0
    else:
        integer = np.isfinite(lab) & (lab == np.round(lab))
        values, counts = np.unique(lab[integer], return_counts=True)
        fg = integer & (lab != 0)
        not_integer = int(lab.size - np.count_nonzero(integer))
    # --crop: label components inside the foreground's bounding box, on a C-ordered view (nibabel
    # gives Fortran order; ndimage.label is about twice as fast on C order).
    box = bounding_box(fg) if crop else None
    sub = lab if box is None else lab[box].T
    labels = []
    for v, n in zip(values.tolist(), counts.tolist()):
        labels.append({
            "value": int(v),
            "voxels": int(n),
            "volume_mm3": n * voxel,
            "components": 0 if v == 0 else components(sub == v),
        })
    nonzero = [entry for entry in labels if entry["value"] != 0]
    fg_voxels = sum(entry["voxels"] for entry in nonzero)
    if fg_voxels == 0:
        fg_components = 0
    elif len(nonzero) == 1:
        fg_components = nonzero[0]["components"]  # the union is that one value's mask
    else:
        fg_components = components(fg if box is None else fg[box].T)
    return {
        "labels": labels,
        "not_integer": not_integer,
        "foreground_voxels": fg_voxels,
        "foreground_components": fg_components,
    }, fg


def analyze_case(case):
    case_id, image_path, label_path, crop = case
    digests = {"image": sha256(image_path), "label": sha256(label_path)}
    img = nib.load(image_path)
    data = np.asanyarray(img.dataobj)
    shape = list(img.shape[:3])
    spacing = [float(z) for z in img.header.get_zooms()[:3]]
    lab_img = nib.load(label_path)
    lab = np.asanyarray(lab_img.dataobj)
    content, fg = label_content(lab, spacing, crop)
    stats, values = intensity(data, fg)
    rng = np.random.default_rng(1234)
    sample = rng.choice(values, SAMPLES_PER_CASE) if values.size else values
    return {
        "id": case_id,
        "sha256": digests,
        "shape": shape,
        "spacing": spacing,
        "orientation": "".join(nib.aff2axcodes(img.affine)),
        "affine": img.affine.ravel().tolist(),
        "dtype": str(img.get_data_dtype()),
        "intensity": stats,
        "sample_mean": float(sample.mean()) if sample.size else None,
        **content,
    }


def cases_of(root, crop):
    images = os.path.join(root, "imagesTr")
    labels = os.path.join(root, "labelsTr")
    out = []
    for name in sorted(os.listdir(images)):
        if name.startswith(".") or not name.endswith((".nii", ".nii.gz")):
            continue
        case_id = name.split(".nii")[0]
        out.append((case_id, os.path.join(images, name), os.path.join(labels, name), crop))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dataset")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out")
    ap.add_argument("--crop", action="store_true", help="label components in the foreground's bounding box")
    args = ap.parse_args()
    start = time.perf_counter()
    cases = cases_of(args.dataset, args.crop)
    if args.workers > 1:
        with Pool(args.workers) as pool:
            records = pool.map(analyze_case, cases, chunksize=1)
    else:
        records = [analyze_case(c) for c in cases]
    seconds = time.perf_counter() - start
    if args.out:
        with open(args.out, "w") as f:
            json.dump(records, f)
    print(json.dumps({
        "seconds": seconds,
        "cases": len(records),
        "workers": args.workers,
        "crop": args.crop,
        "versions": {"python": sys.version.split()[0], "nibabel": nib.__version__, "numpy": np.__version__,
                     "scipy": __import__("scipy").__version__},
    }))


if __name__ == "__main__":
    main()
