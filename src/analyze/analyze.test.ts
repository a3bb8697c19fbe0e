// analyze against an independent Python reference (nibabel + numpy + scipy.ndimage.label) on the
// heart_micro fixture and on a crafted dataset with one problem per case.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { ROOT } from "../../tests/support/cli.js";
import { describeWithOracle, python } from "../../tests/support/oracle.js";
import { type Analysis, analyzeDataset, DEFAULT_SETTINGS } from "./index.js";

const describeOracle = describeWithOracle("nibabel", "scipy");

const ORACLE = readFileSync(new URL("./analyze.oracle.py", import.meta.url), "utf8");
const BAD = readFileSync(new URL("./bad-dataset.oracle.py", import.meta.url), "utf8");
const REL = 1e-9;

interface RefStats {
  over: string;
  count: number;
  non_finite: number;
  [k: string]: number | string | null;
}
interface RefCase {
  id: string;
  readable: boolean;
  files: [string, string, string | null][];
  shape?: number[];
  spacing?: number[];
  affine?: number[];
  orientation?: string;
  canonical_shape?: number[];
  canonical_spacing?: number[];
  intensity?: RefStats[];
  labels?: { value: number; voxels: number; volume_mm3: number; components: number }[];
  foreground_voxels?: number;
  foreground_components?: number;
}
interface RefProblem {
  severity: string;
  check: string;
  case: string | null;
  file: string;
}
interface Ref {
  cases: RefCase[];
  problems: RefProblem[];
  target_spacing: number[];
  anisotropic_axis: number | null;
  resampled_size: Record<string, number[]>;
  patch_size: number[];
  spacing: Record<string, number[]>;
  pooled: Record<string, number>;
  fingerprint: string;
}

function close(a: number | null | undefined, b: number | null | undefined, rel = REL): boolean {
  if (a === null || a === undefined || b === null || b === undefined) return a === b;
  return Math.abs(a - b) <= rel * Math.max(1, Math.abs(a), Math.abs(b));
}

function expectClose(
  actual: number[] | null | undefined,
  expected: number[] | undefined,
  what: string,
): void {
  expect(actual?.length, what).toBe(expected?.length);
  actual?.forEach((x, i) => {
    expect(close(x, expected![i]), `${what}[${i}]: ${x} vs ${expected![i]}`).toBe(true);
  });
}

/** Every per-case number of the analysis equals the reference's. */
function compareCases(a: Analysis, ref: Ref): void {
  expect(a.cases.map((c) => c.id)).toEqual(ref.cases.map((c) => c.id));
  a.cases.forEach((c, i) => {
    const r = ref.cases[i]!;
    const at = `case ${c.id}`;
    expect(c.readable, at).toBe(r.readable);
    expect(
      c.files.map((f) => [f.role, f.path, f.sha256]),
      at,
    ).toEqual(r.files);
    if (r.readable) {
      expect(c.shape, at).toEqual(r.shape);
      expectClose(c.spacing, r.spacing, `${at} spacing`);
      expectClose(c.affine, r.affine, `${at} affine`);
      expect(c.orientation, at).toBe(r.orientation);
      expect(c.canonical_shape, at).toEqual(r.canonical_shape);
      expectClose(c.canonical_spacing, r.canonical_spacing, `${at} canonical spacing`);
      expect(c.intensity.length, at).toBe(1);
      const s = c.intensity[0]!;
      const rs = r.intensity![0]!;
      expect([s.over, s.count, s.non_finite], at).toEqual([rs.over, rs.count, rs.non_finite]);
      for (const k of ["mean", "std", "min", "max", "p00_5", "p50", "p99_5"] as const)
        expect(close(s[k], rs[k] as number | null), `${at} ${k}: ${s[k]} vs ${rs[k]}`).toBe(true);
    }
    if (r.labels) {
      expect(
        c.labels.map((l) => [l.value, l.voxels, l.components]),
        at,
      ).toEqual(r.labels.map((l) => [l.value, l.voxels, l.components]));
      c.labels.forEach((l, j) => {
        expect(close(l.volume_mm3, r.labels![j]!.volume_mm3), `${at} volume`).toBe(true);
      });
      expect([c.foreground_voxels, c.foreground_components], at).toEqual([
        r.foreground_voxels,
        r.foreground_components,
      ]);
    } else expect(c.labels, at).toEqual([]);
  });
}

function compareDataset(a: Analysis, ref: Ref): void {
  expectClose(a.suggestions.target_spacing, ref.target_spacing, "target spacing");
  expect(a.suggestions.anisotropic_axis).toBe(ref.anisotropic_axis);
  for (const k of ["min", "median", "max", "p10", "p90"] as const) {
    expectClose(a.suggestions.resampled_size?.[k], ref.resampled_size[k], `resampled ${k}`);
    expectClose(a.summary.spacing?.[k], ref.spacing[k], `spacing ${k}`);
  }
  expect(a.suggestions.patch_size).toEqual(ref.patch_size);
  const pooled = a.summary.intensity[0]!;
  expect(pooled.count).toBe(ref.pooled.count);
  for (const k of ["mean", "std", "min", "max", "median", "p00_5", "p99_5"] as const)
    expect(close(pooled[k], ref.pooled[k]!), `pooled ${k}: ${pooled[k]} vs ${ref.pooled[k]}`).toBe(true);
  expect(a.fingerprint).toBe(ref.fingerprint);
}

