// The Dice view of an evaluation, as a test stage reports it: per class the mean Dice over cases
// (the summary `pipeline evaluate` prints), per case the Dice of every class, and the mean
// foreground Dice: the mean of the per-class means.
import { flattenMetrics } from "../metrics/index.js";
import type { Evaluation } from "./run.js";

export interface ClassDice {
  label: string;
  /** Mean over the cases where Dice is defined (NaN when none is). */
  mean: number;
  std: number;
  n: number;
  /** Cases left out because both masks were empty there (Dice NaN). */
  nan: number;
}

export interface CaseDice {
  case: string;
  pred: string;
  gt: string;
  /** label → Dice (NaN when both masks are empty). */
  dice: Record<string, number>;
  /** Mean over this case's defined Dice values (NaN when none is). */
  mean: number;
}

export interface DiceSummary {
  per_class: ClassDice[];
  per_case: CaseDice[];
  /** Mean of the per-class means that are defined (NaN when none is). */
  mean_foreground_dice: number;
}

/** The mean of the finite values (NaN when there is none): how a mean Dice skips undefined ones. */
export function meanOf(values: number[]): number {
  const finite = values.filter(Number.isFinite);
  return finite.length ? finite.reduce((a, b) => a + b, 0) / finite.length : Number.NaN;
}

export function diceSummary(ev: Evaluation): DiceSummary {
  const per_class: ClassDice[] = ev.summary.map((s) => {
    const d = s.pooled.dice;
    return {
      label: s.label,
      mean: d?.mean ?? Number.NaN,
      std: d?.std ?? Number.NaN,
      n: d?.n ?? 0,
      nan: d?.nan ?? 0,
    };
  });
  const byCase = new Map<string, CaseDice>();
  for (const c of ev.cases) {
    const row = byCase.get(c.case) ?? { case: c.case, pred: c.pred, gt: c.gt, dice: {}, mean: Number.NaN };
    row.dice[String(c.label)] = flattenMetrics(c.metrics).dice ?? Number.NaN;
    byCase.set(c.case, row);
  }
  const per_case = [...byCase.values()].map((r) => ({ ...r, mean: meanOf(Object.values(r.dice)) }));
  return { per_class, per_case, mean_foreground_dice: meanOf(per_class.map((c) => c.mean)) };
}
