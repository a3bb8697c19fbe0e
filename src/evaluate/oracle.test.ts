// `pipeline evaluate` end to end against numpy + scipy: nibabel writes the pairs in
// different orientations (LPS vs RAS, PIR vs LAS, oblique, 2D flipped, .npy), and the
// reference metrics are computed on the anatomy in one space before anything was stored.
// The library is checked metric by metric; the built CLI (`npm run build` first) for its
// JSON, CSV, exit codes and one-line errors.
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { BIN, ROOT } from "../../tests/support/cli.js";
import { describeWithOracle, oracleHas, python } from "../../tests/support/oracle.js";
import type { LabelMetrics } from "../metrics/index.js";
import { pairCases } from "./pairs.js";
import { evaluatePairs } from "./run.js";

const describeOracle = describeWithOracle("nibabel", "scipy");

const LABELS = [1, 2, 3];
const TOLS = [0.5, 1, 2, 2.5];
const REL = 1e-6;

type OracleLabel = Record<string, number> & { nsd: number[] };
type OracleSummary = Record<string, { mean: number; std: number; n: number; nan: number; infinite: number }>;
interface Oracle {
  cases: Record<string, OracleLabel[]>;
  stored: Record<string, { pred: string[]; gt: string[] }>;
  summary: Record<string, OracleSummary>;
  nifti2d: OracleLabel[];
  npy2d: OracleLabel[];
}

const REFERENCE = readFileSync(new URL("../metrics/oracle-reference.py", import.meta.url), "utf8");
const GENERATE = readFileSync(new URL("./cases.oracle.py", import.meta.url), "utf8");

let dir = "";
let oracle: Oracle;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "medpipe-evaluate-"));
  if (!oracleHas("nibabel", "scipy")) return;
  oracle = python<Oracle>(`${REFERENCE}\n${GENERATE}`, { dir, labels: LABELS, tols: TOLS });
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function close(a: number, b: number): boolean {
  if (Number.isNaN(a) || Number.isNaN(b)) return Number.isNaN(a) && Number.isNaN(b);
  if (!Number.isFinite(a) || !Number.isFinite(b)) return a === b;
  return Math.abs(a - b) <= REL * Math.max(Math.abs(a), Math.abs(b)) + 1e-12;
}

/** Our metrics under the oracle's names. */
function flat(m: LabelMetrics): Record<string, number> {
  const s = m.surface!;
  const out: Record<string, number> = {
    ...m.overlap,
    ...m.volume,
    ldr: m.lesions.rate,
    hd: s.hd,
    hd95: s.hd95,
    assd: s.assd,
    predSurfaceVoxels: s.predSurfaceVoxels,
    refSurfaceVoxels: s.refSurfaceVoxels,
  };
  s.nsd.forEach((n, t) => {
    out[`nsd${t}`] = n.value;
  });
  return out;
}

function mismatches(where: string, ours: LabelMetrics, theirs: OracleLabel): string[] {
  const bad: string[] = [];
  const o = flat(ours);
  for (const [name, v] of Object.entries(o)) {
    const t = name.startsWith("nsd") ? theirs.nsd[Number(name.slice(3))]! : theirs[name]!;
    if (!close(v, t)) bad.push(`${where} ${name}: ours ${v}, oracle ${t}`);
  }
  return bad;
}

