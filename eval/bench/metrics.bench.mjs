// Benchmark: HD95 + ASSD + NSD (monai-voxel definition) on a 320×320×110 pair of
// realistic masks, medpipe's TypeScript vs a numpy/scipy reference, both single-threaded,
// timed in the same run on the same machine.
//
//   npm run build && node eval/bench/metrics.bench.mjs [--repeats 5]
//
// MEDPIPE_DIST points at another build output (default: ./dist at the repo root).
// ORACLE_PYTHON picks the interpreter that has numpy + scipy (default /usr/bin/python3).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const root = new URL("../../", import.meta.url);
const dist = process.env.MEDPIPE_DIST ?? new URL("dist/", root).pathname;
const { surfaceMetrics } = await import(pathToFileURL(join(dist, "metrics/index.js")).href);
const python = process.env.ORACLE_PYTHON ?? "/usr/bin/python3";
const repeatsArg = process.argv.indexOf("--repeats");
const repeats = repeatsArg > 0 ? Number(process.argv[repeatsArg + 1]) : 5;

const shape = [320, 320, 110];
const spacing = [1.25, 1.25, 1.37];
const tolerances = [0.5, 1, 2];

/** mulberry32, so every run scores the same masks. */
function seeded(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * An organ-like shape: a union of overlapping ellipsoids around the centre of the field
 * of view, with a surface bumpy at a few voxels' scale, about 1–2 % of the volume.
 */
function organ(ellipsoids) {
  const [nx, ny, nz] = shape;
  const out = new Uint8Array(nx * ny * nz);
  for (const e of ellipsoids) {
    const [cx, cy, cz, rx, ry, rz] = e;
    const z0 = Math.max(0, Math.floor(cz - rz));
    const z1 = Math.min(nz - 1, Math.ceil(cz + rz));
    const y0 = Math.max(0, Math.floor(cy - ry));
    const y1 = Math.min(ny - 1, Math.ceil(cy + ry));
    const x0 = Math.max(0, Math.floor(cx - rx));
    const x1 = Math.min(nx - 1, Math.ceil(cx + rx));
    for (let z = z0; z <= z1; z++) {
      for (let y = y0; y <= y1; y++) {
        for (let x = x0; x <= x1; x++) {
          const q = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 + ((z - cz) / rz) ** 2;
          if (q <= 1) out[x + nx * (y + ny * z)] = 1;
        }
      }
    }
  }
  return out;
}

function drawMasks() {
  const r = seeded(2024);
  const ref = [];
  for (let k = 0; k < 40; k++) {
    // A large body plus many small lobes make a lumpy, organ-like surface.
    const big = k < 4;
    ref.push([
      160 + (r() - 0.5) * (big ? 20 : 90),
      150 + (r() - 0.5) * (big ? 20 : 80),
      55 + (r() - 0.5) * (big ? 8 : 40),
      big ? 30 + r() * 15 : 5 + r() * 10,
      big ? 25 + r() * 15 : 5 + r() * 10,
      big ? 18 + r() * 8 : 3 + r() * 6,
    ]);
  }
  // The prediction: every lobe moved and resized by a voxel or two, one lobe missed,
  // and a false-positive blob elsewhere — the errors a decent model makes.
  const pred = ref
    .slice(1)
    .map(([cx, cy, cz, rx, ry, rz]) => [
      cx + (r() - 0.5) * 3,
      cy + (r() - 0.5) * 3,
      cz + (r() - 0.5) * 2,
      rx * (0.93 + r() * 0.14),
      ry * (0.93 + r() * 0.14),
      rz * (0.93 + r() * 0.14),
    ]);
  pred.push([70, 240, 30, 6, 5, 4]);
  return { ref: organ(ref), pred: organ(pred) };
}

const PY = `
import sys, time, json
import numpy as np
from scipy import ndimage
shape, spacing, tols, repeats = json.loads(sys.argv[1])
P = np.fromfile(sys.argv[2], dtype=np.uint8).reshape(shape, order="F").astype(bool)
R = np.fromfile(sys.argv[3], dtype=np.uint8).reshape(shape, order="F").astype(bool)

def surf(m):
    return m & ~ndimage.binary_erosion(m, structure=ndimage.generate_binary_structure(3, 1), border_value=0)

def metrics(p, r):
    sp, sr = surf(p), surf(r)
    a = ndimage.distance_transform_edt(~sr, sampling=spacing)[sp]
    b = ndimage.distance_transform_edt(~sp, sampling=spacing)[sr]
    return dict(hd95=float(max(np.percentile(a, 95), np.percentile(b, 95))),
                assd=float(np.concatenate([a, b]).mean()),
                nsd=[float(((a <= t).sum() + (b <= t).sum()) / (a.size + b.size)) for t in tols])

def cropped(p, r):
    # MONAI's get_mask_edges crops to the union's bounding box with a 1-voxel zero margin.
    idx = np.nonzero(p | r)
    sl = tuple(slice(i.min(), i.max() + 1) for i in idx)
    return metrics(np.pad(p[sl], 1), np.pad(r[sl], 1))

out = {}
for name, fn in (("full", metrics), ("cropped", cropped)):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter(); res = fn(P, R); times.append(time.perf_counter() - t0)
    out[name] = dict(result=res, seconds=sorted(times)[len(times) // 2])
print(json.dumps(out))
`;

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

const { ref, pred } = drawMasks();
const count = (m) => m.reduce((a, b) => a + b, 0);
const dir = mkdtempSync(join(tmpdir(), "medpipe-bench-"));
try {
  writeFileSync(join(dir, "pred.u8"), pred);
  writeFileSync(join(dir, "ref.u8"), ref);

  // Warm up the JIT on the real workload, then time.
  surfaceMetrics(pred, ref, shape, spacing, tolerances);
  const times = [];
  let ours;
  for (let i = 0; i < repeats; i++) {
    const t0 = performance.now();
    ours = surfaceMetrics(pred, ref, shape, spacing, tolerances);
    times.push((performance.now() - t0) / 1000);
  }
  const tsSeconds = median(times);

  const env = { ...process.env, OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: "1", MKL_NUM_THREADS: "1" };
  const py = JSON.parse(
    execFileSync(
      python,
      [
        "-c",
        PY,
        JSON.stringify([shape, spacing, tolerances, repeats]),
        join(dir, "pred.u8"),
        join(dir, "ref.u8"),
      ],
      { encoding: "utf8", env, maxBuffer: 1 << 26 },
    ),
  );

  const rel = (a, b) => Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b), 1e-300);
  const agree =
    rel(ours.hd95, py.full.result.hd95) < 1e-9 &&
    rel(ours.assd, py.full.result.assd) < 1e-9 &&
    ours.nsd.every((n, i) => rel(n.value, py.full.result.nsd[i]) < 1e-12);

  const report = {
    shape,
    spacing,
    voxels: { pred: count(pred), ref: count(ref) },
    repeats,
    medpipe: { seconds: tsSeconds, hd95: ours.hd95, assd: ours.assd, nsd: ours.nsd.map((n) => n.value) },
    scipyFullVolume: { seconds: py.full.seconds, ...py.full.result },
    scipyCropped: { seconds: py.cropped.seconds, ...py.cropped.result },
    speedupVsFull: py.full.seconds / tsSeconds,
    speedupVsCropped: py.cropped.seconds / tsSeconds,
    resultsAgree: agree,
    node: process.version,
  };
  console.log(JSON.stringify(report, null, 2));
  if (!agree) process.exitCode = 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
