# An independent reference for the analyze rules (nibabel + numpy + scipy), written from the
# rules in skills/analyze/SKILL.md, not from the TypeScript. INPUT: {"cases": [{id, image: [..],
# label}], "allowed": [..] | null, "settings": {...}}. OUTPUT: per-case records, problems
# (severity, check, case, file), summary numbers, suggestions and the fingerprint.
import hashlib
import json
import os

import nibabel as nib
import numpy as np
from scipy import ndimage

M32 = 0xFFFFFFFF


def mulberry32(seed):
    s = seed & M32

    def imul(a, b):
        return (a * b) & M32

    def nxt():
        nonlocal s
        s = (s + 0x6D2B79F5) & M32
        t = s
        t = imul(t ^ (t >> 15), t | 1)
        t = (t ^ ((t + imul(t ^ (t >> 7), t | 61)) & M32)) & M32
        return ((t ^ (t >> 14)) & M32) / 4294967296.0

    return nxt


def sample_foreground(flat, mask, count, seed):
    where = np.nonzero(mask)[0]
    if where.size == 0:
        return np.zeros(0)
    rnd = mulberry32(seed)
    return np.array([flat[where[int(rnd() * where.size)]] for _ in range(count)], dtype=np.float64)


def corner_drift(a, b, shape):
    worst = 0.0
    dims = min(3, len(shape))
    for corner in range(1 << dims):
        v = np.array([0.0, 0.0, 0.0, 1.0])
        for d in range(dims):
            if corner & (1 << d):
                v[d] = shape[d] - 1
        worst = max(worst, float(np.linalg.norm((a @ v - b @ v)[:3])))
    return worst


def channel_stats(data, mask, channel):
    finite = np.isfinite(data)
    sel = finite if mask is None else (finite & mask)
    x = data[sel].astype(np.float64)
    out = {"channel": channel, "over": "all" if mask is None else "foreground", "count": int(x.size),
           "non_finite": int((~finite).sum())}
    if x.size == 0:
        out.update({k: None for k in ("mean", "std", "min", "max", "p00_5", "p50", "p99_5")})
        return out
    p = np.percentile(x, [0.5, 50, 99.5])
    out.update({"mean": x.mean(), "std": x.std(), "min": x.min(), "max": x.max(),
                "p00_5": p[0], "p50": p[1], "p99_5": p[2]})
    return out


def load(path):
    try:
        img = nib.load(path)
        data = np.asanyarray(img.get_fdata(dtype=np.float64))
        return img, data, None
    except Exception as e:  # noqa: BLE001 - any failure is "unreadable"
        return None, None, str(e)


def sha(path):
    try:
        return hashlib.sha256(open(path, "rb").read()).hexdigest()
    except OSError:
        return None


def analyze_case(c, allowed, settings, listed):
    problems = []

    def add(sev, check, f):
        problems.append({"severity": sev, "check": check, "case": c["id"], "file": f})

    files = [(f"image:{i}", p, sha(p)) for i, p in enumerate(c["image"])]
    if c["label"]:
        files.append(("label", c["label"], sha(c["label"])))
    img, data, err = load(c["image"][0])
    if err is not None and c["image"][0] not in listed:
        add("error", "unreadable", c["image"][0])
    lab_img, lab, lerr = (None, None, None)
    if c["label"]:
        lab_img, lab, lerr = load(c["label"])
        if lerr is not None and c["label"] not in listed:
            add("error", "unreadable", c["label"])
    rec = {"id": c["id"], "readable": img is not None, "files": files}
    mask = None
    shape = None
    if img is not None:
        shape = list(img.shape[:3])
        zooms = [float(z) for z in img.header.get_zooms()[: len(shape)]]
        ornt = nib.io_orientation(img.affine)
        canon_sp = [0.0] * 3
        for i, (w, _) in enumerate(ornt):
            canon_sp[int(w)] = zooms[i]
        rec.update({
            "shape": shape, "spacing": zooms, "affine": img.affine.ravel().tolist(),
            "orientation": "".join(nib.aff2axcodes(img.affine)),
            "canonical_shape": list(nib.as_closest_canonical(img).shape[:3]),
            "canonical_spacing": canon_sp,
        })
    if lab_img is not None:
        lshape = list(lab_img.shape[:3])
        usable = True
        if shape is not None:
            if lshape != shape:
                usable = False
                add("error", "shape-mismatch", c["label"])
            elif corner_drift(img.affine, lab_img.affine, shape) > settings["affine_tolerance_mm"]:
                add("error", "affine-mismatch", c["label"])
                rec["drift"] = corner_drift(img.affine, lab_img.affine, shape)
        spacing = rec["spacing"] if (shape is not None and usable) else [float(z) for z in lab_img.header.get_zooms()[:3]]
        integer = np.isfinite(lab) & (lab == np.round(lab))
        vals, counts = np.unique(lab[integer], return_counts=True)
        vox = float(np.prod(spacing))
        rec["labels"] = [{"value": int(v), "voxels": int(n), "volume_mm3": n * vox,
                          "components": 0 if v == 0 else int(ndimage.label(lab == v)[1])}
                         for v, n in zip(vals, counts)]
        fg = integer & (lab != 0)
        rec["foreground_voxels"] = int(fg.sum())
        rec["foreground_components"] = int(ndimage.label(fg)[1]) if fg.any() else 0
        if (~integer).sum() > 0:
            add("error", "label-not-integer", c["label"])
        if allowed is not None:
            ok = set([0] + list(allowed))
            if any(int(v) not in ok for v in vals):
                add("error", "label-values", c["label"])
        if fg.sum() == 0:
            add("error", "empty-label", c["label"])
        if usable and shape is not None:
            mask = fg
    samples = []
    if img is not None:
        stats = channel_stats(data, mask, 0)
        rec["intensity"] = [stats]
        if stats["non_finite"] > 0:
            add("error", "non-finite", c["image"][0])
        if mask is not None:
            m = mask & np.isfinite(data)
            samples = sample_foreground(data.ravel(order="F"), m.ravel(order="F"),
                                        settings["foreground_samples_per_case"], 1234)
    return rec, problems, samples


