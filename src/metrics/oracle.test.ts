// Every metric against an independent numpy + scipy implementation of the same
// definitions (scipy's distance_transform_edt, ndimage.label, binary_erosion), on seeded
// random masks. Each group makes one Python call: spawning costs more than the work.
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { describeWithOracle, python } from "../../tests/support/oracle.js";
import { summarize, summarizeCases } from "./aggregate.js";
import { type Connectivity, keepLargestComponent, labelComponents } from "./components.js";
import { distanceTransform, squaredDistanceToSites } from "./edt.js";
import { evaluateCase, type LabelMetrics } from "./index.js";
import { MaskFactory, seeded } from "./random-masks.js";
import { percentile } from "./surface.js";

const describeOracle = describeWithOracle("scipy");

const REL = 1e-6;

/** Equal within 1e-6 relative (absolute 1e-12 near zero); NaN equals NaN, ∞ equals ∞. */
function close(a: number, b: number): boolean {
  if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) && Number.isNaN(b);
  if (!Number.isFinite(a) || !Number.isFinite(b)) return a === b;
  return Math.abs(a - b) <= REL * Math.max(Math.abs(a), Math.abs(b)) + 1e-12;
}

/** Collects every disagreement so one failing run shows them all, not just the first. */
class Mismatches {
  readonly list: string[] = [];
  num(where: string, ours: number, theirs: number): void {
    if (!close(ours, theirs)) this.list.push(`${where}: ours ${ours}, oracle ${theirs}`);
  }
}

/** JSON has no NaN or ±Infinity: send them as strings, which Python's float() reads back. */
function wire(v: number): number | string {
  return Number.isFinite(v) ? v : String(v);
}

// The numpy + scipy reference lives in a .py file so that src/evaluate's tests share it.
const PY_HELPERS = readFileSync(new URL("./oracle-reference.py", import.meta.url), "utf8");

describeOracle("exact EDT vs scipy.ndimage.distance_transform_edt", () => {
  it("matches on random 1D/2D/3D masks with anisotropic spacing", () => {
    const f = new MaskFactory(seeded(101));
    const cases: { shape: number[]; spacing: number[]; mask: number[] }[] = [];
    for (let k = 0; k < 60; k++) {
      const rank = k < 4 ? 1 : k % 2 === 0 ? 2 : 3;
      const shape = rank === 1 ? [f.int(1, 30)] : f.shape(rank as 2 | 3);
      const spacing = rank === 1 ? [f.real(0.2, 3)] : f.spacing(rank as 2 | 3);
      const n = shape.reduce((a, b) => a * b, 1);
      const kind = k % 4;
      const mask =
        kind === 0
          ? f.noise(n, f.real(0.5, 0.98))
          : kind === 1
            ? f.blobs(shape.length === 1 ? [n, 1] : shape, 2).map((v) => 1 - v)
            : kind === 2
              ? f.thin(shape.length === 1 ? [n, 1] : shape).map((v) => 1 - v)
              : f.noise(n, 0.995);
      mask[f.int(0, n - 1)] = 0; // scipy needs at least one zero to measure anything
      cases.push({ shape, spacing, mask: Array.from(mask) });
    }
    // One larger volume so long lines and many envelope pops are exercised.
    {
      const shape = [48, 40, 24];
      const m = new MaskFactory(seeded(7)).blobs(shape, 6).map((v) => 1 - v);
      m[0] = 0;
      cases.push({ shape, spacing: [0.73, 0.91, 3.1], mask: Array.from(m) });
    }
    const oracle = python<number[][]>(
      `${PY_HELPERS}
OUTPUT = [ndimage.distance_transform_edt(arr(c["mask"], c["shape"]), sampling=c["spacing"]).ravel(order="F")
          for c in INPUT]`,
      cases,
    );
    const mm = new Mismatches();
    const f2 = new MaskFactory(seeded(102));
    cases.forEach((c, k) => {
      const ours = distanceTransform(Uint8Array.from(c.mask), c.shape, c.spacing);
      const theirs = oracle[k]!;
      for (let i = 0; i < ours.length; i++) mm.num(`case ${k} [${c.shape}] voxel ${i}`, ours[i]!, theirs[i]!);
      // Query-restricted transform: exact wherever it was asked.
      const zeros = Uint8Array.from(c.mask, (v) => (v === 0 ? 1 : 0));
      const queries = f2.noise(zeros.length, 0.1);
      const q2 = squaredDistanceToSites(zeros, c.shape, c.spacing, queries);
      for (let i = 0; i < q2.length; i++) {
        if (queries[i]) mm.num(`case ${k} query voxel ${i}`, Math.sqrt(q2[i]!), theirs[i]!);
      }
    });
    expect(mm.list.slice(0, 20)).toEqual([]);
  });
});

