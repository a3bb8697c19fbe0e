// Cases analyzed side by side finish in any order: the records still come back in case order, and
// the progress reports count finished cases (1, 2, ... n), each naming its own case.
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect, it } from "vitest";
import { ROOT } from "../../tests/support/cli.js";
import { analyzeDataset, type CaseProgress } from "./index.js";

it("keeps case order and counts finished cases whatever the concurrency", async () => {
  const dataset = join(ROOT, "fixtures/heart_micro");
  const ids = readdirSync(join(dataset, "imagesTr"))
    .filter((f) => f.endsWith(".nii.gz"))
    .map((f) => f.replace(/\.nii\.gz$/, ""))
    .sort();
  const one = await analyzeDataset(dataset, { concurrency: 1 });
  for (const concurrency of [3, 64]) {
    const seen: CaseProgress[] = [];
    const a = await analyzeDataset(dataset, { concurrency, onCase: (p) => seen.push(p) });
    expect(a.cases.map((c) => c.id)).toEqual(ids);
    expect(a.cases).toEqual(one.cases);
    expect(a.fingerprint).toBe(one.fingerprint);
    expect(seen.map((p) => p.done)).toEqual(ids.map((_, i) => i + 1));
    expect(seen.map((p) => p.index).sort((x, y) => x - y)).toEqual(ids.map((_, i) => i));
    for (const p of seen) {
      expect(p.id).toBe(ids[p.index]);
      expect(p.of).toBe(ids.length);
    }
  }
});

it("records each case's position in the dataset's own listing, while the cases are sorted by id", async () => {
  const dataset = mkdtempSync(join(tmpdir(), "medpipe-listed-"));
  try {
    cpSync(join(ROOT, "fixtures/heart_micro"), dataset, { recursive: true });
    const jsonPath = join(dataset, "dataset.json");
    const json = JSON.parse(readFileSync(jsonPath, "utf8")) as { training: { image: string }[] };
    // dataset.json lists the cases in another order than their ids sort in.
    json.training = [...json.training.slice(5), ...json.training.slice(0, 5)].reverse();
    writeFileSync(jsonPath, JSON.stringify(json));
    const listing = json.training.map((t) => t.image.replace(/^.*\//, "").replace(/\.nii\.gz$/, ""));
    const a = await analyzeDataset(dataset, { concurrency: 2 });
    expect(a.cases.map((c) => c.id)).toEqual([...listing].sort());
    for (const c of a.cases) expect(c.listed, c.id).toBe(listing.indexOf(c.id));
  } finally {
    rmSync(dataset, { recursive: true, force: true });
  }
});
