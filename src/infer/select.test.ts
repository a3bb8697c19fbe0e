// selectCases: several paths of `images`, each id once, the `cases` subset; hand-derived lists.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { selectCases } from "./select.js";

const FIXTURES = fileURLToPath(new URL("../../fixtures/heart_micro/imagesTr", import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), "medpipe-select-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function folder(name: string, files: Record<string, string>): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (const [to, from] of Object.entries(files)) copyFileSync(join(FIXTURES, from), join(dir, to));
  return dir;
}

describe("selectCases", () => {
  const a = folder("a", { "la_002.nii.gz": "la_002.nii.gz", "la_001.nii.gz": "la_001.nii.gz" });
  const b = folder("b", { "la_001.nii.gz": "la_003.nii.gz", "x_0000.nii.gz": "la_004.nii.gz" });
  const single = join(b, "x_0000.nii.gz");

  it("lists the cases of every path in the order given; a second image of one id fails", async () => {
    const { cases, failed } = await selectCases([single, a, join(b, "la_001.nii.gz")], 3);
    expect(cases).toEqual([
      { id: "x", files: [single] },
      { id: "la_001", files: [join(a, "la_001.nii.gz")] },
      { id: "la_002", files: [join(a, "la_002.nii.gz")] },
    ]);
    expect(failed).toEqual([
      {
        case: "la_001",
        file: join(b, "la_001.nii.gz"),
        reason: "case la_001 appears twice (two files with one name)",
      },
    ]);
  });

  it("only the listed cases, in the listed order; a listed id without an image fails", async () => {
    const one = await selectCases([a], 3, ["la_002", "la_009", "la_001"]);
    expect(one.cases.map((c) => c.id)).toEqual(["la_002", "la_001"]);
    expect(one.failed).toEqual([{ case: "la_009", file: a, reason: "no image for case la_009 here" }]);
    const two = await selectCases([a, single], 3, ["nope"]);
    expect(two.cases).toEqual([]);
    expect(two.failed).toEqual([
      { case: "nope", file: "images (2 paths)", reason: "no image for case nope here" },
    ]);
  });
});