describeOracle("connected components vs scipy.ndimage.label", () => {
  const f = new MaskFactory(seeded(202));
  const cases: { shape: number[]; mask: number[]; conns: Connectivity[] }[] = [];
  for (let k = 0; k < 60; k++) {
    const rank: 2 | 3 = k % 2 === 0 ? 2 : 3;
    const shape = f.shape(rank);
    const n = shape.reduce((a, b) => a * b, 1);
    // Densities near the percolation threshold make long chains of merges.
    const mask = k % 3 === 0 ? f.blobs(shape, 5) : f.noise(n, f.real(0.15, 0.65));
    const conns: Connectivity[] = rank === 2 ? [4, 8] : [6, 18, 26];
    cases.push({ shape, mask: Array.from(mask), conns });
  }
  let oracle: { labels: number[][]; largest: number[][] }[] = [];
  beforeAll(() => {
    oracle = python<{ labels: number[][]; largest: number[][] }[]>(
      `${PY_HELPERS}
OUTPUT = []
for c in INPUT:
    m = arr(c["mask"], c["shape"])
    labels, largest = [], []
    for conn in c["conns"]:
        lab, n = ndimage.label(m, structure=structure(m.ndim, conn))
        can = canonical(lab)
        labels.append(can)
        sizes = np.bincount(can, minlength=n + 1)[1:]
        # Tie rule: the component whose first voxel comes first (lowest canonical label).
        largest.append((can == (int(np.argmax(sizes)) + 1)).astype(np.int64) if n else np.zeros_like(can))
    OUTPUT.append({"labels": labels, "largest": largest})`,
      cases,
    );
  });

  it("labels every voxel as scipy does, numbered by first voxel in memory order", () => {
    const bad: string[] = [];
    cases.forEach((c, k) => {
      c.conns.forEach((conn, j) => {
        const ours = labelComponents(Uint8Array.from(c.mask), c.shape, conn);
        const theirs = oracle[k]!.labels[j]!;
        const max = theirs.reduce((a, b) => Math.max(a, b), 0);
        if (ours.count !== max) bad.push(`case ${k} conn ${conn}: ${ours.count} components, oracle ${max}`);
        else if (ours.labels.some((l, i) => l !== theirs[i]))
          bad.push(`case ${k} conn ${conn}: labels differ`);
      });
    });
    expect(bad).toEqual([]);
  });

  it("keeps the largest component, first in memory order on ties", () => {
    const bad: string[] = [];
    cases.forEach((c, k) => {
      c.conns.forEach((conn, j) => {
        const ours = keepLargestComponent(Uint8Array.from(c.mask), c.shape, conn);
        const theirs = oracle[k]!.largest[j]!;
        if (ours.some((v, i) => v !== theirs[i])) bad.push(`case ${k} conn ${conn}`);
      });
    });
    expect(bad).toEqual([]);
  });
});

describe("percentile vs numpy.percentile (linear)", () => {
  it("matches on random lists with many ties", () => {
    const f = new MaskFactory(seeded(303));
    const cases: { values: number[]; q: number }[] = [];
    for (let k = 0; k < 200; k++) {
      const n = f.int(1, 300);
      const ties = k % 2 === 0;
      const values = Array.from({ length: n }, () => (ties ? f.int(0, 6) * 0.7 : f.real(0, 50)));
      cases.push({ values, q: f.pick([0, 5, 50, 95, 99, 100, f.real(0, 100)]) });
    }
    const oracle = python<number[]>(
      "import numpy as np\nOUTPUT = [float(np.percentile(np.asarray(c['values']), c['q'])) for c in INPUT]",
      cases,
    );
    const mm = new Mismatches();
    cases.forEach((c, k) => {
      mm.num(`case ${k} q=${c.q}`, percentile(Float64Array.from(c.values), c.q), oracle[k]!);
    });
    expect(mm.list).toEqual([]);
  });
});

interface CaseInput {
  shape: number[];
  spacing: number[];
  pred: number[];
  ref: number[];
  labels: number[] | null;
  tols: number[];
  conn: Connectivity;
  thr: number;
}

type OracleLabel = Record<string, number> & { nsd: number[] };

/** Reference implementation of evaluateCase with numpy + scipy, one dict per label. */
const PY_EVALUATE = `${PY_HELPERS}
OUTPUT = [score_labels(arr(c["pred"], c["shape"]), arr(c["ref"], c["shape"]), c["labels"],
                       c["spacing"], c["tols"], c["conn"], c["thr"]) for c in INPUT]
`;