describeOracle("evaluatePairs vs numpy/scipy on NIfTI stored in different orientations", () => {
  it("the fixtures really are stored as intended", () => {
    expect(oracle.stored.b_lps).toEqual({ pred: ["L", "P", "S"], gt: ["R", "A", "S"] });
    expect(oracle.stored.c_mixed).toEqual({ pred: ["L", "A", "S"], gt: ["P", "I", "R"] });
  });

  it("pairs by case name, _0000 stripped, and every metric of every label matches", async () => {
    const pairs = pairCases(join(dir, "pred"), join(dir, "gt"));
    expect(pairs.map((p) => p.case)).toEqual(["a_ras", "b_lps", "c_mixed"]);
    expect(pairs[0]!.pred).toMatch(/a_ras_0000\.nii\.gz$/);
    // Default labels: label 3 appears only in the last reference, so the first two cases
    // are scored for it afterwards.
    const ev = await evaluatePairs(pairs, { tolerancesMm: TOLS });
    expect(ev.labels).toEqual(LABELS);
    expect(ev.cases.map((c) => `${c.case}:${c.label}`)).toEqual(
      pairs.flatMap((p) => LABELS.map((l) => `${p.case}:${l}`)),
    );
    const bad: string[] = [];
    for (const c of ev.cases) {
      const theirs = oracle.cases[c.case]![LABELS.indexOf(c.label as number)]!;
      bad.push(...mismatches(`${c.case} label ${c.label}`, c.metrics, theirs));
    }
    expect(bad).toEqual([]);
    // The awkward corners are really there: an infinite HD95 and a NaN RVE.
    const c2 = ev.cases.find((c) => c.case === "c_mixed" && c.label === 2)!;
    expect(c2.metrics.surface!.hd95).toBe(Infinity);
    const a3 = ev.cases.find((c) => c.case === "a_ras" && c.label === 3)!;
    expect(a3.metrics.volume.rve).toBeNaN();

    const sbad: string[] = [];
    for (const ls of ev.summary) {
      for (const [name, t] of Object.entries(oracle.summary[ls.label]!)) {
        const s = ls.pooled[name]!;
        for (const k of ["mean", "std", "n", "nan", "infinite"] as const)
          if (!close(s[k], t[k])) sbad.push(`label ${ls.label} ${name} ${k}: ours ${s[k]}, oracle ${t[k]}`);
      }
    }
    expect(sbad).toEqual([]);
  });

  it("2D NIfTI (prediction flipped) and 2D .npy (C vs Fortran order) match", async () => {
    const d2 = join(dir, "2d");
    for (const [ext, theirs] of [
      ["nii.gz", oracle.nifti2d],
      ["npy", oracle.npy2d],
    ] as const) {
      const ev = await evaluatePairs(pairCases(join(d2, `pred.${ext}`), join(d2, `gt.${ext}`)), {
        tolerancesMm: TOLS,
      });
      expect(ev.labels).toEqual([1, 2]);
      const bad = ev.cases.flatMap((c, j) => mismatches(`${ext} label ${c.label}`, c.metrics, theirs[j]!));
      expect(bad).toEqual([]);
      // 2D neighbourhoods: 4-connected lesions, not a one-slice 3D volume.
      expect(ev.cases[0]!.metrics.lesions.connectivity).toBe(4);
    }
  });
});