describeOracle("analyze on fixtures/heart_micro", () => {
  let a: Analysis;
  let ref: Ref;
  beforeAll(async () => {
    a = await analyzeDataset(join(ROOT, "fixtures/heart_micro"));
    ref = python<Ref>(ORACLE, {
      cases: a.cases.map((c) => ({ id: c.id, image: c.image, label: c.label })),
      allowed: [0, 1],
      settings: a.settings,
    });
  });

  it("per-case shape, spacing, affine, orientation, intensity and label numbers equal the reference", () => {
    expect(a.cases).toHaveLength(8);
    compareCases(a, ref);
  });

  it("target spacing, resampled sizes, patch, pooled statistics and fingerprint equal the reference", () => {
    compareDataset(a, ref);
  });

  it("finds no error, warns about mixed orientations, and records the settings", () => {
    expect(a.errors).toBe(0);
    const warned = a.problems.map((p) => [p.severity, p.check, p.case]);
    expect(warned).toEqual(ref.problems.map((p) => [p.severity, p.check, p.case]));
    expect(a.summary.orientations).toEqual({ LAS: 2, LPS: 3, RAS: 3 });
    expect(a.settings).toEqual(DEFAULT_SETTINGS);
    expect(a.dataset).toMatchObject({ name: "heart_synthetic", format: "msd", modality: "MR" });
  });

  it("the most_common rule and the fingerprint follow the settings", async () => {
    const b = await analyzeDataset(join(ROOT, "fixtures/heart_micro"), {
      settings: { target_spacing_rule: "most_common" },
    });
    const r = python<Ref>(ORACLE, {
      cases: b.cases.map((c) => ({ id: c.id, image: c.image, label: c.label })),
      allowed: [0, 1],
      settings: b.settings,
    });
    expectClose(b.suggestions.target_spacing, r.target_spacing, "most_common target");
    expect(b.suggestions.patch_size).toEqual(r.patch_size);
    expect(b.fingerprint).toBe(r.fingerprint);
    expect(b.fingerprint).not.toBe(a.fingerprint);
  });
});

describeOracle("analyze on a dataset with one problem per case", () => {
  let dir = "";
  let a: Analysis;
  let ref: Ref;
  let missing: string[];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "medpipe-analyze-bad-"));
    const made = python<{ cases: { id: string; image: string[]; label: string }[]; missing: string[] }>(BAD, {
      dir,
    });
    missing = made.missing;
    a = await analyzeDataset(dir);
    ref = python<Ref>(ORACLE, { cases: made.cases, allowed: [0, 1], settings: a.settings, listed: missing });
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("reports every problem in one pass, each one line naming its file", () => {
    const got = a.problems.map((p) => [p.severity, p.check, p.case, p.file]);
    const expected = [
      ["error", "dataset", null, missing[0]],
      ...ref.problems.map((p) => [p.severity, p.check, p.case, p.file]),
    ];
    const key = (x: unknown[]): string => JSON.stringify(x);
    expect(got.map(key).sort()).toEqual(expected.map(key).sort());
    expect(new Set(got.map((p) => p[2]))).toEqual(
      new Set([
        null,
        "bad_b_shape",
        "bad_c_affine",
        "bad_d_values",
        "bad_e_empty",
        "bad_f_nan",
        "bad_g_trunc",
        "bad_h_lps",
        "bad_j_nonint",
      ]),
    );
    for (const p of a.problems) {
      expect(p.message.startsWith(`${p.file}: `), p.message).toBe(true);
      expect(p.message).not.toContain("\n");
    }
    expect(a.errors).toBe(8);
    expect(a.warnings).toBe(1);
  });

  it("says what is wrong: the drift in mm, the values, the counts", () => {
    const msg = (check: string): string => a.problems.find((p) => p.check === check)!.message;
    const drift = ref.cases.find((c) => c.id === "bad_c_affine") as RefCase & { drift: number };
    expect(msg("affine-mismatch")).toContain(`up to ${drift.drift.toFixed(3)} mm apart`);
    expect(drift.drift).toBeCloseTo(0.5, 6);
    expect(msg("label-values")).toContain("label values 3 (2 voxels) outside the declared set {0, 1}");
    expect(msg("non-finite")).toContain("3 NaN or infinite voxels");
    expect(msg("label-not-integer")).toContain("1 voxels are not integer");
    expect(msg("unreadable")).toMatch(/truncated/);
    expect(msg("shape-mismatch")).toContain("[20, 18, 15] differs from image shape [20, 18, 16]");
  });

  it("the numbers of what could be read still equal the reference", () => {
    compareCases(a, ref);
    expect(a.fingerprint).toBe(ref.fingerprint);
    expectClose(a.suggestions.target_spacing, ref.target_spacing, "target spacing");
  });
});
