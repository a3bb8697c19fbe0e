# Test data for src/evaluate: NIfTI / npy pairs written by nibabel / numpy in several
# orientations, with every metric computed by the shared numpy + scipy reference
# (src/metrics/oracle-reference.py, prepended by the test) on the anatomy itself, in one
# space, before anything was reoriented. INPUT: {"dir", "labels", "tols"}.
import os
import nibabel as nib
from nibabel.orientations import axcodes2ornt, ornt_transform

rng = np.random.default_rng(1234)
root = INPUT["dir"]
LABELS = INPUT["labels"]
TOLS = INPUT["tols"]


def blob(shape, centre, radii):
    idx = np.indices(shape).astype(float)
    d = sum(((idx[a] - centre[a]) / radii[a]) ** 2 for a in range(len(shape)))
    return d <= 1.0


def perturb(m):
    # Shift by one voxel along a random axis and flip a few boundary voxels.
    out = np.roll(m, rng.integers(-1, 2), axis=int(rng.integers(0, m.ndim)))
    edge = m ^ ndimage.binary_erosion(m)
    flip = edge & (rng.random(m.shape) < 0.3)
    return out ^ flip


def label_map(shape, parts):
    lab = np.zeros(shape, dtype=np.uint8)
    for value, mask in parts:
        lab[mask] = value
    return lab


def save(arr, affine, path, codes, dtype):
    """Stores the RAS-ordered array `arr` in orientation `codes` (same world positions)."""
    img = nib.Nifti1Image(arr.astype(dtype), affine)
    img = img.as_reoriented(ornt_transform(axcodes2ornt("RAS"), axcodes2ornt(codes)))
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    nib.save(img, path)
    # Sanity: nibabel brings it back to exactly the anatomy it was made from.
    back = nib.as_closest_canonical(nib.load(path))
    assert np.array_equal(np.asarray(back.dataobj).astype(np.int64), arr.astype(np.int64)), path
    return list(nib.aff2axcodes(nib.load(path).affine))


def rotation_z(deg):
    t = np.deg2rad(deg)
    r = np.eye(4)
    r[:2, :2] = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
    return r


os.makedirs(f"{root}/pred", exist_ok=True)
os.makedirs(f"{root}/gt", exist_ok=True)
OUTPUT = {"cases": {}, "stored": {}}

shape = (40, 34, 22)
sp = (0.8, 1.1, 2.5)
base = np.diag([*sp, 1.0])
base[:3, 3] = [-12.5, 30.25, -7.0]

# a_ras: both RAS, labels 1 and 2, prediction with an extra label-3 blob that no earlier
# reference has (label 3 first appears in case c's reference: scored late, backfilled).
r1 = blob(shape, (14, 15, 10), (8, 7, 5)); r2 = blob(shape, (28, 20, 12), (5, 6, 4)) & ~r1
R = label_map(shape, [(1, r1), (2, r2)])
P = label_map(shape, [(1, perturb(r1)), (2, perturb(r2)), (3, blob(shape, (5, 5, 18), (2, 2, 1)))])
cases = {"a_ras": (P, R, base, "RAS", "RAS", "a_ras_0000")}

# b_lps: prediction stored LPS, reference RAS; same anatomy.
r1 = blob(shape, (20, 12, 8), (9, 6, 4)); r2 = blob(shape, (10, 25, 15), (4, 5, 5))
R = label_map(shape, [(1, r1), (2, r2)])
P = label_map(shape, [(1, perturb(r1)), (2, perturb(r2))])
cases["b_lps"] = (P, R, base, "LPS", "RAS", "b_lps")

# c_mixed: oblique (8° about z), reference stored PIR, prediction LAS; label 2 missing from
# the prediction (infinite distances), label 3 only here and touching the border.
aff = rotation_z(8) @ base
r1 = blob(shape, (22, 18, 11), (10, 8, 6)); r3 = blob(shape, (0, 30, 20), (4, 4, 3))
r2 = blob(shape, (33, 6, 5), (3, 3, 2))
R = label_map(shape, [(1, r1), (2, r2), (3, r3)])
P = label_map(shape, [(1, perturb(r1)), (3, perturb(r3))])
cases["c_mixed"] = (P, R, aff, "LAS", "PIR", "c_mixed")

