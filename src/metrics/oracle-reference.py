# Reference implementation of the segmentation metrics with numpy + scipy only
# (distance_transform_edt, ndimage.label, binary_erosion), MONAI-compatible voxel
# definitions. Test oracle shared by src/metrics and src/evaluate: the TypeScript is
# compared against this, never against its own output. Loaded as text and run by
# tests/support/oracle.ts, which defines INPUT and reads OUTPUT.
import numpy as np
from scipy import ndimage


def arr(flat, shape, dtype=np.int64):
    return np.asarray(flat, dtype=dtype).reshape(shape, order="F")


def canonical(lab):
    # Number components by their first voxel in Fortran (first-axis-fastest) order.
    flat = lab.ravel(order="F")
    ids, first = np.unique(flat, return_index=True)
    keep = ids != 0
    order = ids[keep][np.argsort(first[keep])]
    table = np.zeros(int(flat.max()) + 1 if flat.size else 1, dtype=np.int64)
    table[order] = np.arange(1, len(order) + 1)
    return table[flat]


def structure(rank, conn):
    # 4/6 -> faces, 8/18 -> faces+edges, 26 -> all.
    reach = {4: 1, 6: 1, 8: 2, 18: 2, 26: 3}[conn]
    return ndimage.generate_binary_structure(rank, reach)


def ratio(a, b):
    return float("nan") if b == 0 else a / b


def surface(m):
    return m & ~ndimage.binary_erosion(m, structure=ndimage.generate_binary_structure(m.ndim, 1), border_value=0)


def score(p, r, sp, tols, conn, thr):
    """Every metric of one binary prediction p against one binary reference r (bool arrays)."""
    tp = int((p & r).sum()); fp = int((p & ~r).sum()); fn = int((~p & r).sum()); tn = int((~p & ~r).sum())
    vox = float(np.prod(sp))
    o = dict(tp=tp, fp=fp, fn=fn, tn=tn,
             dice=ratio(2 * tp, 2 * tp + fp + fn), iou=ratio(tp, tp + fp + fn),
             sensitivity=ratio(tp, tp + fn), precision=ratio(tp, tp + fp), specificity=ratio(tn, tn + fp),
             predVolumeMm3=(tp + fp) * vox, refVolumeMm3=(tp + fn) * vox,
             rve=ratio((tp + fp) - (tp + fn), tp + fn))
    lab, n = ndimage.label(r, structure=structure(r.ndim, conn))
    sizes = np.bincount(lab.ravel(), minlength=n + 1)
    hits = np.bincount(lab[p], minlength=n + 1)
    found = [(2 * hits[i] / (sizes[i] + hits[i]) > thr) if thr > 0 else hits[i] > 0 for i in range(1, n + 1)]
    o["ldr"] = ratio(float(sum(found)), n)
    sp_, sr = surface(p), surface(r)
    o["predSurfaceVoxels"] = int(sp_.sum()); o["refSurfaceVoxels"] = int(sr.sum())
    if not p.any() and not r.any():
        o.update(hd=0.0, hd95=0.0, assd=0.0, nsd=[1.0] * len(tols))
    elif not p.any() or not r.any():
        o.update(hd=float("inf"), hd95=float("inf"), assd=float("inf"), nsd=[0.0] * len(tols))
    else:
        a = ndimage.distance_transform_edt(~sr, sampling=sp)[sp_]   # pred surface -> ref surface
        b = ndimage.distance_transform_edt(~sp_, sampling=sp)[sr]   # ref surface -> pred surface
        o["hd"] = max(a.max(), b.max())
        o["hd95"] = max(np.percentile(a, 95), np.percentile(b, 95))
        o["assd"] = np.concatenate([a, b]).mean()
        o["nsd"] = [float(((a <= t).sum() + (b <= t).sum()) / (a.size + b.size)) for t in tols]
    return o


def score_labels(P, R, labels, sp, tols, conn, thr):
    """One dict per label of two label maps; labels None scores nonzero as one foreground."""
    targets = labels if labels is not None else [None]
    return [score(P != 0 if l is None else P == l, R != 0 if l is None else R == l, sp, tols, conn, thr)
            for l in targets]
