// The analyze skill: the dataset analysis (src/analyze) run as a stage. Writes fingerprint.json
// in every case; with error-level problems the stage fails (exit 1, one summary line on stderr)
// after the analysis is written, so the problems can be read in the failed attempt's folder.
import { writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { analyzeDataset } from "../../../dist/analyze/index.js";
import { runSkill } from "../../../dist/skill-kit/index.js";

await runSkill(fileURLToPath(new URL("../skill_manifest.yaml", import.meta.url)), async (ctx) => {
  const { dataset, format, target_spacing_rule, labels_expected, affine_tolerance_mm, concurrency } =
    ctx.inputs;
  const analysis = await analyzeDataset(String(dataset), {
    settings: {
      target_spacing_rule,
      labels_expected: labels_expected ?? null,
      format: format ?? null,
      affine_tolerance_mm,
    },
    concurrency: concurrency ?? availableParallelism(),
    onCase: (p) =>
      ctx.progress({
        event: "case",
        case: p.id,
        done: p.done,
        of: p.of,
        errors: p.errors,
        warnings: p.warnings,
      }),
  });
  writeFileSync(join(ctx.outputDir, "fingerprint.json"), `${JSON.stringify(analysis, null, 1)}\n`);
  for (const p of analysis.problems)
    ctx.progress({ event: "problem", severity: p.severity, check: p.check, message: p.message });
  if (analysis.errors > 0) {
    const first = analysis.problems.find((p) => p.severity === "error");
    const cases = new Set(analysis.problems.filter((p) => p.severity === "error").map((p) => p.case ?? "-"));
    throw new Error(
      `analysis found ${analysis.errors} error(s) in ${cases.size} case(s) or file(s) (first: ${first?.message}); every problem is listed in fingerprint.json`,
    );
  }
  const { summary, suggestions } = analysis;
  return {
    payload: {
      fingerprint: analysis.fingerprint,
      dataset: analysis.dataset,
      num_cases: summary.cases,
      spatial_dims: summary.spatial_dims,
      target_spacing: suggestions.target_spacing,
      target_spacing_rule: suggestions.target_spacing_rule,
      resampled_size: suggestions.resampled_size,
      patch_size: suggestions.patch_size,
      patch_reasons: suggestions.patch_reasons,
      summary,
      problems: analysis.problems,
      errors: analysis.errors,
      warnings: analysis.warnings,
    },
    roles: { "fingerprint.json": "analysis" },
  };
});
