// Dataset readers on real folders written into a temp dir: tiny NIfTI files from writeNifti, .npy
// files from writeNpy, dataset.json / datalist / CSV text. Every layout is read through
// `readDataset` (auto-detection) and every problem kind is provoked at least once.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { identity4 } from "../imaging/affine.js";
import { writeNifti } from "../imaging/nifti-write.js";
import { writeNpy } from "../imaging/npy.js";
import { caseIdOf, parseCsv, readDataset } from "./index.js";

let tmp: string;
let n = 0;
/** A fresh folder per test, so layouts never see each other's files. */
function folder(): string {
  const d = join(tmp, `d${n++}`);
  mkdirSync(d, { recursive: true });
  return d;
}

async function nifti(path: string, channels = 1): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  const shape = channels > 1 ? [3, 3, 2, channels] : [3, 3, 2];
  const data = new Int16Array(shape.reduce((a, b) => a * b, 1)).map((_, i) => i);
  await writeNifti(path, { data, shape, affine: identity4() });
}

async function npy(path: string): Promise<void> {
  mkdirSync(dirname(path), { recursive: true });
  await writeNpy(path, { data: new Float32Array(6), dtype: "float32", shape: [2, 3], fortranOrder: false });
}

function json(path: string, value: unknown): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, typeof value === "string" ? value : JSON.stringify(value, null, 2));
}

/** MSD dataset.json for the given case ids (listing a label for each). */
function msdJson(ids: string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: "Heart",
    tensorImageSize: "3D",
    modality: { "0": "MRI" },
    labels: { "0": "background", "1": "left atrium" },
    numTraining: ids.length,
    numTest: 0,
    training: ids.map((id) => ({ image: `./imagesTr/${id}.nii.gz`, label: `./labelsTr/${id}.nii.gz` })),
    test: [],
    ...extra,
  };
}

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), "medpipe-datasets-"));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe("case ids", () => {
  it("strip .nii.gz/.nii/.npy and nnU-Net's _0000 channel suffix, nothing else", () => {
    expect(caseIdOf("/a/imagesTr/la_003.nii.gz")).toBe("la_003");
    expect(caseIdOf("la_003_0000.nii.gz")).toBe("la_003");
    expect(caseIdOf("la_003.nii")).toBe("la_003");
    expect(caseIdOf("case_0001.nii.gz")).toBe("case_0001");
    expect(caseIdOf("x.npy")).toBe("x");
  });
});

