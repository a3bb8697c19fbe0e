// The two ways a case file is read: once into memory (small files) or hashed by streaming and then
// read with the streamed gunzip (files over READ_ONCE_MAX_BYTES). Both must give the same record,
// the same image and the same one-line reasons; the digest is checked against node:crypto over
// the file's bytes.
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../../tests/support/cli.js";
import { READ_ONCE_MAX_BYTES, readCaseFile } from "./case-io.js";

const micro = join(ROOT, "fixtures/heart_micro");
const files = ["imagesTr", "labelsTr"].flatMap((d) =>
  readdirSync(join(micro, d))
    .filter((f) => f.endsWith(".nii.gz"))
    .slice(0, 2)
    .map((f) => join(micro, d, f)),
);

describe("readCaseFile", () => {
  it("has a limit well above a full-size case's files", () => {
    expect(READ_ONCE_MAX_BYTES).toBeGreaterThanOrEqual(64 * 2 ** 20);
  });

  for (const path of files) {
    it(`reads ${path.slice(micro.length + 1)} the same either way`, async () => {
      const once = await readCaseFile("image:0", path);
      const streamed = await readCaseFile("image:0", path, 0);
      const bytes = readFileSync(path);
      expect(once.file).toEqual({
        role: "image:0",
        path,
        sha256: createHash("sha256").update(bytes).digest("hex"),
        bytes: bytes.length,
      });
      expect(streamed.file).toEqual(once.file);
      const a = once.loaded.image!;
      const b = streamed.loaded.image!;
      expect(b.dtype).toBe(a.dtype);
      expect(b.shape).toEqual(a.shape);
      expect(b.spacing).toEqual(a.spacing);
      expect(b.affine).toEqual(a.affine);
      expect(Buffer.from(b.data.buffer, b.data.byteOffset, b.data.byteLength)).toEqual(
        Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength),
      );
    });
  }

  it("gives the same reason for a truncated file and records a missing one as missing", async () => {
    const dir = mkdtempSync(join(tmpdir(), "medpipe-case-io-"));
    const truncated = join(dir, "cut.nii.gz");
    const whole = readFileSync(files[0]!);
    writeFileSync(truncated, whole.subarray(0, Math.floor(whole.length / 2)));
    const once = await readCaseFile("image:0", truncated);
    const streamed = await readCaseFile("image:0", truncated, 0);
    expect(once.loaded.image).toBeNull();
    expect(once.loaded.error).toMatch(/^.*cut\.nii\.gz: /);
    expect(streamed.loaded.error).toBe(once.loaded.error);
    expect(streamed.file).toEqual(once.file);

    const missing = join(dir, "absent.nii.gz");
    for (const limit of [READ_ONCE_MAX_BYTES, 0]) {
      const r = await readCaseFile("label", missing, limit);
      expect(r.file).toEqual({ role: "label", path: missing, sha256: null, bytes: null });
      expect(r.loaded.error).toMatch(/absent\.nii\.gz: /);
    }
  });
});
