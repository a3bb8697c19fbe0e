// Across cases, pure: the summary numbers, the dataset-level problems (mixed orientations,
// declared labels that never occur), the suggestions and the content fingerprint.
import { createHash } from "node:crypto";
import { canonicalJson } from "../evidence/hash.js";
import { intensityStatistics } from "../imaging/normalize.js";
import { axisStatistics, median, resampledSizes, suggestPatch, targetSpacing } from "./spacing.js";
import type {
  AnalysisSettings,
  AnalysisSummary,
  CaseRecord,
  LabelSummary,
  Problem,
  ScalarStatistics,
  Suggestions,
} from "./types.js";

function scalar(values: number[]): ScalarStatistics | null {
  if (values.length === 0) return null;
  return { min: Math.min(...values), median: median(values), max: Math.max(...values) };
}

function tally(values: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const v of [...values].sort()) out[v] = (out[v] ?? 0) + 1;
  return out;
}

/** `samples[c]` holds the pooled foreground samples of channel c over every labelled case. */
export function summarize(
  cases: CaseRecord[],
  samples: Float64Array[][],
  labelNames: Record<string, string>,
): AnalysisSummary {
  const readable = cases.filter((c) => c.readable);
  const labelled = cases.filter((c) => c.label_dtype !== null);
  const dims = readable[0]?.shape?.length;
  const channels = Math.max(0, ...samples.map((s) => s.length));
  const intensity = Array.from({ length: channels }, (_, c) => {
    const parts = samples.map((s) => s[c] ?? new Float64Array(0));
    const pooled = new Float64Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      pooled.set(p, at);
      at += p.length;
    }
    return intensityStatistics(pooled);
  });
  const values = [...new Set(labelled.flatMap((c) => c.labels.map((l) => l.value)))].sort((a, b) => a - b);
  const labels = values.map((value): LabelSummary => {
    const present = labelled.flatMap((c) => c.labels.filter((l) => l.value === value));
    return {
      value,
      name: labelNames[String(value)] ?? null,
      cases: present.length,
      voxels: present.reduce((s, l) => s + l.voxels, 0),
      volume_mm3: scalar(present.map((l) => l.volume_mm3)),
      components: value === 0 ? null : scalar(present.map((l) => l.components)),
    };
  });
  return {
    cases: cases.length,
    readable_cases: readable.length,
    labelled_cases: labelled.length,
    spatial_dims: dims === 2 || dims === 3 ? dims : null,
    channels: readable[0]?.channels ?? null,
    orientations: tally(readable.map((c) => c.orientation!)),
    dtypes: tally(readable.map((c) => c.dtype!)),
    spacing: readable.length ? axisStatistics(readable.map((c) => c.canonical_spacing!)) : null,
    shape: readable.length ? axisStatistics(readable.map((c) => c.canonical_shape!)) : null,
    intensity,
    labels,
    foreground_volume_mm3: scalar(
      labelled.flatMap((c) => (c.foreground_volume_mm3 === null ? [] : [c.foreground_volume_mm3])),
    ),
  };
}

/** Target spacing, sizes after resampling and the patch size, over the readable cases. */
export function suggest(cases: CaseRecord[], settings: AnalysisSettings): Suggestions {
  const readable = cases.filter((c) => c.readable);
  const rule = settings.target_spacing_rule;
  if (readable.length === 0)
    return {
      target_spacing: null,
      target_spacing_rule: rule,
      anisotropic_axis: null,
      resampled_size: null,
      patch_size: null,
      patch_reasons: ["no readable case: nothing to suggest"],
    };
  const { target, anisotropicAxis } = targetSpacing(
    readable.map((c) => c.canonical_spacing!),
    rule,
    settings.anisotropy_threshold,
  );
  const sizes = axisStatistics(
    resampledSizes(
      readable.map((c) => ({ shape: c.canonical_shape!, spacing: c.canonical_spacing! })),
      target,
    ),
  );
  const { patch, reasons } = suggestPatch(sizes, {
    multiple: settings.patch_multiple,
    min: settings.patch_min,
    max: settings.patch_max,
  });
  return {
    target_spacing: target,
    target_spacing_rule: rule,
    anisotropic_axis: anisotropicAxis,
    resampled_size: sizes,
    patch_size: patch,
    patch_reasons: reasons,
  };
}

/**
 * Problems only the whole dataset shows: cases whose orientation differs from the most common
 * one (a warning: preprocess reorients everything to RAS, but mixed orientations often mean
 * mixed sources), and declared label values that no case contains (a warning).
 */
export function datasetProblems(
  cases: CaseRecord[],
  root: string,
  allowedLabels: number[] | null,
): Problem[] {
  const problems: Problem[] = [];
  const readable = cases.filter((c) => c.readable);
  const counts = tally(readable.map((c) => c.orientation!));
  // Most cases first; on a tie RAS (where preprocess takes everything), then alphabetical.
  const rank = (o: string): string => (o === "RAS" ? "" : o);
  const ranked = Object.entries(counts).sort((a, b) => b[1] - a[1] || rank(a[0]).localeCompare(rank(b[0])));
  if (ranked.length > 1) {
    const [common, n] = ranked[0]!;
    for (const c of readable) {
      if (c.orientation === common) continue;
      const file = c.image[0]!;
      problems.push({
        severity: "warning",
        check: "mixed-orientation",
        case: c.id,
        file,
        message: `${file}: orientation ${c.orientation} differs from the dataset's most common ${common} (${n} of ${readable.length} cases); preprocess reorients every case to RAS`,
      });
    }
  }
  const labelled = cases.filter((c) => c.label_dtype !== null);
  if (allowedLabels && labelled.length > 0) {
    const seen = new Set(labelled.flatMap((c) => c.labels.map((l) => l.value)));
    const unused = allowedLabels.filter((v) => v !== 0 && !seen.has(v));
    if (unused.length)
      problems.push({
        severity: "warning",
        check: "label-unused",
        case: null,
        file: root,
        message: `${root}: declared label ${unused.join(", ")} occurs in no case`,
      });
  }
  return problems;
}

/**
 * The content fingerprint: sha256 of a text naming the settings (canonical JSON, sorted keys) and,
 * for every case sorted by id, each file's role and the sha256 of its bytes ("missing" when it
 * could not be read). Paths are left out, so a moved or copied dataset keeps its fingerprint.
 */
export function fingerprintText(cases: CaseRecord[], settings: AnalysisSettings): string {
  const lines = ["medpipe-analyze-fingerprint/1", `settings ${canonicalJson(settings)}`];
  const sorted = [...cases].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  for (const c of sorted) for (const f of c.files) lines.push(`${c.id}\t${f.role}\t${f.sha256 ?? "missing"}`);
  return `${lines.join("\n")}\n`;
}

export function fingerprintOf(cases: CaseRecord[], settings: AnalysisSettings): string {
  return createHash("sha256").update(fingerprintText(cases, settings)).digest("hex");
}
