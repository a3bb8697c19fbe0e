// NIfTI reading, writing and reorientation against nibabel 5 (Debian's python3-nibabel).
// One Python call generates every file and records what nibabel makes of it; a second
// reads back what our writer produced. Nothing here compares our code with itself alone.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeWithOracle, oracleHas, python } from "../../tests/support/oracle.js";
import { ImageReadError } from "./errors.js";
import { readNifti, readNiftiHeader } from "./nifti-read.js";
import { writeNifti } from "./nifti-write.js";
import { axisCodes, fromClosestCanonical, ioOrientation, toClosestCanonical } from "./orientation.js";
import type { VoxelArray } from "./types.js";

const describeOracle = describeWithOracle("nibabel");

interface Expected {
  name: string;
  path: string;
  dtype: string;
  shape: number[];
  data: number[];
  affine: number[][];
  zooms: number[];
  ornt?: number[][];
  axcodes?: string[];
  canonical: { shape: number[]; data: number[]; affine: number[][] } | null;
}

/** Elementwise: NaN matches NaN, infinities match exactly, else |a - b| <= rel * max(1, |b|) (rel 0: exact). */
function expectValues(
  actual: ArrayLike<number> | VoxelArray,
  expected: number[],
  rel: number,
  what: string,
): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const ok = Number.isNaN(e)
      ? Number.isNaN(a)
      : !Number.isFinite(e) || rel === 0
        ? a === e
        : Math.abs(a - e) <= rel * Math.max(1, Math.abs(e));
    if (!ok) expect.fail(`${what}[${i}]: got ${a}, nibabel ${e}`);
  }
}

/** Affines compare relative to their largest entry, so near-zero rotation terms are judged at the right scale. */
function expectAffine(actual: number[], expected: number[][] | number[], what: string, rel = 1e-6): void {
  const e = (expected as Array<number | number[]>).flat();
  const scale = Math.max(1, ...e.map(Math.abs));
  expect(actual.length, `${what}: affine length`).toBe(16);
  for (let i = 0; i < 16; i++)
    if (!(Math.abs(actual[i]! - e[i]!) <= rel * scale))
      expect.fail(`${what}: affine[${i}] got ${actual[i]}, nibabel ${e[i]}; ours ${JSON.stringify(actual)}`);
}

const GENERATE = readFileSync(new URL("./nifti.oracle.py", import.meta.url), "utf8");

let dir = "";
let cases: Expected[] = [];
let bad: Record<string, string> = {};

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "medpipe-nifti-"));
  if (!oracleHas("nibabel")) return;
  const out = python<{ cases: Expected[]; bad: Record<string, string> }>(GENERATE, { dir });
  cases = out.cases;
  bad = out.bad;
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describeOracle("readNifti against nibabel", () => {
  it("covers at least 20 files: every datatype, NIfTI-1 and 2, .nii and .nii.gz", () => {
    expect(cases.length).toBeGreaterThanOrEqual(20);
    expect(cases.some((c) => c.path.endsWith(".nii.gz")) && cases.some((c) => c.path.endsWith(".nii"))).toBe(
      true,
    );
  });

  it("gives nibabel's data, shape, zooms and best affine for every file", async () => {
    for (const c of cases) {
      const img = await readNifti(c.path);
      expect(img.shape, c.name).toEqual(c.shape);
      expect(img.spacing, c.name).toEqual(c.zooms);
      expectAffine(img.affine, c.affine, c.name);
      if (c.dtype.startsWith("float")) {
        // Scaled data: float64 in nibabel; ours float32 unless the stored type needs float64.
        expectValues(img.data, c.data, img.dtype === "float64" ? 0 : 1e-6, c.name);
        expect(img.dtype.startsWith("float"), c.name).toBe(true);
      } else {
        expect(img.dtype, c.name).toBe(c.dtype);
        expectValues(img.data, c.data, 0, c.name);
      }
    }
  });

  it("matches nibabel's float64 exactly when asked for float64 scaling", async () => {
    for (const c of cases.filter((x) => x.dtype === "float64")) {
      const img = await readNifti(c.path, { scaledDtype: "float64" });
      expectValues(img.data, c.data, 0, c.name);
    }
  });

  it("reads the header alone", async () => {
    const c = cases.find((x) => x.name === "i16_4d_lps")!;
    const h = await readNiftiHeader(c.path);
    expect(h.shape).toEqual(c.shape);
    expect(h.storedDtype).toBe("int16");
    expect(h.sformCode).toBe(1);
  });
});