describe("MSD layout", () => {
  it("reads every listed case with absolute paths and the metadata", async () => {
    const d = folder();
    for (const id of ["la_003", "la_004", "la_007"]) {
      await nifti(join(d, "imagesTr", `${id}.nii.gz`));
      await nifti(join(d, "labelsTr", `${id}.nii.gz`));
    }
    writeFileSync(join(d, "imagesTr", "._la_003.nii.gz"), "AppleDouble junk"); // as in MSD's archives
    json(join(d, "dataset.json"), msdJson(["la_003", "la_004", "la_007"]));
    const r = await readDataset(d);
    expect(r.problems).toEqual([]);
    expect(r.format).toBe("msd");
    expect(r.root).toBe(d);
    expect(r.cases.map((c) => c.id)).toEqual(["la_003", "la_004", "la_007"]);
    expect(r.cases[0]).toEqual({
      id: "la_003",
      image: [join(d, "imagesTr", "la_003.nii.gz")],
      label: join(d, "labelsTr", "la_003.nii.gz"),
    });
    expect(r.meta).toMatchObject({
      name: "Heart",
      labels: { "0": "background", "1": "left atrium" },
      channelNames: ["MRI"],
      modality: "MR",
      fileEnding: ".nii.gz",
    });
    // The dataset.json path itself is accepted too.
    expect((await readDataset(join(d, "dataset.json"))).cases).toHaveLength(3);
  });

  it("multi-channel 4D images: one file, one channel name per modality", async () => {
    const d = folder();
    await nifti(join(d, "imagesTr", "BRATS_001.nii.gz"), 4);
    await nifti(join(d, "labelsTr", "BRATS_001.nii.gz"));
    json(
      join(d, "dataset.json"),
      msdJson(["BRATS_001"], {
        tensorImageSize: "4D",
        modality: { 0: "FLAIR", 1: "T1w", 2: "t1gd", 3: "T2w" },
      }),
    );
    const r = await readDataset(d);
    expect(r.problems).toEqual([]);
    expect(r.cases).toHaveLength(1);
    expect(r.cases[0]!.image).toHaveLength(1);
    expect(r.meta.channelNames).toEqual(["FLAIR", "T1w", "t1gd", "T2w"]);
    expect(r.meta.modality).toBe("MR");
  });

  it("collects every problem in one pass: missing files, duplicates, count, malformed entries", async () => {
    const d = folder();
    await nifti(join(d, "imagesTr", "a.nii.gz"));
    await nifti(join(d, "imagesTr", "b.nii.gz"));
    await nifti(join(d, "labelsTr", "a.nii.gz"));
    const doc = msdJson(["a", "b", "c"]);
    (doc.training as unknown[]).push(
      { image: "./imagesTr/a.nii.gz", label: "./labelsTr/a.nii.gz" },
      { label: 3 },
    );
    (doc.training as unknown[]).push({ image: "./imagesTr/b.nii.gz" });
    doc.numTraining = 9;
    json(join(d, "dataset.json"), doc);
    const r = await readDataset(d);
    const p = (s: string): string => join(d, s);
    expect(r.problems).toEqual([
      `${p("dataset.json")}: "training"[4]: expected {"image": path, "label": path}, got {"label":3}`,
      `${p("dataset.json")}: numTraining is 9 but "training" lists 6 cases`,
      `${p("labelsTr/b.nii.gz")}: label of case b: file not found`,
      `${p("imagesTr/c.nii.gz")}: image of case c: file not found`,
      `${p("labelsTr/c.nii.gz")}: label of case c: file not found`,
      `${p("imagesTr/a.nii.gz")}: duplicate case id a (also ${p("imagesTr/a.nii.gz")})`,
      `${p("imagesTr/b.nii.gz")}: duplicate case id b (also ${p("imagesTr/b.nii.gz")})`,
      `${p("imagesTr/b.nii.gz")}: image without label (case b)`,
    ]);
    expect(r.cases).toHaveLength(5);
  });

  it("an unreadable dataset.json is a problem; the folders are still paired by name", async () => {
    const d = folder();
    await nifti(join(d, "imagesTr", "x.nii.gz"));
    await nifti(join(d, "imagesTr", "y.nii.gz"));
    await nifti(join(d, "labelsTr", "x.nii.gz"));
    await nifti(join(d, "labelsTr", "z.nii.gz"));
    json(join(d, "dataset.json"), "{ not json");
    const r = await readDataset(d);
    expect(r.format).toBe("msd");
    expect(r.cases.map((c) => [c.id, c.label !== null])).toEqual([
      ["x", true],
      ["y", false],
    ]);
    expect(r.problems).toHaveLength(3);
    expect(r.problems[0]).toMatch(new RegExp(`^${join(d, "dataset.json")}: not valid JSON`));
    expect(r.problems[1]).toBe(`${join(d, "labelsTr", "z.nii.gz")}: label without image (case z)`);
    expect(r.problems[2]).toBe(`${join(d, "imagesTr", "y.nii.gz")}: image without label (case y)`);
  });
});

