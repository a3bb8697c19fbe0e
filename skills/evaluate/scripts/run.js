// The evaluate skill: predictions + references → metrics.json (exactly `pipeline evaluate --json`:
// the same pairing rules, loading, metrics and summaries, src/evaluate), the Dice view of it in
// output.json (per class, per case, mean foreground Dice), and one PNG per case.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  axialView,
  busiestAxialSlice,
  diceSummary,
  evaluatePairs,
  loadMask,
  overlayRaster,
  pairReferences,
  toJson,
  wireNumber,
} from "../../../dist/evaluate/index.js";
import { encodePng } from "../../../dist/imaging/index.js";
import { runSkill } from "../../../dist/skill-kit/index.js";

// The library reports several problems as lines of one message; a stage says it in one line.
const oneLine = (fn) =>
  fn().catch((err) => {
    throw new Error(
      String(err?.message ?? err)
        .split("\nerror: ")
        .join("; "),
    );
  });

await runSkill(fileURLToPath(new URL("../skill_manifest.yaml", import.meta.url)), async (ctx) => {
  const { predictions, references, cases, labels, surface, tolerances, overlays } = ctx.inputs;
  const pairs = await oneLine(async () => pairReferences(predictions, references, cases));
  const ev = await oneLine(() =>
    evaluatePairs(pairs, {
      ...(labels ? { labels } : {}),
      ...(tolerances ? { tolerancesMm: tolerances } : {}),
      surface,
      onCase: (done, total, pair) => ctx.progress({ event: "case", case: pair.case, done, of: total }),
    }),
  );
  writeFileSync(join(ctx.outputDir, "metrics.json"), `${JSON.stringify(toJson(ev), null, 2)}\n`);
  const dice = diceSummary(ev);

  const pngs = new Map();
  if (overlays) {
    for (const pair of pairs) {
      const [pred, gt] = await Promise.all([loadMask(pair.pred), loadMask(pair.gt)]);
      const image = pair.image ? await loadMask(pair.image) : null;
      // A 3D case: the axial slice with the most reference foreground.
      const z = gt.shape.length === 3 ? busiestAxialSlice(gt) : null;
      const view = (m) => (z === null ? m : axialView(m, z));
      const rel = `overlays/${pair.case}.png`;
      mkdirSync(join(ctx.outputDir, "overlays"), { recursive: true });
      writeFileSync(
        join(ctx.outputDir, rel),
        encodePng(overlayRaster(view(gt), view(pred), image ? view(image) : null)),
      );
      pngs.set(pair.case, rel);
    }
  }
  for (const c of dice.per_class)
    ctx.progress({ event: "class", label: c.label, dice: wireNumber(c.mean), n: c.n });
  const roles = { "metrics.json": "metrics" };
  for (const rel of pngs.values()) roles[rel] = "overlay";
  return {
    payload: {
      num_cases: dice.per_case.length,
      labels: ev.labels.map(String),
      mean_foreground_dice: wireNumber(dice.mean_foreground_dice),
      per_class: dice.per_class.map((c) => ({
        label: c.label,
        dice: wireNumber(c.mean),
        std: wireNumber(c.std),
        n: c.n,
        nan: c.nan,
      })),
      per_case: dice.per_case.map((c) => ({
        case: c.case,
        prediction: c.pred,
        reference: c.gt,
        dice: Object.fromEntries(Object.entries(c.dice).map(([k, v]) => [k, wireNumber(v)])),
        mean_dice: wireNumber(c.mean),
        overlay: pngs.get(c.case) ?? null,
      })),
      metrics: "metrics.json",
      overlays: pngs.size,
      notes: ev.notes,
    },
    roles,
  };
});