function run(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, "evaluate", ...args], { cwd: ROOT, encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const fromWire = (v: number | string): number =>
  typeof v === "number" ? v : v === "NaN" ? Number.NaN : v === "Infinity" ? Infinity : -Infinity;

describeOracle("pipeline evaluate (built CLI)", () => {
  it("--json: one object with cases, summary and definition; non-finite as strings", () => {
    const r = run([
      "--pred",
      join(dir, "pred"),
      "--gt",
      join(dir, "gt"),
      "--tolerances",
      "0.5,1,2,2.5",
      "--json",
    ]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as {
      cases: { case: string; label: number; metrics: Record<string, number | string> }[];
      summary: Record<string, { cases: number; metrics: Record<string, Record<string, number | string>> }>;
      definition: { surface: { definition: string; tolerances_mm: number[] }; non_finite: string };
    };
    expect(doc.cases).toHaveLength(9);
    expect(doc.definition.surface.definition).toBe("monai-voxel");
    expect(doc.definition.surface.tolerances_mm).toEqual(TOLS);
    const bad: string[] = [];
    for (const c of doc.cases) {
      const o = oracle.cases[c.case]![LABELS.indexOf(c.label)]!;
      const want: Record<string, number> = {
        dice: o.dice!,
        iou: o.iou!,
        hd95: o.hd95!,
        assd: o.assd!,
        rve: o.rve!,
      };
      TOLS.forEach((t, i) => {
        want[`nsd@${t}mm`] = o.nsd[i]!;
      });
      for (const [k, v] of Object.entries(want))
        if (!close(fromWire(c.metrics[k]!), v)) bad.push(`${c.case} ${c.label} ${k}`);
    }
    expect(bad).toEqual([]);
    expect(doc.cases.find((c) => c.case === "c_mixed" && c.label === 2)!.metrics.hd95).toBe("Infinity");
    const hd95 = doc.summary["2"]!.metrics.hd95!;
    expect(hd95.infinite).toBe(1);
    expect(close(fromWire(hd95.mean!), oracle.summary["2"]!.hd95!.mean)).toBe(true);
  });

  it("--csv: header and one row per case and label; text table by default", () => {
    const r = run(["--pred", join(dir, "pred"), "--gt", join(dir, "gt"), "--csv", "--labels", "1,2"]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split("\n");
    const header = lines[0]!.split(",");
    expect(header.slice(0, 4)).toEqual(["case", "label", "dice", "iou"]);
    expect(header).toContain("nsd@0.5mm");
    expect(lines).toHaveLength(1 + 3 * 2);
    const row = lines.find((l) => l.startsWith("c_mixed,2,"))!.split(",");
    expect(row[header.indexOf("dice")]).toBe("0");
    expect(row[header.indexOf("hd95")]).toBe("Infinity");
    const b1 = lines.find((l) => l.startsWith("b_lps,1,"))!.split(",");
    expect(close(Number(b1[header.indexOf("dice")]), oracle.cases.b_lps![0]!.dice!)).toBe(true);

    const text = run(["--pred", join(dir, "pred"), "--gt", join(dir, "gt")]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(
      /^case\s+label\s+Dice\s+IoU\s+Sens\s+Prec\s+RVE\s+LDR\s+HD95\s+ASSD\s+NSD@0.5/,
    );
    expect(text.stdout).toMatch(/^c_mixed\s+2\s+0\.0000\s.*\binf\b/m);
    expect(text.stdout).toMatch(/^ {2}HD95 .* n=2 +excluded 1 \(1 inf\)$/m);
  });

  it("mismatched grids: exit 2, one line naming both files, shapes and the affine difference", () => {
    const bad = join(dir, "bad");
    const shape = run(["--pred", join(bad, "pred_shape.nii.gz"), "--gt", join(bad, "gt.nii.gz")]);
    expect(shape.code).toBe(2);
    expect(shape.stdout).toBe("");
    expect(shape.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(shape.stderr).toContain(`--pred ${join(bad, "pred_shape.nii.gz")} [20, 20, 11]`);
    expect(shape.stderr).toContain(`--gt ${join(bad, "gt.nii.gz")} [20, 20, 10]`);
    const shift = run(["--pred", join(bad, "pred_shift.nii.gz"), "--gt", join(bad, "gt.nii.gz"), "--json"]);
    expect(shift.code).toBe(2);
    const err = JSON.parse(shift.stdout) as { ok: boolean; error: { kind: string; message: string } };
    expect(err.error.kind).toBe("usage");
    expect(err.error.message).toMatch(
      /\[20, 20, 10\] vs --gt .*\[20, 20, 10\], max affine difference 0\.500 mm/,
    );
  });

  it("cases on one side only: exit 2, one line per missing case, no stack trace", () => {
    const p = join(dir, "missing", "p");
    const g = join(dir, "missing", "g");
    mkdirSync(p, { recursive: true });
    mkdirSync(g, { recursive: true });
    const src = readFileSync(join(dir, "bad", "gt.nii.gz"));
    for (const n of ["a_0000", "d"]) writeFileSync(join(p, `${n}.nii.gz`), src);
    for (const n of ["a", "b", "c"]) writeFileSync(join(g, `${n}.nii.gz`), src);
    const r = run(["--pred", p, "--gt", g]);
    expect(r.code).toBe(2);
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines).toEqual([
      `error: case 'b': in --gt (${join(g, "b.nii.gz")}) but not in --pred ${p}`,
      `error: case 'c': in --gt (${join(g, "c.nii.gz")}) but not in --pred ${p}`,
      `error: case 'd': in --pred (${join(p, "d.nii.gz")}) but not in --gt ${g}`,
    ]);
    const usage = run(["--pred", p, "--gt", join(g, "a.nii.gz")]);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/^error: --pred .* is a folder but --gt .* is a file/);
    const both = run(["--pred", p, "--gt", g, "--json", "--csv"]);
    expect(both.code).toBe(2);
  });
});