describe("nnU-Net raw layout", () => {
  it("groups CASE_XXXX channel files, pairs labels, reads name→value labels and regions", async () => {
    const d = folder();
    for (const id of ["prostate_00", "prostate_01"]) {
      await nifti(join(d, "imagesTr", `${id}_0000.nii.gz`));
      await nifti(join(d, "imagesTr", `${id}_0001.nii.gz`));
      await nifti(join(d, "labelsTr", `${id}.nii.gz`));
    }
    json(join(d, "dataset.json"), {
      channel_names: { "0": "T2", "1": "ADC" },
      labels: { background: 0, PZ: 1, TZ: 2, gland: [1, 2] },
      numTraining: 2,
      file_ending: ".nii.gz",
    });
    const r = await readDataset(d);
    expect(r.problems).toEqual([]);
    expect(r.format).toBe("nnunet");
    expect(r.cases.map((c) => c.id)).toEqual(["prostate_00", "prostate_01"]);
    expect(r.cases[1]!.image).toEqual([
      join(d, "imagesTr", "prostate_01_0000.nii.gz"),
      join(d, "imagesTr", "prostate_01_0001.nii.gz"),
    ]);
    expect(r.cases[1]!.label).toBe(join(d, "labelsTr", "prostate_01.nii.gz"));
    expect(r.meta).toMatchObject({
      labels: { "0": "background", "1": "PZ", "2": "TZ" },
      regions: { gland: [1, 2] },
      channelNames: ["T2", "ADC"],
      modality: "MR",
      fileEnding: ".nii.gz",
    });
  });

  it("reports missing channels, stray names, orphan labels, missing labels and a wrong count", async () => {
    const d = folder();
    await nifti(join(d, "imagesTr", "ct_1_0000.nii.gz"));
    await nifti(join(d, "imagesTr", "ct_2_0000.nii.gz"));
    await nifti(join(d, "imagesTr", "ct_2_0001.nii.gz"));
    await nifti(join(d, "imagesTr", "stray.nii.gz"));
    await nifti(join(d, "labelsTr", "ct_1.nii.gz"));
    await nifti(join(d, "labelsTr", "ct_9.nii.gz"));
    json(join(d, "dataset.json"), {
      channel_names: { "0": "CT" },
      labels: { background: 0, liver: 1 },
      numTraining: 5,
    });
    const r = await readDataset(d);
    const img = (s: string): string => join(d, "imagesTr", s);
    expect(r.format).toBe("nnunet");
    expect(r.meta.modality).toBe("CT");
    expect(r.problems).toEqual([
      `${join(d, "dataset.json")}: "file_ending" missing; assuming the images' own ending`,
      `${img("stray.nii.gz")}: not named CASE_XXXX.nii.gz (4-digit channel index)`,
      `${img("ct_2_0001.nii.gz")}: channel 1 of case ct_2 beyond the 1 declared in channel_names`,
      `${join(d, "labelsTr", "ct_9.nii.gz")}: label without image (case ct_9)`,
      `${join(d, "dataset.json")}: numTraining is 5 but imagesTr/ holds 2 cases`,
      `${img("ct_2_0000.nii.gz")}: image without label (case ct_2)`,
    ]);
  });

  it("a channel gap names the missing file", async () => {
    const d = folder();
    await nifti(join(d, "imagesTr", "m_0000.nii.gz"));
    await nifti(join(d, "imagesTr", "m_0002.nii.gz"));
    await nifti(join(d, "labelsTr", "m.nii.gz"));
    json(join(d, "dataset.json"), {
      channel_names: { 0: "T1", 1: "T2", 2: "FLAIR" },
      labels: { background: 0, lesion: 1 },
      file_ending: ".nii.gz",
    });
    const r = await readDataset(d);
    expect(r.problems).toEqual([`${join(d, "imagesTr", "m_0001.nii.gz")}: channel 1 of case m missing`]);
  });
});

describe("MONAI datalist JSON", () => {
  it("paths relative to the JSON (or a base dir), folds, groups, multi-channel lists", async () => {
    const d = folder();
    await nifti(join(d, "img", "p1_t1.nii.gz"));
    await nifti(join(d, "img", "p1_t2.nii.gz"));
    await nifti(join(d, "img", "p2_t1.nii.gz"));
    await nifti(join(d, "img", "p2_t2.nii.gz"));
    await nifti(join(d, "seg", "p1.nii.gz"));
    await nifti(join(d, "seg", "p2.nii.gz"));
    const list = {
      training: [
        { image: ["img/p1_t1.nii.gz", "img/p1_t2.nii.gz"], label: "seg/p1.nii.gz", fold: 0, group: "siteA" },
        { image: ["img/p2_t1.nii.gz", "img/p2_t2.nii.gz"], label: "seg/p2.nii.gz", fold: 1, id: "patient2" },
      ],
      testing: ["img/p2_t1.nii.gz"],
    };
    json(join(d, "lists", "datalist.json"), list);
    const viaBase = await readDataset(join(d, "lists", "datalist.json"), { baseDir: d });
    expect(viaBase.problems).toEqual([]);
    expect(viaBase.format).toBe("datalist");
    expect(viaBase.cases).toEqual([
      {
        id: "p1_t1",
        image: [join(d, "img/p1_t1.nii.gz"), join(d, "img/p1_t2.nii.gz")],
        label: join(d, "seg/p1.nii.gz"),
        fold: 0,
        group: "siteA",
      },
      {
        id: "patient2",
        image: [join(d, "img/p2_t1.nii.gz"), join(d, "img/p2_t2.nii.gz")],
        label: join(d, "seg/p2.nii.gz"),
        fold: 1,
      },
    ]);
    expect(viaBase.meta.channelNames).toEqual(["channel 0", "channel 1"]);
    // Relative to the JSON's own folder by default: here that is wrong, and every file says so.
    const own = await readDataset(join(d, "lists", "datalist.json"));
    expect(own.problems).toHaveLength(6);
    expect(own.problems[0]).toBe(
      `${join(d, "lists", "img/p1_t1.nii.gz")}: image of case p1_t1: file not found`,
    );
    // The testing list: bare paths, no labels needed.
    const test = await readDataset(join(d, "lists", "datalist.json"), { baseDir: d, datalistKey: "testing" });
    expect(test.problems).toEqual([]);
    expect(test.cases).toEqual([{ id: "p2_t1", image: [join(d, "img/p2_t1.nii.gz")], label: null }]);
  });

  it("reports a missing list, bad entries and bad folds", async () => {
    const d = folder();
    await nifti(join(d, "a.nii.gz"));
    json(join(d, "list.json"), {
      training: [
        { image: "a.nii.gz", label: 1, fold: -1 },
        { img: "x" },
        { image: "a.nii.gz", label: "a.nii.gz" },
      ],
    });
    const f = join(d, "list.json");
    const r = await readDataset(f);
    expect(r.problems).toEqual([
      `${f}: "training"[0]: "label" is not a path (1)`,
      `${f}: "training"[0]: "fold" must be a non-negative integer, got -1`,
      `${f}: "training"[1]: "image" must be a path or a list of paths, got undefined`,
      `${join(d, "a.nii.gz")}: image without label (case a)`,
      `${join(d, "a.nii.gz")}: duplicate case id a (also ${join(d, "a.nii.gz")})`,
    ]);
    expect((await readDataset(f, { datalistKey: "validation" })).problems).toEqual([
      `${f}: no "validation" list`,
    ]);
  });
});

