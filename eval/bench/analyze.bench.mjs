// Benchmark: dataset analysis of the 16-case full-size heart stand-in (320×320×110 per case,
// `pipeline fixtures make heart --cases 16 --size 320,320,110`), medpipe against a Python
// nibabel + numpy + scipy script computing the same per-case statistics
// (eval/bench/analyze_baseline.py, a multiprocessing pool of 2 workers), timed side by side in
// one run on the same machine; every case's numbers are compared, so the work is the same.
//
//   npm run build && node eval/bench/analyze.bench.mjs [--dataset /tmp/heart_full] [--repeats 2]
//
// The dataset is made (about 11 s a case) when the folder does not exist; reuse it between runs.
// Timed, each as a fresh process, wall clock from spawn to exit (interpreter start-up and imports
// included on both sides):
//   - medpipe library (the headline): `analyzeDataset(DIR, { concurrency: availableParallelism() })`
//     from dist/analyze, the skill's default: the analysis itself, what the
//     analyze skill's script spends inside the stage.
//   - medpipe skill: `pipeline run-script analyze --dataset DIR` with a fresh runs folder: the same
//     analysis plus the engine around any stage (a second Node process, hashing the stage's inputs,
//     the dataset included, for its cache key, run folder, fingerprint.json, evidence).
//   - python: `analyze_baseline.py DIR --workers 2`, the plain competent script.
//   - python --crop: the same, components labelled inside the foreground's bounding box on a
//     C-ordered view (a tuned, harder baseline).
// Every file is read once before timing, so all find the dataset in the page cache.
//
// MEDPIPE_DIST points at another build output (default: ./dist at the repo root).
// ORACLE_PYTHON picks the interpreter with nibabel + numpy + scipy (default /usr/bin/python3).
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const root = new URL("../../", import.meta.url).pathname;
const dist = process.env.MEDPIPE_DIST ?? join(root, "dist");
const python = process.env.ORACLE_PYTHON ?? "/usr/bin/python3";
const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const dataset = resolve(arg("--dataset", "/tmp/heart_full"));
const repeats = Number(arg("--repeats", "2"));
const pyWorkers = 2;

if (!existsSync(dataset)) {
  console.log(`making the 16-case full-size stand-in in ${dataset} (about 11 s a case)...`);
  execFileSync(
    process.execPath,
    [
      join(root, "bin/pipeline.js"),
      "fixtures",
      "make",
      "heart",
      "--cases",
      "16",
      "--size",
      "320,320,110",
    ].concat(["--out", dataset]),
    { stdio: "inherit" },
  );
}
const files = ["imagesTr", "labelsTr"].flatMap((d) =>
  readdirSync(join(dataset, d))
    .filter((f) => f.endsWith(".nii.gz") || f.endsWith(".nii"))
    .map((f) => join(dataset, d, f)),
);
let bytes = 0;
for (const f of files) bytes += readFileSync(f).length; // into the page cache for both sides

const work = mkdtempSync(join(tmpdir(), "medpipe-analyze-bench-"));