describeOracle("orientation against nibabel", () => {
  it("io_orientation and axis codes", async () => {
    for (const c of cases.filter((x) => x.ornt)) {
      const img = await readNifti(c.path);
      expect(ioOrientation(img.affine), c.name).toEqual(c.ornt);
      expect(axisCodes(ioOrientation(img.affine)), c.name).toEqual(c.axcodes);
    }
  });

  it("io_orientation on 200 random affines, sheared and near-45-degree ones included", () => {
    let seed = 12345;
    const rnd = () => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return seed / 2 ** 32 - 0.5;
    };
    const affines = Array.from({ length: 200 }, (_, k) => {
      // Every fourth affine has two columns nearly tied on one world axis, where greedy claiming matters.
      const lin = Array.from({ length: 9 }, () => rnd() * 3);
      if (k % 4 === 0) [lin[0], lin[1], lin[3], lin[4]] = [1, 1.02, 0.1 * rnd(), 0.05 * rnd()];
      return [
        ...lin.slice(0, 3),
        rnd() * 50,
        ...lin.slice(3, 6),
        rnd() * 50,
        ...lin.slice(6),
        rnd() * 50,
        0,
        0,
        0,
        1,
      ];
    });
    const expected = python<number[][][]>(
      `
import numpy as np
from nibabel.orientations import io_orientation
OUTPUT = [io_orientation(np.array(a).reshape(4, 4)) for a in INPUT]
`,
      affines,
    );
    affines.forEach((a, i) => {
      expect(ioOrientation(a), `affine ${i}: ${JSON.stringify(a)}`).toEqual(expected[i]);
    });
  });

  it("toClosestCanonical equals as_closest_canonical, and fromClosestCanonical restores the file exactly", async () => {
    const checked = cases.filter((x) => x.canonical);
    expect(checked.length).toBeGreaterThanOrEqual(20);
    for (const c of checked) {
      const img = await readNifti(c.path);
      const { image: can, transform } = toClosestCanonical(img);
      const e = c.canonical!;
      expect(can.shape, c.name).toEqual(e.shape);
      expectAffine(can.affine, e.affine, `${c.name} canonical`);
      expectValues(
        can.data,
        e.data,
        c.dtype.startsWith("float") && can.dtype !== "float64" ? 1e-6 : 0,
        `${c.name} canonical`,
      );
      const back = fromClosestCanonical(can, JSON.parse(JSON.stringify(transform)));
      expect(back.shape, c.name).toEqual(img.shape);
      expect(back.spacing, c.name).toEqual(img.spacing);
      // JSON (properties.json) turns -0 into 0; + 0 does the same to the original.
      expect(back.affine, c.name).toEqual(img.affine.map((x) => x + 0));
      expect(Array.from(back.data), c.name).toEqual(Array.from(img.data));
    }
  });
});