def target_spacing(sp, rule, threshold):
    sp = np.asarray(sp, dtype=np.float64)
    if rule == "most_common":
        out = []
        for d in range(sp.shape[1]):
            vals, counts = np.unique(np.round(sp[:, d], 6), return_counts=True)
            out.append(float(vals[np.argmax(counts)]))  # np.unique sorts: ties go to the smaller
        return out, None
    t = np.median(sp, axis=0)
    worst = int(np.argmax(t))
    others = np.delete(t, worst)
    axis = None
    if t[worst] > threshold * others.min():
        t[worst] = max(np.percentile(sp[:, worst], 10), others.max())
        axis = worst
    return [round(float(x), 6) for x in t], axis


def axis_stats(rows):
    a = np.asarray(rows, dtype=np.float64)
    return {"min": a.min(0), "median": np.median(a, 0), "max": a.max(0),
            "p10": np.percentile(a, 10, axis=0), "p90": np.percentile(a, 90, axis=0)}


def patch_rule(stats, multiple=16, lo=32, hi=256):
    patch = []
    for med, smallest in zip(stats["median"], stats["min"]):
        p = int(med // multiple) * multiple
        p = min(p, hi)
        p = max(p, lo)
        if p > smallest:
            p = max(multiple, int(smallest // multiple) * multiple)
        patch.append(p)
    return patch


def analyze(inp):
    settings = inp["settings"]
    allowed = inp["allowed"]
    listed = set(inp.get("listed", []))
    cases = sorted(inp["cases"], key=lambda c: c["id"])
    recs, problems, samples = [], [], []
    for c in cases:
        r, p, s = analyze_case(c, allowed, settings, listed)
        recs.append(r)
        problems += p
        samples.append(s)
    readable = [r for r in recs if r["readable"]]
    counts = {}
    for r in readable:
        counts[r["orientation"]] = counts.get(r["orientation"], 0) + 1
    if len(counts) > 1:
        common = sorted(counts.items(), key=lambda kv: (-kv[1], "" if kv[0] == "RAS" else kv[0]))[0][0]
        for r, c in zip(recs, cases):
            if r["readable"] and r["orientation"] != common:
                problems.append({"severity": "warning", "check": "mixed-orientation", "case": r["id"],
                                 "file": c["image"][0]})
    target, axis = target_spacing([r["canonical_spacing"] for r in readable], settings["target_spacing_rule"],
                                  settings["anisotropy_threshold"])
    sizes = [np.maximum(1, np.round(np.array(r["canonical_shape"]) * np.array(r["canonical_spacing"])
                                    / np.array(target))).astype(int).tolist() for r in readable]
    stats = axis_stats(sizes)
    pooled = np.concatenate([s for s in samples if len(s)]) if any(len(s) for s in samples) else np.zeros(0)
    text = "medpipe-analyze-fingerprint/1\n"
    text += "settings " + json.dumps(settings, sort_keys=True, separators=(",", ":")) + "\n"
    for r in recs:
        for role, _, digest in r["files"]:
            text += f"{r['id']}\t{role}\t{digest or 'missing'}\n"
    return {
        "cases": recs,
        "problems": problems,
        "target_spacing": target,
        "anisotropic_axis": axis,
        "resampled_sizes": sizes,
        "resampled_size": stats,
        "patch_size": patch_rule(stats),
        "spacing": axis_stats([r["canonical_spacing"] for r in readable]) if readable else None,
        "pooled": None if pooled.size == 0 else {
            "count": int(pooled.size), "mean": pooled.mean(), "std": pooled.std(), "min": pooled.min(),
            "max": pooled.max(), "median": np.median(pooled), "p00_5": np.percentile(pooled, 0.5),
            "p99_5": np.percentile(pooled, 99.5)},
        "fingerprint": hashlib.sha256(text.encode()).hexdigest(),
    }


OUTPUT = analyze(INPUT)
