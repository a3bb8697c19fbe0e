// Case pairing, flag parsing and label discovery: the small rules, checked by hand.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { UsageError } from "../manifest/diagnostics.js";
import { labelValues, parseNumberList } from "./labels.js";
import { maxAffineDifference } from "./load.js";
import { caseName, pairCases } from "./pairs.js";
import { pairReferences } from "./references.js";

const dir = mkdtempSync(join(tmpdir(), "medpipe-pairs-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function folder(name: string, files: string[]): string {
  const d = join(dir, name);
  mkdirSync(d, { recursive: true });
  for (const f of files) writeFileSync(join(d, f), "");
  return d;
}

function usageMessage(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    expect(err).toBeInstanceOf(UsageError);
    return (err as Error).message;
  }
  throw new Error("expected a UsageError");
}

describe("case names and pairing", () => {
  it("strips the extension and nnU-Net's _0000, nothing else", () => {
    expect(caseName("/x/case_001_0000.nii.gz")).toBe("case_001");
    expect(caseName("case_001.nii")).toBe("case_001");
    expect(caseName("case_001.npy")).toBe("case_001");
    expect(caseName("case_0001.nii.gz")).toBe("case_0001");
    expect(caseName("img_0000_0000.nii.gz")).toBe("img_0000");
  });

  it("pairs folders by name, ignores other files, sorts cases", () => {
    const p = folder("p1", ["b_0000.nii.gz", "a.nii.gz", "notes.txt", ".hidden.nii.gz"]);
    const g = folder("g1", ["a.nii.gz", "b.nii.gz", "plans.json"]);
    expect(pairCases(p, g)).toEqual([
      { case: "a", pred: join(p, "a.nii.gz"), gt: join(g, "a.nii.gz") },
      { case: "b", pred: join(p, "b_0000.nii.gz"), gt: join(g, "b.nii.gz") },
    ]);
  });

  it("with cases: only those, in that order; other files are left alone; a listed case needs both sides", () => {
    const p = folder("p3", ["t1.nii.gz", "t2.nii.gz"]);
    const g = folder("g3", ["a.nii.gz", "t1.nii.gz", "t2.nii.gz", "z.nii.gz"]);
    expect(pairCases(p, g, ["t2", "t1", "t2"])).toEqual([
      { case: "t2", pred: join(p, "t2.nii.gz"), gt: join(g, "t2.nii.gz") },
      { case: "t1", pred: join(p, "t1.nii.gz"), gt: join(g, "t1.nii.gz") },
    ]);
    expect(usageMessage(() => pairCases(p, g, ["t1", "a", "q"])).split("\nerror: ")).toEqual([
      `case 'a': listed in --cases but not in --pred ${p}`,
      `case 'q': listed in --cases but not in --pred ${p}`,
      `case 'q': listed in --cases but not in --gt ${g}`,
    ]);
    // npy2d references: the label files name the cases; infer's X_T1w.npy predictions pair with them.
    const pn = folder("p4", ["s1_T1w.npy", "s2_T1w.npy"]);
    const gn = folder("g4", [
      "s1_T1w.npy",
      "s1_T1w_tissue_segmentation.npy",
      "s3_T1w_tissue_segmentation.npy",
    ]);
    expect(pairReferences(pn, gn, ["s1"])).toEqual([
      {
        case: "s1",
        pred: join(pn, "s1_T1w.npy"),
        gt: join(gn, "s1_T1w_tissue_segmentation.npy"),
        image: join(gn, "s1_T1w.npy"),
      },
    ]);
    expect(usageMessage(() => pairReferences(pn, gn, ["s3"]))).toBe(
      `case 's3': listed in --cases but not in --pred ${pn}`,
    );
  });

  it("reports every problem, one per line: duplicates, one-sided cases, empty folders", () => {
    const p = folder("p2", ["a.nii.gz", "a_0000.nii.gz", "x.npy"]);
    const g = folder("g2", ["a.nii.gz", "y.nii"]);
    expect(usageMessage(() => pairCases(p, g)).split("\nerror: ")).toEqual([
      `case 'a': two files in --pred ${p}: a.nii.gz and a_0000.nii.gz`,
      `case 'y': in --gt (${join(g, "y.nii")}) but not in --pred ${p}`,
      `case 'x': in --pred (${join(p, "x.npy")}) but not in --gt ${g}`,
    ]);
    const empty = folder("empty", ["readme.md"]);
    expect(usageMessage(() => pairCases(empty, g))).toBe(`--pred ${empty}: no .nii.gz, .nii or .npy files`);
  });

  it("files: both must exist and be masks; the case is named after the reference", () => {
    const d = folder("files", ["p.nii.gz", "g_0000.nii", "x.txt"]);
    expect(pairCases(join(d, "p.nii.gz"), join(d, "g_0000.nii"))[0]!.case).toBe("g");
    expect(usageMessage(() => pairCases(join(d, "nope.nii.gz"), join(d, "g_0000.nii")))).toMatch(
      /^--pred .*nope\.nii\.gz: no such file or folder$/,
    );
    expect(usageMessage(() => pairCases(join(d, "x.txt"), join(d, "g_0000.nii")))).toMatch(
      /expected a \.nii\.gz, \.nii or \.npy file$/,
    );
  });
});

describe("flags and labels", () => {
  it("parses label and tolerance lists, sorted and deduplicated", () => {
    expect(parseNumberList("2, 1,2", "--labels", "label")).toEqual([1, 2]);
    expect(parseNumberList("2,0.5,1", "--tolerances", "tolerance")).toEqual([0.5, 1, 2]);
    for (const bad of ["", "1,", "0", "1.5", "a", "-1"])
      expect(usageMessage(() => parseNumberList(bad, "--labels", "label"))).toMatch(/^--labels /);
    for (const bad of ["0", "-1", "x", "1,,2", "Infinity"])
      expect(usageMessage(() => parseNumberList(bad, "--tolerances", "tolerance"))).toMatch(/^--tolerances /);
  });

  it("finds nonzero labels in any buffer type and refuses non-integral values", () => {
    expect(labelValues(Float32Array.from([0, 2, 2, 0, 1, 7, 0]), "f")).toEqual([1, 2, 7]);
    expect(labelValues(new Uint8Array(5), "f")).toEqual([]);
    expect(usageMessage(() => labelValues(Float32Array.from([0, 1, 0.25]), "p.nii.gz"))).toBe(
      "p.nii.gz: voxel value 0.25 is not an integer label: expected a label map",
    );
    expect(() => labelValues(Float64Array.from([Number.NaN]), "p")).toThrow(UsageError);
  });

  it("affine difference is the largest entry of the 3x4 part", () => {
    const a = [1, 0, 0, 10, 0, 1, 0, 20, 0, 0, 2, 30, 0, 0, 0, 1];
    const b = a.slice();
    b[7] = 20.25;
    b[10] = 2.001;
    expect(maxAffineDifference(a, b)).toBeCloseTo(0.25, 12);
  });
});
