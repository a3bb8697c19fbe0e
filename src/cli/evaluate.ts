// `pipeline evaluate`: flags in, report out. The work lives in src/evaluate/.
import { evaluatePairs, pairReferences, parseNumberList, toCsv, toJson, toText } from "../evaluate/index.js";
import { UsageError } from "../manifest/diagnostics.js";
import { EXIT } from "./output.js";

export interface EvaluateCommandOptions {
  pred: string;
  gt: string;
  labels?: string;
  tolerances?: string;
  json?: boolean;
  csv?: boolean;
  /** Comma-separated case names: only these are scored. */
  cases?: string;
  /** commander's --no-surface: false when given. */
  surface?: boolean;
}

export async function evaluateCommand(o: EvaluateCommandOptions): Promise<number> {
  if (o.json && o.csv) throw new UsageError("choose one of --json, --csv");
  const labels = o.labels === undefined ? undefined : parseNumberList(o.labels, "--labels", "label");
  const tolerancesMm =
    o.tolerances === undefined ? undefined : parseNumberList(o.tolerances, "--tolerances", "tolerance");
  // The evaluate skill's pairing: a --gt folder in the npy2d layout pairs by case, else by name.
  const cases = o.cases === undefined ? undefined : o.cases.split(",").map((c) => c.trim());
  if (cases?.some((c) => c === ""))
    throw new UsageError(`--cases ${o.cases}: expected case names separated by commas`);
  const pairs = pairReferences(o.pred, o.gt, cases);
  // Progress only where a person watches; pipes and CI get clean stderr.
  const live = process.stderr.isTTY && pairs.length > 1;
  const ev = await evaluatePairs(pairs, {
    ...(labels ? { labels } : {}),
    ...(tolerancesMm ? { tolerancesMm } : {}),
    surface: o.surface !== false,
    ...(live
      ? { onCase: (done: number, total: number) => process.stderr.write(`\revaluated ${done}/${total}`) }
      : {}),
  });
  if (live) process.stderr.write("\n");
  for (const note of ev.notes) process.stderr.write(`note: ${note}\n`);
  if (o.json) process.stdout.write(`${JSON.stringify(toJson(ev), null, 2)}\n`);
  else if (o.csv) process.stdout.write(toCsv(ev));
  else process.stdout.write(toText(ev));
  return EXIT.ok;
}