for name, (P, R, aff, pcodes, gcodes, pfile) in cases.items():
    pc = save(P, aff, f"{root}/pred/{pfile}.nii.gz", pcodes, np.int16 if name != "c_mixed" else np.float32)
    gc = save(R, aff, f"{root}/gt/{name}.nii.gz", gcodes, np.uint8)
    OUTPUT["stored"][name] = {"pred": pc, "gt": gc}
    OUTPUT["cases"][name] = score_labels(P, R, LABELS, list(sp), TOLS, 6, 0)

# Summary oracle: per label and metric, mean / sample std over cases of the finite values.
def summary(values):
    a = np.asarray(values, dtype=float); fin = a[np.isfinite(a)]
    return dict(mean=fin.mean() if fin.size else float("nan"),
                std=fin.std(ddof=1) if fin.size > 1 else float("nan"),
                n=int(fin.size), nan=int(np.isnan(a).sum()), infinite=int(np.isinf(a).sum()))

OUTPUT["summary"] = {}
for j, l in enumerate(LABELS):
    per = [OUTPUT["cases"][n][j] for n in sorted(cases)]
    names = ["dice", "iou", "sensitivity", "precision", "specificity", "rve", "ldr", "hd", "hd95", "assd"]
    s = {m: summary([p[m] for p in per]) for m in names}
    for t, tol in enumerate(TOLS):
        s[f"nsd@{tol:g}mm"] = summary([p["nsd"][t] for p in per])
    OUTPUT["summary"][str(l)] = s

# A 2D NIfTI pair, the prediction stored with x flipped, and a 2D .npy pair (spacing 1).
os.makedirs(f"{root}/2d", exist_ok=True)
s2 = (30, 25); sp2 = (0.7, 1.3)
R2 = label_map(s2, [(1, blob(s2, (12, 10), (7, 6))), (2, blob(s2, (24, 19), (4, 4)))])
P2 = label_map(s2, [(1, perturb(R2 == 1)), (2, perturb(R2 == 2))])
aff2 = np.diag([sp2[0], sp2[1], 1.0, 1.0]); aff2[:3, 3] = [3.0, -4.0, 10.0]
nib.save(nib.Nifti1Image(R2, aff2), f"{root}/2d/gt.nii.gz")
flip = np.eye(4); flip[0, 0] = -1; flip[0, 3] = s2[0] - 1
nib.save(nib.Nifti1Image(np.ascontiguousarray(P2[::-1, :]).astype(np.int16), aff2 @ flip), f"{root}/2d/pred.nii.gz")
np.save(f"{root}/2d/gt.npy", R2)                      # C order
np.save(f"{root}/2d/pred.npy", np.asfortranarray(P2))  # Fortran order
OUTPUT["nifti2d"] = score_labels(P2, R2, [1, 2], list(sp2), TOLS, 4, 0)
OUTPUT["npy2d"] = score_labels(P2, R2, [1, 2], [1.0, 1.0], TOLS, 4, 0)

# Mismatched grids: one voxel more along z; then the same shape half a millimetre off.
os.makedirs(f"{root}/bad", exist_ok=True)
small = np.zeros((20, 20, 10), np.uint8); small[5:9, 5:9, 3:6] = 1
nib.save(nib.Nifti1Image(small, base), f"{root}/bad/gt.nii.gz")
nib.save(nib.Nifti1Image(np.zeros((20, 20, 11), np.uint8), base), f"{root}/bad/pred_shape.nii.gz")
shifted = base.copy(); shifted[0, 3] += 0.5
nib.save(nib.Nifti1Image(small, shifted), f"{root}/bad/pred_shift.nii.gz")
