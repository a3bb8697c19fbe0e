// outputs.*: every finished stage's output.json is valid evidence of that stage (schemas from
// the installed skills, not from the pack), agrees with the run's mode, and the digests it
// claims for its own artifacts are those of the files.
import type { Evidence } from "../evidence/evidence.js";
import { checkOutput } from "../evidence/output-check.js";
import type { Value } from "../manifest/expr.js";
import type { Skill } from "../skills/types.js";
import type { Pack } from "./pack.js";
import { type Skip, skipLine, type Taint } from "./taint.js";
import type { CheckResult } from "./types.js";

interface OutputEnvelope {
  mode?: string;
  artifacts?: { path: string; sha256: string; bytes: number }[];
}

export function checkOutputs(
  pack: Pack,
  evidence: Evidence,
  skills: Map<string, Skill>,
  mode: string | null,
  taint: Taint,
): CheckResult[] {
  const schemaSkips: Skip[] = [];
  const claimSkips: Skip[] = [];
  const schemaProblems: string[] = [];
  const schemaPointers: string[] = [];
  const claimProblems: string[] = [];
  const claimPointers: string[] = [];
  let n = 0;
  // A mode run.json was edited to is no yardstick for the stages (integrity.run-record's finding).
  const modeBlocked = taint.blocking(["run.json#/mode"]);
  if (modeBlocked) schemaSkips.push({ what: "each stage's mode", blocked: modeBlocked });
  for (const [id, rec] of Object.entries(evidence.stages)) {
    if (rec.status !== "succeeded" && rec.status !== "cached") continue;
    const rel = `stages/${id}/output.json`;
    if (!pack.exists(rel)) continue; // integrity.artifacts reports it
    // A file integrity found altered is not evidence of its stage; claims about files are
    // only as good as the records, which the root hash vouches for.
    const fileBlocked = taint.blocking([rel]);
    const claimBlocked = taint.blocking([rel, "evidence.json#/root_hash"]);
    if (fileBlocked) schemaSkips.push({ what: rel, blocked: fileBlocked });
    if (claimBlocked) claimSkips.push({ what: `${rel}#/artifacts`, blocked: claimBlocked });
    if (fileBlocked && claimBlocked) continue;
    n++;
    let output: Record<string, Value>;
    try {
      output = pack.json<Record<string, Value>>(rel);
    } catch (err) {
      if (!fileBlocked) {
        schemaProblems.push(`${rel}: not JSON (${(err as Error).message})`);
        schemaPointers.push(rel);
      }
      continue;
    }
    const skill = skills.get(rec.skill);
    if (!skill) {
      schemaProblems.push(`${rel}: skill '${rec.skill}' is not installed here, so its schema is unknown`);
      schemaPointers.push(rel);
      continue;
    }
    const problem = fileBlocked ? null : checkOutput(skill, id, output);
    if (problem) {
      schemaProblems.push(`${rel}: ${problem}`);
      schemaPointers.push(rel);
    }
    const env = output as OutputEnvelope;
    if (!fileBlocked && !modeBlocked && mode && env.mode !== mode) {
      schemaProblems.push(`${rel}: mode '${String(env.mode)}' but the run is '${mode}'`);
      schemaPointers.push(`${rel}#/mode`);
    }
    if (claimBlocked) continue;
    // The stage's own claims about its files must agree with what the engine recorded; a file
    // that no longer matches the record is integrity.artifacts' finding, not this one's.
    const recorded = new Map(rec.artifacts.map((a) => [a.path, a.sha256]));
    for (const c of fileDigestClaims(output, "")) {
      const digest = recorded.get(c.path);
      if (digest !== undefined && digest !== c.sha256) {
        claimProblems.push(`${rel} claims a sha256 for ${c.path} that differs from the recorded one`);
        claimPointers.push(`${rel}#${c.pointer}`);
      }
    }
    for (const [i, a] of (env.artifacts ?? []).entries()) {
      const digest = recorded.get(a.path);
      if (digest === undefined) {
        claimProblems.push(`${rel} lists ${a.path}, which the run never recorded`);
        claimPointers.push(`${rel}#/artifacts/${i}`);
      } else if (digest !== a.sha256) {
        claimProblems.push(`${rel} claims a sha256 for ${a.path} that differs from the recorded one`);
        claimPointers.push(`${rel}#/artifacts/${i}`);
      }
    }
  }
  return [
    schemaProblems.length
      ? {
          id: "outputs.schema",
          verdict: "fail",
          message: schemaProblems.slice(0, 5).join("; "),
          evidence: schemaPointers,
        }
      : schemaSkips.length
        ? skippedResult("outputs.schema", schemaSkips)
        : {
            id: "outputs.schema",
            verdict: "pass",
            message: `${n} output.json files match the envelope and their skills' result schemas`,
            evidence: ["stages/*/output.json"],
          },
    claimProblems.length
      ? {
          id: "outputs.artifact-claims",
          verdict: "fail",
          message: claimProblems.slice(0, 5).join("; "),
          evidence: claimPointers,
        }
      : claimSkips.length
        ? skippedResult("outputs.artifact-claims", claimSkips)
        : {
            id: "outputs.artifact-claims",
            verdict: "pass",
            message: "every artifact digest a stage claims matches its file",
            evidence: ["stages/*/output.json#/artifacts"],
          },
  ];
}

/**
 * Digests a result states beside a path, as `{output: "predictions/x.nii.gz", output_sha256: "…"}`
 * (the infer skill's cases): every `K_sha256` next to a string `K`, anywhere below the envelope's
 * artifact list. Paths the run did not record (inputs elsewhere) are not its claims about its files.
 */
function fileDigestClaims(v: Value, pointer: string): { path: string; sha256: string; pointer: string }[] {
  if (v === null || typeof v !== "object") return [];
  const out: { path: string; sha256: string; pointer: string }[] = [];
  if (Array.isArray(v)) {
    v.forEach((x, i) => {
      out.push(...fileDigestClaims(x, `${pointer}/${i}`));
    });
    return out;
  }
  for (const [k, x] of Object.entries(v)) {
    if (pointer === "" && k === "artifacts") continue;
    const path = k.endsWith("_sha256") ? v[k.slice(0, -"_sha256".length)] : undefined;
    if (typeof path === "string" && typeof x === "string")
      out.push({ path, sha256: x, pointer: `${pointer}/${k}` });
    else out.push(...fileDigestClaims(x, `${pointer}/${k}`));
  }
  return out;
}

function skippedResult(id: string, skips: Skip[]): CheckResult {
  return {
    id,
    verdict: "skipped",
    message: skips.slice(0, 3).map(skipLine).join("; "),
    evidence: [...new Set(skips.map((s) => s.blocked.pointer))],
  };
}
