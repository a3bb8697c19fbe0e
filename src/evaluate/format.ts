// The three ways results leave the command: a text table, CSV rows, one JSON object.
// Non-finite numbers (NaN Dice when both masks are empty, infinite HD95 when one is) are
// kept, never dropped or zeroed: text shows nan/inf, CSV and JSON the strings "NaN",
// "Infinity", "-Infinity" (what Python's float() and pandas read back).
import type { MetricSummary } from "../metrics/index.js";
import { flattenMetrics } from "../metrics/index.js";
import type { CaseResult, Evaluation } from "./run.js";

export const SURFACE_DEFINITION_TEXT =
  "monai-voxel: surface voxels are foreground voxels with a face neighbour in background " +
  "(outside the grid counts as background); exact Euclidean distances with the reference spacing; " +
  "HD95 = larger of the two directed 95th percentiles (linear interpolation); ASSD = mean of both " +
  "directions pooled; NSD(t) = share of both surfaces within t mm of the other; both masks empty: " +
  "distances 0, NSD 1; exactly one empty: distances Infinity, NSD 0";

/** JSON/CSV spelling of a number: non-finite values as strings. */
export function wireNumber(v: number): number | string {
  return Number.isFinite(v) ? v : Number.isNaN(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity";
}

/** Flat metric names in a fixed order (flattenMetrics' order), for headers and summaries. */
function metricNames(ev: Evaluation): string[] {
  const first = ev.cases[0];
  return first ? Object.keys(flattenMetrics(first.metrics)) : [];
}

function counts(c: CaseResult): Record<string, number> {
  const m = c.metrics;
  const out: Record<string, number> = {
    tp: m.overlap.tp,
    fp: m.overlap.fp,
    fn: m.overlap.fn,
    tn: m.overlap.tn,
    pred_volume_mm3: m.volume.predVolumeMm3,
    ref_volume_mm3: m.volume.refVolumeMm3,
    lesions: m.lesions.lesions,
    lesions_detected: m.lesions.detected,
  };
  if (m.surface) {
    out.pred_surface_voxels = m.surface.predSurfaceVoxels;
    out.ref_surface_voxels = m.surface.refSurfaceVoxels;
  }
  return out;
}

function wireRecord(r: Readonly<Record<string, number>>): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  for (const [k, v] of Object.entries(r)) out[k] = wireNumber(v);
  return out;
}

/** What produced the numbers, so a JSON file can be read without this program's help text. */
export function definition(ev: Evaluation): Record<string, unknown> {
  const lesions = ev.cases[0]?.metrics.lesions;
  return {
    space:
      "NIfTI: both files reoriented to closest-canonical RAS (nibabel as_closest_canonical) and required to share shape and affine (1e-3 mm); .npy: as stored",
    spacing: "from the reference (--gt) image; 1 for .npy",
    labels: "each label scored as its own binary mask",
    overlap:
      "Dice and IoU are NaN when both masks are empty, 0 when exactly one is; sensitivity NaN on an empty reference, precision NaN on an empty prediction",
    rve: "(Vpred - Vref) / Vref, NaN on an empty reference",
    ldr: {
      text: "reference connected components hit by the prediction / all reference components; NaN when there are none",
      connectivity: lesions?.connectivity ?? null,
      dice_threshold: lesions?.diceThreshold ?? 0,
    },
    surface: ev.surface
      ? { definition: "monai-voxel", text: SURFACE_DEFINITION_TEXT, tolerances_mm: ev.tolerancesMm }
      : null,
    summary:
      "per label over cases: mean and sample standard deviation (ddof 1); NaN and ±Infinity values are left out and counted (nan, infinite)",
    non_finite: 'NaN and ±Infinity are written as the strings "NaN", "Infinity", "-Infinity"',
  };
}

function summaryEntry(s: MetricSummary): Record<string, number | string> {
  return { mean: wireNumber(s.mean), std: wireNumber(s.std), n: s.n, nan: s.nan, infinite: s.infinite };
}

/** The `--json` document: {cases, summary, definition, notes}. */
export function toJson(ev: Evaluation): Record<string, unknown> {
  const summary: Record<string, unknown> = {};
  for (const ls of ev.summary) {
    const metrics: Record<string, unknown> = {};
    for (const [name, s] of Object.entries(ls.pooled)) metrics[name] = summaryEntry(s);
    summary[ls.label] = { cases: ls.cases, metrics };
  }
  return {
    cases: ev.cases.map((c) => ({
      case: c.case,
      label: c.label,
      pred: c.pred,
      gt: c.gt,
      metrics: wireRecord(flattenMetrics(c.metrics)),
      counts: counts(c),
    })),
    summary,
    definition: definition(ev),
    notes: ev.notes,
  };
}

