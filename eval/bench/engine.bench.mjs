#!/usr/bin/env node
// Engine benchmarks (targets from the engine issue), measured as whole `pipeline` commands:
//   a 200-stage pipeline of test skills plans in < 1 s; a fully cached re-run of it finishes in
//   < 1 s; `pipeline --help` cold start < 200 ms.
// Usage: npm run build && node eval/bench/engine.bench.mjs [--stages 200] [--repeats 5]
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const arg = (name, dflt) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const stages = arg("stages", 200);
const repeats = arg("repeats", 5);
const root = fileURLToPath(new URL("../../", import.meta.url));
const bin = join(root, "bin/pipeline.js");

// A private copy of the test skills whose scripts import the built kit by absolute URL.
const ws = mkdtempSync(join(tmpdir(), "medpipe-bench-"));
const skills = join(ws, "skills");
cpSync(join(root, "tests/skills"), skills, { recursive: true });
const kit = pathToFileURL(join(root, "dist/skill-kit/index.js")).href;
for (const s of readdirSync(skills)) {
  const script = join(skills, s, "scripts/run.js");
  writeFileSync(script, readFileSync(script, "utf8").replace("../../../../dist/skill-kit/index.js", kit));
}
// A binary tree of `stages` emit stages: s_i reads the value of its parent s_((i-1)/2).
// Values are distinct, so no stage is a cache hit of another on the first run.
const lines = ["name: bench", "stages:", "  s0: { skill: emit, with: { value: s0 } }"];
for (let i = 1; i < stages; i++)
  lines.push(`  s${i}: { skill: emit, with: { value: "s${i}<-\${s${(i - 1) >> 1}.value}" } }`);
mkdirSync(join(ws, "pipelines"));
const manifest = join(ws, "pipelines/bench.yaml");
writeFileSync(manifest, `${lines.join("\n")}\n`);

const time = (args) => {
  const t = process.hrtime.bigint();
  const r = spawnSync(process.execPath, [bin, ...args], {
    cwd: ws,
    encoding: "utf8",
    env: { ...process.env, CI: "1" },
  });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0)
    throw new Error(`pipeline ${args.join(" ")} exited ${r.status}: ${r.stderr.slice(-2000)}`);
  return { ms, out: r.stdout };
};
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const measure = (args) => median(Array.from({ length: repeats }, () => time(args).ms));

const sk = ["--skills-dir", skills];
const help = measure(["--help"]);
const planCold = measure(["plan", manifest, ...sk]);
const first = time(["run", manifest, ...sk, "--jobs", "2"]).ms;
const planWarm = measure(["plan", manifest, ...sk]);
const cached = measure(["run", manifest, ...sk]);
const last = time(["run", manifest, ...sk]);
const runDir = last.out.trim().split("\n").pop();
const ev = JSON.parse(readFileSync(join(runDir, "evidence.json"), "utf8"));
const statuses = Object.values(ev.stages).map((s) => s.status);
if (statuses.length !== stages || !statuses.every((s) => s === "cached"))
  throw new Error("re-run was not fully cached");

const row = (name, ms, target) =>
  `| ${name} | ${ms.toFixed(0)} ms | < ${target} ms | ${ms < target ? "yes" : "NO"} |`;
console.log(`engine benchmark: ${stages} stages, median of ${repeats}, node ${process.version}`);
console.log("| measurement | time | target | met |\n|---|---:|---:|:--:|");
console.log(row("`pipeline --help` (cold start)", help, 200));
console.log(row(`\`pipeline plan\`, ${stages} stages, nothing cached`, planCold, 1000));
console.log(row(`\`pipeline plan\`, ${stages} stages, all cached`, planWarm, 1000));
console.log(row(`\`pipeline run\`, ${stages} stages, fully cached re-run`, cached, 1000));
console.log(`(first full run, ${stages} stage processes with --jobs 2: ${(first / 1000).toFixed(1)} s)`);