describe("CSV", () => {
  it("parses quoted fields, CRLF, a BOM and blank lines", () => {
    expect(parseCsv('\ufeffa,b\r\n"x, ""y""",2\r\n\r\n"multi\nline",3').rows).toEqual([
      ["a", "b"],
      ['x, "y"', "2"],
      ["multi\nline", "3"],
    ]);
    expect(parseCsv('a\n"open').error).toBe("unterminated quoted field starting on line 2");
  });

  it("reads image/label columns (default and configured), fold and group", async () => {
    const d = folder();
    await nifti(join(d, "imgs", "s1.nii.gz"));
    await nifti(join(d, "imgs", "s2.nii.gz"));
    await nifti(join(d, "labs", "s1.nii.gz"));
    await nifti(join(d, "labs", "s2.nii.gz"));
    writeFileSync(
      join(d, "cases.csv"),
      `image,label,fold,group\nimgs/s1.nii.gz,labs/s1.nii.gz,0,p1\n"${join(d, "imgs/s2.nii.gz")}",labs/s2.nii.gz,1,p2\n`,
    );
    const r = await readDataset(join(d, "cases.csv"));
    expect(r.problems).toEqual([]);
    expect(r.format).toBe("csv");
    expect(r.cases).toEqual([
      {
        id: "s1",
        image: [join(d, "imgs/s1.nii.gz")],
        label: join(d, "labs/s1.nii.gz"),
        fold: 0,
        group: "p1",
      },
      {
        id: "s2",
        image: [join(d, "imgs/s2.nii.gz")],
        label: join(d, "labs/s2.nii.gz"),
        fold: 1,
        group: "p2",
      },
    ]);
    writeFileSync(join(d, "other.csv"), "case,ct,mask\nk1,imgs/s1.nii.gz,labs/s1.nii.gz\n");
    const custom = await readDataset(join(d, "other.csv"), {
      imageColumns: ["ct"],
      labelColumn: "mask",
      idColumn: "case",
    });
    expect(custom.problems).toEqual([]);
    expect(custom.cases).toEqual([
      { id: "k1", image: [join(d, "imgs/s1.nii.gz")], label: join(d, "labs/s1.nii.gz") },
    ]);
  });

  it("reports missing columns, ragged rows, empty cells, bad folds, missing files", async () => {
    const d = folder();
    await nifti(join(d, "a.nii.gz"));
    const f = join(d, "bad.csv");
    writeFileSync(f, "img,seg\na.nii.gz,a.nii.gz\n");
    expect((await readDataset(f)).problems).toEqual([
      `${f}: missing column "image" (header: img, seg)`,
      `${f}: missing column "label" (header: img, seg)`,
    ]);
    writeFileSync(f, "image,label,fold\na.nii.gz,,x\n,a.nii.gz,0\nb.nii.gz,a.nii.gz\n");
    expect((await readDataset(f)).problems).toEqual([
      `${f}: row 2: fold "x" is not a non-negative integer`,
      `${f}: row 3: empty image cell`,
      `${f}: row 4: 2 fields, the header has 3`,
      `${join(d, "b.nii.gz")}: image of case b: file not found`,
      `${join(d, "a.nii.gz")}: image without label (case a)`,
    ]);
  });
});