describeOracle("writeNifti read back by nibabel", () => {
  it("gives nibabel the same data and affine (sform and qform), for every generated image and shear-free affines", async () => {
    const written: Array<{ path: string; data: number[]; affine: number[]; dtype: string; shape: number[] }> =
      [];
    for (const c of cases) {
      const img = await readNifti(c.path);
      const path = join(dir, `w_${c.name}.nii.gz`);
      await writeNifti(path, img);
      written.push({
        path,
        data: Array.from(img.data),
        affine: img.affine,
        dtype: img.dtype,
        shape: img.shape,
      });
    }
    const plain = join(dir, "w_plain.nii");
    // Sheared: the sform keeps it, the qform can only hold its closest rigid part.
    const left = [-0.8, 0.1, 0.3, 10, 0.2, 1.1, -0.4, -20, 0.05, 0.5, 2.2, 30, 0, 0, 0, 1];
    const f64 = new Float64Array(24).map((_, i) => i * 1.5 - 7);
    await writeNifti(plain, { data: f64, shape: [2, 3, 4], affine: left });
    written.push({ path: plain, data: Array.from(f64), affine: left, dtype: "float64", shape: [2, 3, 4] });

    const back = python<
      Array<{
        dtype: string;
        shape: number[];
        data: number[];
        affine: number[][];
        qform: number[][];
        nibabelQform: number[][];
        codes: number[];
      }>
    >(
      `
import nibabel as nib, numpy as np

OUTPUT = []
for p in INPUT:
    img = nib.load(p)
    d = np.asarray(img.dataobj)
    ref = nib.Nifti1Header()
    ref.set_qform(img.affine)
    OUTPUT.append({"dtype": d.dtype.name, "shape": list(d.shape), "data": d.ravel(order="F"),
                   "affine": img.affine, "qform": img.get_qform(), "nibabelQform": ref.get_qform(),
                   "codes": [int(img.header["qform_code"]), int(img.header["sform_code"])]})
`,
      written.map((w) => w.path),
    );
    back.forEach((b, i) => {
      const w = written[i]!;
      expect(b.shape, w.path).toEqual(w.shape);
      expect(b.dtype, w.path).toBe(w.dtype);
      expectValues(b.data, w.data, 0, w.path);
      expectAffine(w.affine, b.affine, `${w.path} sform`);
      // Our qform as nibabel reads it equals the qform nibabel itself derives from that affine.
      expectAffine(b.qform.flat(), b.nibabelQform, `${w.path} qform`);
      if (w !== written.at(-1)) expectAffine(w.affine, b.qform, `${w.path} qform`);
      expect(b.codes, w.path).toEqual([1, 1]);
    });
  });
});

describeOracle("bad files", () => {
  const fails = async (path: string, pattern: RegExp) => {
    const err = await readNifti(path).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err, path).toBeInstanceOf(ImageReadError);
    const message = (err as Error).message;
    expect(message).toContain(path);
    expect(message).not.toContain("\n");
    expect(message).toMatch(pattern);
  };

  it("names the file and the problem in one line", async () => {
    const good = cases.find((c) => c.name === "i16_las_qonly")!.path;
    const bytes = readFileSync(good);
    const truncated = join(dir, "truncated.nii");
    writeFileSync(truncated, bytes.subarray(0, bytes.length - 10));
    await fails(truncated, /truncated/);
    const shortHeader = join(dir, "short.nii");
    writeFileSync(shortHeader, bytes.subarray(0, 200));
    await fails(shortHeader, /truncated/);
    const gz = gzipSync(bytes);
    const truncatedGz = join(dir, "truncated.nii.gz");
    writeFileSync(truncatedGz, gz.subarray(0, gz.length - 30));
    await fails(truncatedGz, /gzip|truncated/);
    const corruptGz = join(dir, "corrupt.nii.gz");
    const broken = Buffer.from(gz);
    broken.fill(0x55, 20, 60);
    writeFileSync(corruptGz, broken);
    await fails(corruptGz, /gzip|truncated|magic|NIfTI/);
    const garbage = join(dir, "garbage.nii");
    writeFileSync(garbage, Buffer.alloc(400, 7));
    await fails(garbage, /not a NIfTI/);
    const badMagic = join(dir, "badmagic.nii");
    const bm = Buffer.from(bytes);
    bm.write("xx1\0", 344, "latin1");
    writeFileSync(badMagic, bm);
    await fails(badMagic, /magic/);
    await fails(bad.int64!, /unsupported datatype 1024/);
    await fails(join(dir, "missing.nii.gz"), /cannot open/);
  });
});
