// Cases analyzed side by side finish in any order: the records still come back in case order, and
// the progress reports count finished cases (1, 2, ... n), each naming its own case.
import { readdirSync } from "node:fs";
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