function drawCases(count: number): CaseInput[] {
  const f = new MaskFactory(seeded(404));
  const out: CaseInput[] = [];
  for (let k = 0; k < count; k++) {
    const rank: 2 | 3 = k % 2 === 0 ? 3 : 2;
    const shape = f.shape(rank);
    const spacing = f.spacing(rank);
    const n = shape.reduce((a, b) => a * b, 1);
    const scenario = k % 10;
    let ref: Uint8Array;
    let pred: Uint8Array;
    let labels: number[] | null = null;
    if (scenario === 0) {
      // Empties: both, reference only, prediction only.
      const which = f.int(0, 2);
      ref = which === 1 ? new Uint8Array(n) : which === 0 ? new Uint8Array(n) : f.blobs(shape, 1);
      pred = which === 2 ? new Uint8Array(n) : which === 0 ? new Uint8Array(n) : f.blobs(shape, 1);
    } else if (scenario === 1) {
      ref = f.thin(shape);
      pred = f.pick([0, 1]) === 0 ? f.thin(shape) : f.perturb(ref, shape);
    } else if (scenario === 2) {
      ref = f.noise(n, f.real(0.02, 0.3)); // many small lesions
      pred = f.perturb(ref, shape);
    } else if (scenario === 3) {
      ref = f.pick([0, 1]) === 0 ? new Uint8Array(n).fill(1) : f.blobs(shape, 1);
      pred = f.perturb(ref, shape);
    } else if (scenario === 4 || scenario === 5) {
      // Multi-class label maps, scored per label.
      const a = f.blobs(shape, 2);
      const b = f.blobs(shape, 1);
      const refMap = a.map((v, i) => (b[i] ? 2 : v));
      const pa = f.perturb(a, shape);
      const pb = f.perturb(b, shape);
      const predMap = pa.map((v, i) => (pb[i] ? 2 : v));
      ref = refMap;
      pred = predMap;
      labels = f.pick([[1, 2], [2], [1, 2, 3]]);
    } else {
      ref = f.blobs(shape, f.int(1, 4));
      pred = f.perturb(ref, shape);
    }
    // Tolerances that land exactly on voxel distances test the <= boundary.
    const tols = f.pick([
      [0.5, 1, 2],
      [0.5, 1, 2, spacing[0]!, 2 * spacing[1]!],
    ]);
    const conn: Connectivity = f.pick(rank === 3 ? [6, 6, 18, 26] : [4, 4, 8]) as Connectivity;
    const thr = f.pick([0, 0, 0.3, 0.5]);
    out.push({ shape, spacing, pred: Array.from(pred), ref: Array.from(ref), labels, tols, conn, thr });
  }
  return out;
}

describeOracle("evaluateCase vs numpy/scipy reference (monai-voxel)", () => {
  it("agrees on every metric for 260 random cases within 1e-6 relative", () => {
    const cases = drawCases(260);
    const oracle = python<OracleLabel[][]>(PY_EVALUATE, cases);
    const mm = new Mismatches();
    let labelsScored = 0;
    const kinds = { empty: 0, oneEmpty: 0, border: 0 };
    cases.forEach((c, k) => {
      // Int16 label maps in half the cases: metrics must not care about the buffer type.
      const asArray = k % 2 === 0 ? Int16Array.from(c.pred) : Uint8Array.from(c.pred);
      const res: LabelMetrics[] = evaluateCase(
        { data: asArray, shape: c.shape, spacing: c.spacing },
        { data: Int16Array.from(c.ref), shape: c.shape, spacing: c.spacing },
        {
          ...(c.labels ? { labels: c.labels } : {}),
          tolerancesMm: c.tols,
          lesions: { connectivity: c.conn, diceThreshold: c.thr },
        },
      );
      const theirs = oracle[k]!;
      expect(res.length).toBe(theirs.length);
      res.forEach((m, j) => {
        labelsScored++;
        const o = theirs[j]!;
        const at = `case ${k} [${c.shape}] label ${m.label}`;
        const s = m.surface!;
        if (o.predSurfaceVoxels === 0 && o.refSurfaceVoxels === 0) kinds.empty++;
        else if (o.predSurfaceVoxels === 0 || o.refSurfaceVoxels === 0) kinds.oneEmpty++;
        const ours: Record<string, number> = {
          ...m.overlap,
          ...m.volume,
          ldr: m.lesions.rate,
          hd: s.hd,
          hd95: s.hd95,
          assd: s.assd,
          predSurfaceVoxels: s.predSurfaceVoxels,
          refSurfaceVoxels: s.refSurfaceVoxels,
        };
        for (const [name, v] of Object.entries(ours)) mm.num(`${at} ${name}`, v, o[name]!);
        s.nsd.forEach((v, t) => {
          mm.num(`${at} nsd@${v.toleranceMm}`, v.value, o.nsd[t]!);
        });
        expect(s.definition).toBe("monai-voxel");
      });
      const [nx = 1, ny = 1] = c.shape;
      if (c.ref.some((v, i) => v !== 0 && (i % nx === 0 || Math.floor(i / nx) % ny === 0))) kinds.border++;
    });
    expect(mm.list.slice(0, 30)).toEqual([]);
    // The draw really covers the awkward corners the acceptance names.
    expect(labelsScored).toBeGreaterThanOrEqual(300);
    expect(kinds.empty).toBeGreaterThan(5);
    expect(kinds.oneEmpty).toBeGreaterThan(5);
    expect(kinds.border).toBeGreaterThan(50);
  });
});