describe("2D .npy pairs", () => {
  it("train/val/test folders of *_T1w.npy + *_T1w_tissue_segmentation.npy", async () => {
    const d = folder();
    for (const [split, ids] of [
      ["train", ["sub-01", "sub-02"]],
      ["val", ["sub-03"]],
      ["test", ["sub-04"]],
    ] as const)
      for (const id of ids) {
        await npy(join(d, split, `${id}_T1w.npy`));
        await npy(join(d, split, `${id}_T1w_tissue_segmentation.npy`));
      }
    json(join(d, "dataset.json"), {
      name: "tissue",
      modality: { "0": "T1w" },
      labels: { 0: "background", 1: "CSF", 2: "grey matter", 3: "white matter" },
    });
    const r = await readDataset(d);
    expect(r.problems).toEqual([]);
    expect(r.format).toBe("npy2d");
    expect(r.cases.map((c) => [c.id, c.split])).toEqual([
      ["sub-01", "train"],
      ["sub-02", "train"],
      ["sub-03", "val"],
      ["sub-04", "test"],
    ]);
    expect(r.cases[0]!.label).toBe(join(d, "train", "sub-01_T1w_tissue_segmentation.npy"));
    expect(r.meta).toMatchObject({ name: "tissue", modality: "MR", fileEnding: ".npy" });
    expect(r.meta.labels["3"]).toBe("white matter");
  });

  it("one flat folder; orphans, strays and a case in two splits are problems", async () => {
    const flat = folder();
    await npy(join(flat, "a_T1w.npy"));
    await npy(join(flat, "b_T1w.npy"));
    await npy(join(flat, "a_T1w_tissue_segmentation.npy"));
    await npy(join(flat, "c_T1w_tissue_segmentation.npy"));
    await npy(join(flat, "notes.npy"));
    const r = await readDataset(flat);
    expect(r.format).toBe("npy2d");
    expect(r.cases.map((c) => c.id)).toEqual(["a", "b"]);
    expect(r.problems).toEqual([
      `${join(flat, "notes.npy")}: neither an image (*_T1w.npy) nor a label (*_T1w_tissue_segmentation.npy)`,
      `${join(flat, "c_T1w_tissue_segmentation.npy")}: label without image (expected c_T1w.npy)`,
      `${join(flat, "b_T1w.npy")}: image without label (case b)`,
    ]);
    const split = folder();
    for (const s of ["train", "val"]) {
      await npy(join(split, s, "x_T1w.npy"));
      await npy(join(split, s, "x_T1w_tissue_segmentation.npy"));
    }
    expect((await readDataset(split)).problems).toEqual([
      `${join(split, "val", "x_T1w.npy")}: duplicate case id x (also ${join(split, "train", "x_T1w.npy")})`,
    ]);
  });
});

describe("detection", () => {
  it("a path that is no dataset gives one problem, not an exception", async () => {
    const d = folder();
    writeFileSync(join(d, "readme.txt"), "hello");
    const r = await readDataset(d);
    expect(r.format).toBeNull();
    expect(r.problems).toEqual([
      `${d}: not a dataset (expected a folder with imagesTr/ or *_T1w.npy files, a datalist .json or a .csv)`,
    ]);
    expect((await readDataset(join(d, "missing"))).problems).toHaveLength(1);
    const csv = await readDataset(join(d, "missing.csv"), { format: "csv" });
    expect(csv.problems[0]).toBe(`${join(d, "missing.csv")}: cannot read (ENOENT)`);
  });

  it("nnU-Net is told from MSD by file names when dataset.json is missing", async () => {
    const d = folder();
    await nifti(join(d, "imagesTr", "q_0000.nii.gz"));
    await nifti(join(d, "labelsTr", "q.nii.gz"));
    const r = await readDataset(d);
    expect(r.format).toBe("nnunet");
    expect(r.cases.map((c) => c.id)).toEqual(["q"]);
    expect(r.problems).toEqual([`${join(d, "dataset.json")}: cannot read (ENOENT)`]);
  });
});
