// The reference files hold the numbers of the source documents, and their schema.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv } from "ajv";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { ROOT } from "./support/cli.js";

const dir = join(ROOT, "eval/references");
const schema = JSON.parse(readFileSync(join(ROOT, "schemas/reference.schema.json"), "utf8"));
const validate = new Ajv({ allErrors: true }).compile(schema);
const load = (f: string) =>
  parse(readFileSync(join(dir, f), "utf8")) as { metrics: Record<string, { centre: number }> };

describe("references", () => {
  it.each(readdirSync(dir))("%s validates", (f) => {
    const ref = load(f);
    expect(validate(ref), JSON.stringify(validate.errors)).toBe(true);
  });

  it("carries the numbers of DESIGN.md", () => {
    // Copied by hand from DESIGN.md "Reference numbers" (and checked against the seed documents).
    const cv = load("heart-cv.yaml").metrics;
    expect(Object.fromEntries(Object.entries(cv).map(([k, v]) => [k, v.centre]))).toEqual({
      dsc: 0.8421,
      sensitivity: 0.8349,
      precision: 0.8566,
      ldr: 1.0,
      rve: -0.0134,
      hd95_mm: 12.67,
      assd_mm: 2.66,
    });
    expect(load("heart-single-split.yaml").metrics.dsc?.centre).toBe(0.9304);
    const ft = load("task06-finetune.yaml").metrics;
    expect([
      ft.formal_pretrained_val_dice?.centre,
      ft.training_best_val_dice?.centre,
      ft.formal_finetuned_val_dice?.centre,
    ]).toEqual([0.6697, 0.6905, 0.6836]);
    const t = load("tissue-2d.yaml").metrics;
    expect([t.baseline_val_dice?.centre, t.val_dice?.centre, t.test_dice?.centre]).toEqual([
      0.83, 0.936, 0.889,
    ]);
  });
});
