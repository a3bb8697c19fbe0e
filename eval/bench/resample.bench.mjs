// Benchmark: resampling one 320×320×110 float32 volume from spacing 0.625×0.625×1.37 mm to
// 1.25×1.25×1.37 mm (→ 160×160×110), medpipe's resampleImage vs
// scipy.ndimage.zoom(order=1, mode="nearest", grid_mode=True) on the same data, both
// single-threaded, timed in the same run on the same machine; the outputs are compared too.
//
//   npm run build && node eval/bench/resample.bench.mjs [--repeats 5]
//
// MEDPIPE_DIST points at another build output (default: ./dist at the repo root).
// ORACLE_PYTHON picks the interpreter that has numpy + scipy (default /usr/bin/python3).
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const root = new URL("../../", import.meta.url);
const dist = process.env.MEDPIPE_DIST ?? new URL("dist/", root).pathname;
const imaging = await import(pathToFileURL(join(dist, "imaging/index.js")).href);
const { anisotropicAxis, resampledShape, resampleImage, writeNpy } = imaging;
const python = process.env.ORACLE_PYTHON ?? "/usr/bin/python3";
const repeatsArg = process.argv.indexOf("--repeats");
const repeats = repeatsArg > 0 ? Number(process.argv[repeatsArg + 1]) : 5;

const shape = [320, 320, 110];
const spacing = [0.625, 0.625, 1.37];
const target = [1.25, 1.25, 1.37];

/** mulberry32, so every run resamples the same volume. */
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
 * An MR-like volume: a bright ellipsoidal body with smooth internal structure, a bias field and
 * noise, so interpolation sees both edges and texture (values roughly 0..400).
 */
function makeVolume() {
  const [nx, ny, nz] = shape;
  const r = seeded(7);
  const data = new Float32Array(nx * ny * nz);
  let i = 0;
  for (let z = 0; z < nz; z++) {
    const w = (z - nz / 2) / (nz / 2);
    for (let y = 0; y < ny; y++) {
      const v = (y - ny / 2) / (ny / 2.4);
      for (let x = 0; x < nx; x++, i++) {
        const u = (x - nx / 2) / (nx / 2.2);
        const body = u * u + v * v + 0.6 * w * w < 1 ? 1 : 0;
        const texture = 80 * Math.sin(x / 9) * Math.cos(y / 13) + 60 * Math.sin((x + z) / 17);
        const bias = 1 + 0.3 * u - 0.2 * v;
        data[i] = body * (200 + texture) * bias + 20 * r();
      }
    }
  }
  return data;
}

const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const dir = mkdtempSync(join(tmpdir(), "medpipe-resample-bench-"));
try {
  const data = makeVolume();
  const outShape = resampledShape(shape, spacing, target);
  const nearestAxis = anisotropicAxis(spacing, target);
  const volume = { data, shape, spacing };
  await writeNpy(join(dir, "input.npy"), { data, dtype: "float32", shape, fortranOrder: true });

  resampleImage(volume, outShape, { nearestAxis }); // warm-up: JIT
  const times = [];
  let ours;
  for (let k = 0; k < repeats; k++) {
    const t = performance.now();
    ours = resampleImage(volume, outShape, { nearestAxis });
    times.push((performance.now() - t) / 1000);
  }
  await writeNpy(join(dir, "ours.npy"), {
    data: ours.data,
    dtype: "float32",
    shape: outShape,
    fortranOrder: true,
  });

  // scipy on the array as numpy loads it (Fortran order) and on a C-ordered copy; the faster is
  // the baseline, so scipy is not penalised for the memory layout.
  const script = `
import json, sys, time
import numpy as np
from scipy import ndimage
d, out, repeats = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
x = np.load(d + "/input.npy")
res = {}
for name, arr in (("fortran", x), ("c", np.ascontiguousarray(x))):
    zoom = [o / i for o, i in zip(out, arr.shape)]
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        y = ndimage.zoom(arr, zoom, order=1, mode="nearest", grid_mode=True)
        ts.append(time.perf_counter() - t)
    assert list(y.shape) == list(out), y.shape
    res[name] = sorted(ts)[len(ts) // 2]
ours = np.load(d + "/ours.npy")
res["max_abs_diff"] = float(np.abs(ours.astype(np.float64) - y.astype(np.float64)).max())
res["versions"] = {"numpy": np.__version__, "scipy": __import__("scipy").__version__}
print(json.dumps(res))
`;
  const env = { ...process.env, OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: "1", MKL_NUM_THREADS: "1" };
  const py = JSON.parse(
    execFileSync(python, ["-c", script, dir, JSON.stringify(outShape), String(repeats)], {
      env,
      encoding: "utf8",
    }),
  );
  const ts = median(times);
  const scipy = Math.min(py.fortran, py.c);
  console.log(
    `resample ${shape.join("×")} float32, spacing ${spacing.join("×")} → ${target.join("×")} (${outShape.join("×")}), median of ${repeats}`,
  );
  console.log(`  medpipe resampleImage            ${(ts * 1000).toFixed(1)} ms`);
  console.log(`  scipy zoom, Fortran-order input  ${(py.fortran * 1000).toFixed(1)} ms`);
  console.log(`  scipy zoom, C-order input        ${(py.c * 1000).toFixed(1)} ms`);
  console.log(`  speed-up vs the faster scipy     ${(scipy / ts).toFixed(2)}×`);
  console.log(`  max |medpipe - scipy|            ${py.max_abs_diff.toExponential(2)}`);
  console.log(`  node ${process.version}, numpy ${py.versions.numpy}, scipy ${py.versions.scipy}`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