/** Runs a command to completion; returns its wall time (s) and stdout. */
function timed(cmd, args, options = {}) {
  const t = performance.now();
  const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 1 << 28, ...options });
  const seconds = (performance.now() - t) / 1000;
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(" ")} exited ${r.status}\n${r.stderr}\n${r.stdout}`.slice(0, 4000));
  return { seconds, stdout: r.stdout };
}

// The library alone, in a fresh process (a script file, not \`node -e\`: worker threads inherit
// the parent's exec arguments); it writes the analysis for the comparison below.
const libraryScript = `
import { writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
const { analyzeDataset } = await import(process.argv[2]);
const t = performance.now();
const analysis = await analyzeDataset(process.argv[3], { concurrency: availableParallelism() });
const seconds = (performance.now() - t) / 1000;
writeFileSync(process.argv[4], JSON.stringify(analysis));
console.log(JSON.stringify({ seconds, errors: analysis.errors }));
`;
const analyzeUrl = pathToFileURL(join(dist, "analyze/index.js")).href;
const libraryFile = join(work, "library.mjs");
writeFileSync(libraryFile, libraryScript);

function medpipeLibrary(out) {
  const r = timed(process.execPath, [libraryFile, analyzeUrl, dataset, out]);
  const report = JSON.parse(r.stdout.trim().split("\n").pop());
  if (report.errors > 0) throw new Error(`medpipe reported ${report.errors} error(s) on ${dataset}`);
  return { wall: r.seconds, inner: report.seconds };
}

// The skill as a stage run. run-script keeps paths inside its workspace: the dataset's parent.
function medpipeSkill(runsDir) {
  const r = timed(process.execPath, [
    join(root, "bin/pipeline.js"),
    "run-script",
    "--workdir",
    dirname(dataset),
    "--runs-dir",
    runsDir,
    "analyze",
    "--dataset",
    basename(dataset),
  ]);
  return { wall: r.seconds };
}

function pythonBaseline(out, crop) {
  const env = { ...process.env, OMP_NUM_THREADS: "1", OPENBLAS_NUM_THREADS: "1", MKL_NUM_THREADS: "1" };
  const args = [
    join(root, "eval/bench/analyze_baseline.py"),
    dataset,
    "--workers",
    String(pyWorkers),
    "--out",
    out,
  ];
  const r = timed(python, crop ? [...args, "--crop"] : args, { env });
  const report = JSON.parse(r.stdout.trim().split("\n").pop());
  return { wall: r.seconds, inner: report.seconds, versions: report.versions };
}

/** Compares medpipe's case records with the baseline's on a few fields; returns the mismatches. */
function compare(analysis, baseline) {
  const bad = [];
  const byId = new Map(baseline.map((c) => [c.id, c]));
  const close = (a, b) => a === b || Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
  for (const c of analysis.cases) {
    const p = byId.get(c.id);
    if (!p) {
      bad.push(`${c.id}: not in the baseline`);
      continue;
    }
    const check = (what, ok) => {
      if (!ok) bad.push(`${c.id}: ${what}`);
    };
    const i = c.intensity[0];
    check("shape", JSON.stringify(c.shape) === JSON.stringify(p.shape));
    check(
      "spacing",
      c.spacing.every((s, k) => close(s, p.spacing[k])),
    );
    check("orientation", c.orientation === p.orientation);
    check("sha256", c.files[0].sha256 === p.sha256.image && c.files[1].sha256 === p.sha256.label);
    check("foreground count", i.count === p.intensity.count);
    for (const k of ["mean", "std", "min", "max", "p00_5", "p50", "p99_5"])
      check(`intensity ${k} ${i[k]} vs ${p.intensity[k]}`, close(i[k], p.intensity[k]));
    check(
      "label values",
      JSON.stringify(c.labels.map((l) => [l.value, l.voxels, l.components])) ===
        JSON.stringify(p.labels.map((l) => [l.value, l.voxels, l.components])),
    );
    check(
      "volumes",
      c.labels.every((l, k) => close(l.volume_mm3, p.labels[k].volume_mm3)),
    );
    check("foreground components", c.foreground_components === p.foreground_components);
  }
  if (analysis.cases.length !== baseline.length)
    bad.push(`${analysis.cases.length} vs ${baseline.length} cases`);
  return bad;
}

const fmt = (x) => `${x.toFixed(2)} s`;
try {
  const rows = [];
  let versions;
  let checked;
  for (let r = 1; r <= repeats; r++) {
    const libOut = join(work, `medpipe-${r}.json`);
    const pyOut = join(work, `python-${r}.json`);
    const cropOut = join(work, `python-crop-${r}.json`);
    const skill = medpipeSkill(join(work, `runs-${r}`));
    const lib = medpipeLibrary(libOut);
    const py = pythonBaseline(pyOut, false);
    const crop = pythonBaseline(cropOut, true);
    versions = py.versions;
    const analysis = JSON.parse(readFileSync(libOut, "utf8"));
    const mismatches = [
      ...compare(analysis, JSON.parse(readFileSync(pyOut, "utf8"))),
      ...compare(analysis, JSON.parse(readFileSync(cropOut, "utf8"))).map((m) => `--crop: ${m}`),
    ];
    if (mismatches.length)
      throw new Error(`medpipe and the baseline disagree:\n  ${mismatches.join("\n  ")}`);
    checked = analysis.cases;
    rows.push({ r, skill, lib, py, crop });
    console.log(
      `run ${r}: medpipe library ${fmt(lib.wall)} (analyzeDataset ${fmt(lib.inner)}), skill ${fmt(skill.wall)}; ` +
        `python ${fmt(py.wall)} (pool ${fmt(py.inner)}), python --crop ${fmt(crop.wall)} (pool ${fmt(crop.inner)})`,
    );
  }
  const c0 = checked[0];
  console.log(
    `\nanalyze, ${checked.length} cases (${files.length} files, ${(bytes / 2 ** 20).toFixed(0)} MiB gzip), ` +
      `${cpus().length} cores (${cpus()[0]?.model.trim()}), medpipe cases at once ${availableParallelism()}, python pool ${pyWorkers}; ` +
      "wall clock of each process, start-up included",
  );
  console.log(
    "| run | medpipe library | medpipe skill (run-script) | python | python --crop | python / library | python --crop / library | python / skill |",
  );
  console.log("|----:|---:|---:|---:|---:|---:|---:|---:|");
  for (const { r, skill, lib, py, crop } of rows)
    console.log(
      `| ${r} | ${fmt(lib.wall)} | ${fmt(skill.wall)} | ${fmt(py.wall)} | ${fmt(crop.wall)} | ` +
        `${(py.wall / lib.wall).toFixed(2)}× | ${(crop.wall / lib.wall).toFixed(2)}× | ${(py.wall / skill.wall).toFixed(2)}× |`,
    );
  console.log(
    "\nmedpipe and both baselines agree on every case (shape, spacing, orientation, sha256, foreground count, " +
      "intensity mean/std/min/max/p0.5/p50/p99.5, label values/voxels/volumes/components); e.g. " +
      `${c0.id}: ${c0.shape.join("×")} ${c0.orientation}, ${c0.intensity[0].count} foreground voxels, ` +
      `mean ${c0.intensity[0].mean}, p99.5 ${c0.intensity[0].p99_5}, ${c0.foreground_components} component(s)`,
  );
  console.log(
    `node ${process.version}, python ${versions.python}, nibabel ${versions.nibabel}, numpy ${versions.numpy}, scipy ${versions.scipy}`,
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}