function csvField(v: string | number): string {
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** `--csv`: one row per case and label, every metric and count, header first. */
export function toCsv(ev: Evaluation): string {
  const names = metricNames(ev);
  const countNames = ev.cases[0] ? Object.keys(counts(ev.cases[0])) : [];
  const lines = [["case", "label", ...names, ...countNames, "pred", "gt"].map(csvField).join(",")];
  for (const c of ev.cases) {
    const flat = flattenMetrics(c.metrics);
    const cnt = counts(c);
    lines.push(
      [
        c.case,
        c.label,
        ...names.map((n) => wireNumber(flat[n] ?? Number.NaN)),
        ...countNames.map((n) => cnt[n] ?? ""),
        c.pred,
        c.gt,
      ]
        .map(csvField)
        .join(","),
    );
  }
  return `${lines.join("\n")}\n`;
}

/** Text cell: fixed decimals, nan / inf spelled out. */
function cell(v: number | undefined, decimals: number): string {
  if (v === undefined || Number.isNaN(v)) return "nan";
  if (!Number.isFinite(v)) return v > 0 ? "inf" : "-inf";
  return v.toFixed(decimals);
}

interface Column {
  title: string;
  key: string;
  decimals: number;
}

function columns(ev: Evaluation): Column[] {
  const cols: Column[] = [
    { title: "Dice", key: "dice", decimals: 4 },
    { title: "IoU", key: "iou", decimals: 4 },
    { title: "Sens", key: "sensitivity", decimals: 4 },
    { title: "Prec", key: "precision", decimals: 4 },
    { title: "RVE", key: "rve", decimals: 4 },
    { title: "LDR", key: "ldr", decimals: 3 },
  ];
  if (ev.surface) {
    cols.push({ title: "HD95", key: "hd95", decimals: 3 }, { title: "ASSD", key: "assd", decimals: 3 });
    for (const t of ev.tolerancesMm) cols.push({ title: `NSD@${t}`, key: `nsd@${t}mm`, decimals: 4 });
  }
  return cols;
}

/** Left-aligned first columns, right-aligned numbers, two spaces between. */
function layout(rows: string[][], leftColumns: number): string[] {
  const widths: number[] = [];
  for (const r of rows) {
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, c.length);
    });
  }
  return rows.map((r) =>
    r
      .map((c, i) => (i < leftColumns ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join("  ")
      .trimEnd(),
  );
}

/** The default output: per-case table, then the per-label summary. */
export function toText(ev: Evaluation): string {
  const cols = columns(ev);
  const rows: string[][] = [["case", "label", ...cols.map((c) => c.title)]];
  for (const c of ev.cases) {
    const flat = flattenMetrics(c.metrics);
    rows.push([c.case, String(c.label), ...cols.map((col) => cell(flat[col.key], col.decimals))]);
  }
  const out = layout(rows, 2);
  const nCases = new Set(ev.cases.map((c) => c.case)).size;
  out.push(
    "",
    `summary over ${nCases} case${nCases === 1 ? "" : "s"}: mean ± sample std (ddof 1); ` +
      "nan and ±inf values are left out and counted",
  );
  for (const ls of ev.summary) {
    out.push(`label ${ls.label}`);
    const srows: string[][] = [];
    for (const col of cols) {
      const s = ls.pooled[col.key];
      if (!s) continue;
      const excluded = s.nan + s.infinite;
      const why = [s.nan ? `${s.nan} nan` : "", s.infinite ? `${s.infinite} inf` : ""]
        .filter(Boolean)
        .join(", ");
      srows.push([
        `  ${col.title}`,
        cell(s.mean, col.decimals),
        "±",
        cell(s.std, col.decimals),
        `n=${s.n}`,
        excluded ? `excluded ${excluded} (${why})` : "",
      ]);
    }
    out.push(...layout(srows, 1));
  }
  if (ev.surface)
    out.push("", "HD95 and ASSD in mm; surface definition monai-voxel (--json carries the full definition)");
  return `${out.join("\n")}\n`;
}
