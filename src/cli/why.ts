import { existsSync } from "node:fs";
import { basename, dirname, resolve } from "node:path";
import { type KeyParts, readEvidence } from "../evidence/evidence.js";
import { UsageError } from "../manifest/diagnostics.js";
import { earlierRuns, readRunRecord } from "../run/run-dir.js";
import { diffKeyParts } from "../run/why.js";
import { EXIT, printJson } from "./output.js";

/** Names what changed in a stage's cache key since the latest earlier run that had the stage. */
export function explainStage(run: string, stage: string, o: { json?: boolean }): number {
  const runDir = resolve(run);
  if (!existsSync(resolve(runDir, "run.json")))
    throw new UsageError(`${run}: not a run folder (no run.json)`);
  const evidence = readEvidence(runDir);
  const rec = evidence?.stages[stage];
  if (!rec) {
    const known = Object.keys(evidence?.stages ?? {});
    throw new UsageError(
      `${run}: no stage '${stage}'; expected one of: ${known.join(", ") || "(none recorded)"}`,
    );
  }
  const record = readRunRecord(runDir);
  let reasons: string[];
  let against: string | null = null;
  let label = "";
  if (rec.status === "cached")
    reasons = [`not rerun: cached from ${rec.cached_from} (same key ${rec.cache_key?.slice(0, 12)}…)`];
  else if (!rec.key_parts)
    reasons = [`no key recorded (${rec.status}${rec.reason ? `: ${rec.reason}` : ""})`];
  else if (rec.earlier_attempt?.key_parts) {
    // A resumed run that reran the stage: what it replaced is the closest comparison there is.
    const before = rec.earlier_attempt;
    against = runDir;
    label = "its earlier attempt in this run";
    const diff = diffKeyParts(before.key_parts as KeyParts, rec.key_parts);
    reasons = diff.length
      ? diff
      : [
          `same key as its earlier attempt in this run, which ended ${before.status}${before.reason ? ` (${before.reason})` : ""}: --resume reran it`,
        ];
  } else {
    reasons = ["no earlier run had this stage: first run"];
    for (const dir of earlierRuns(dirname(dirname(runDir)), record.pipeline, basename(runDir))) {
      const before = readEvidence(dir)?.stages[stage];
      if (!before?.key_parts) continue;
      against = dir;
      label = basename(dir);
      const diff = diffKeyParts(before.key_parts, rec.key_parts);
      reasons = diff.length
        ? diff
        : [
            `same key as in ${basename(dir)}, where it ended ${before.status}: it was rerun because no usable cached result existed`,
          ];
      break;
    }
  }
  if (o.json)
    printJson({ stage, status: rec.status, cache_key: rec.cache_key, compared_with: against, reasons });
  else {
    process.stdout.write(`${stage}: ${rec.status}${against ? ` (compared with ${label})` : ""}\n`);
    for (const r of reasons) process.stdout.write(`  - ${r}\n`);
  }
  return EXIT.ok;
}