describe("aggregation vs numpy (nan-aware mean, ddof=1 std, non-finite excluded)", () => {
  it("summarize matches on random lists with NaN and infinities", () => {
    const f = new MaskFactory(seeded(505));
    const lists: number[][] = [];
    for (let k = 0; k < 80; k++) {
      const n = f.int(0, 25);
      lists.push(
        Array.from({ length: n }, () => {
          const u = f.real(0, 1);
          return u < 0.1 ? Number.NaN : u < 0.18 ? Infinity : u < 0.2 ? -Infinity : f.real(-5, 40);
        }),
      );
    }
    const oracle = python<{ mean: number; std: number; n: number; nan: number; infinite: number }[]>(
      `import numpy as np
OUTPUT = []
for v in INPUT:
    a = np.asarray([float(x) for x in v])
    fin = a[np.isfinite(a)]
    OUTPUT.append(dict(mean=fin.mean() if fin.size else float("nan"),
                       std=fin.std(ddof=1) if fin.size > 1 else float("nan"),
                       n=int(fin.size), nan=int(np.isnan(a).sum()), infinite=int(np.isinf(a).sum())))`,
      lists.map((l) => l.map(wire)),
    );
    const mm = new Mismatches();
    lists.forEach((l, k) => {
      const s = summarize(l);
      const o = oracle[k]!;
      mm.num(`list ${k} mean`, s.mean, o.mean);
      mm.num(`list ${k} std`, s.std, o.std);
      mm.num(`list ${k} n`, s.n, o.n);
      mm.num(`list ${k} nan`, s.nan, o.nan);
      mm.num(`list ${k} infinite`, s.infinite, o.infinite);
    });
    expect(mm.list).toEqual([]);
  });

  it("summarizeCases groups per label, pooled and per fold", () => {
    const f = new MaskFactory(seeded(606));
    const rows = Array.from({ length: 40 }, (_, k) => ({
      case: `c${k >> 1}`,
      fold: 1 + ((k >> 1) % 5),
      label: 1 + (k % 2),
      metrics: { dice: f.real(0.5, 1), hd95: f.real(0, 1) < 0.15 ? Infinity : f.real(1, 20) },
    }));
    const oracle = python<Record<string, Record<string, Record<string, [number, number, number]>>>>(
      `import numpy as np
OUTPUT = {}
def s(v):
    a = np.asarray([float(x) for x in v]); fin = a[np.isfinite(a)]
    return [fin.mean() if fin.size else float("nan"), fin.std(ddof=1) if fin.size > 1 else float("nan"), int(fin.size)]
for label in sorted({r["label"] for r in INPUT}):
    rs = [r for r in INPUT if r["label"] == label]
    groups = {"pooled": rs}
    for fold in sorted({r["fold"] for r in rs}):
        groups[str(fold)] = [r for r in rs if r["fold"] == fold]
    OUTPUT[str(label)] = {g: {m: s([r["metrics"][m] for r in v]) for m in ("dice", "hd95")} for g, v in groups.items()}`,
      rows.map((r) => ({ ...r, metrics: { dice: wire(r.metrics.dice), hd95: wire(r.metrics.hd95) } })),
    );
    const mm = new Mismatches();
    const summary = summarizeCases(rows);
    expect(summary.map((s) => s.label)).toEqual(["1", "2"]);
    for (const ls of summary) {
      const o = oracle[ls.label]!;
      const groups: [string, Record<string, { mean: number; std: number; n: number }>][] = [
        ["pooled", ls.pooled],
        ...Object.entries(ls.folds),
      ];
      expect(groups.length).toBe(6);
      for (const [g, t] of groups) {
        for (const m of ["dice", "hd95"]) {
          const [mean, std, n] = o[g]![m]!;
          mm.num(`label ${ls.label} ${g} ${m} mean`, t[m]!.mean, mean);
          mm.num(`label ${ls.label} ${g} ${m} std`, t[m]!.std, std);
          mm.num(`label ${ls.label} ${g} ${m} n`, t[m]!.n, n);
        }
      }
    }
    expect(mm.list).toEqual([]);
  });
});
