// cv.*: the cross-validation split is sound — read from the plan stage's plan.json, never
// believed from a summary. Folds partition the cases, no held-out case trains its own fold,
// and groups (one patient's scans) never straddle folds.
import type { Evidence } from "../evidence/evidence.js";
import type { Pack } from "./pack.js";
import { skipLine, type Taint } from "./taint.js";
import type { CheckResult } from "./types.js";

interface PlanSplit {
  dataset?: { cases?: { id: string; group?: string }[] };
  split?: { method?: string; folds?: { fold: number; train: string[]; val: string[] }[] };
}

export function checkSplit(pack: Pack, evidence: Evidence, taint: Taint): CheckResult[] {
  const plans = Object.values(evidence.stages).filter(
    (s) => s.skill === "plan" && (s.status === "succeeded" || s.status === "cached"),
  );
  if (plans.length === 0)
    return [{ id: "cv.split", verdict: "skipped", message: "no plan stage in this run", evidence: [] }];
  const out: CheckResult[] = [];
  for (const rec of plans) {
    const rel = `stages/${rec.stage}/plan.json`;
    if (!pack.exists(rel)) {
      out.push({ id: "cv.split", verdict: "fail", message: `${rel} is missing`, evidence: [rel] });
      continue;
    }
    const blocked = taint.blocking([rel]);
    if (blocked) {
      out.push({
        id: "cv.split",
        verdict: "skipped",
        message: skipLine({ what: rel, blocked }),
        evidence: [blocked.pointer],
      });
      continue;
    }
    const plan = pack.json<PlanSplit>(rel);
    const cases = (plan.dataset?.cases ?? []).map((c) => c.id);
    const folds = plan.split?.folds ?? [];
    const problems: string[] = [];
    const heldOut = new Map<string, number[]>();
    for (const f of folds) {
      for (const id of f.val) heldOut.set(id, [...(heldOut.get(id) ?? []), f.fold]);
      const leak = f.val.filter((id) => f.train.includes(id));
      if (leak.length) problems.push(`fold ${f.fold} trains on its own held-out case(s) ${leak.join(", ")}`);
      const unknown = [...f.train, ...f.val].filter((id) => !cases.includes(id));
      if (unknown.length)
        problems.push(`fold ${f.fold} names case(s) not in the dataset: ${unknown.join(", ")}`);
    }
    if (plan.split?.method !== "holdout" && folds.length > 1) {
      for (const id of cases) {
        const n = heldOut.get(id)?.length ?? 0;
        if (n !== 1) problems.push(`case ${id} is held out ${n === 0 ? "by no fold" : `by ${n} folds`}`);
      }
    }
    const groupOf = new Map(
      (plan.dataset?.cases ?? []).filter((c) => c.group !== undefined).map((c) => [c.id, c.group]),
    );
    if (groupOf.size) {
      const foldsOfGroup = new Map<string, Set<number>>();
      for (const f of folds)
        for (const id of f.val) {
          const g = groupOf.get(id);
          if (g !== undefined) foldsOfGroup.set(g, (foldsOfGroup.get(g) ?? new Set()).add(f.fold));
        }
      for (const [g, fs] of foldsOfGroup)
        if (fs.size > 1) problems.push(`group ${g} is split across folds ${[...fs].join(", ")}`);
    }
    out.push(
      problems.length
        ? {
            id: "cv.split",
            verdict: "fail",
            message: problems.slice(0, 5).join("; "),
            evidence: [`${rel}#/split`],
          }
        : {
            id: "cv.split",
            verdict: "pass",
            message: `${folds.length} fold(s) over ${cases.length} cases: every case held out once, no leakage${groupOf.size ? ", groups kept together" : ""}`,
            evidence: [`${rel}#/split`],
          },
    );
  }
  return out;
}
