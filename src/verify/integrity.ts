// integrity.*: the files of the run are exactly those evidence.json records, with the recorded
// digests, run.json says what the run was started with, and evidence.json itself is unaltered
// (its root hash recomputes). Records that fail the root hash are not evidence of anything, so
// nothing is judged against them: an edited record is integrity.root-hash's finding, not also
// integrity.run-record's or integrity.artifacts'.
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { type Evidence, rootHash, runRecordDigests } from "../evidence/evidence.js";
import type { Pack } from "./pack.js";
import type { CheckResult } from "./types.js";

const FINISHED = new Set(["succeeded", "cached"]);

export function checkIntegrity(pack: Pack, evidence: Evidence, run: object): CheckResult[] {
  const out: CheckResult[] = [];
  const recomputed = rootHash(evidence);
  out.push(
    recomputed === evidence.root_hash
      ? {
          id: "integrity.root-hash",
          verdict: "pass",
          message: "root hash recomputes",
          evidence: ["evidence.json#/root_hash"],
        }
      : {
          id: "integrity.root-hash",
          verdict: "fail",
          message: `evidence.json was altered: root hash ${evidence.root_hash.slice(0, 12)}… recomputes as ${recomputed.slice(0, 12)}…`,
          evidence: ["evidence.json#/root_hash"],
        },
  );
  if (recomputed !== evidence.root_hash) {
    out.push({
      id: "integrity.run-record",
      verdict: "skipped",
      message:
        "run.json not judged: evidence.json#/root_hash already failed integrity.root-hash, so its records vouch for nothing",
      evidence: ["evidence.json#/root_hash"],
    });
    out.push({
      id: "integrity.artifacts",
      verdict: "skipped",
      message:
        "stage files not judged: evidence.json#/root_hash already failed integrity.root-hash, so its records vouch for nothing",
      evidence: ["evidence.json#/root_hash"],
    });
    return out;
  }

  out.push(checkRunRecord(evidence, run));

  const problems: string[] = [];
  const pointers: string[] = [];
  let checked = 0;
  for (const [id, rec] of Object.entries(evidence.stages)) {
    const dir = `stages/${id}`;
    if (!FINISHED.has(rec.status)) {
      if (pack.exists(dir)) {
        problems.push(`${dir} exists but the stage ${rec.status}`);
        pointers.push(dir);
      }
      continue;
    }
    const listed = new Map(rec.artifacts.map((a) => [`${dir}/${a.path}`, a]));
    const present = pack.files(dir);
    for (const f of present) {
      const a = listed.get(f);
      if (!a) {
        problems.push(`${f} is not in evidence.json`);
        pointers.push(f);
        continue;
      }
      checked++;
      const bytes = pack.bytes(f);
      const digest = pack.judged[f] as string;
      if (digest !== a.sha256 || bytes.length !== a.bytes) {
        problems.push(`${f} differs from its recorded sha256`);
        pointers.push(f);
      }
    }
    for (const f of listed.keys()) {
      if (!present.includes(f)) {
        problems.push(`${f} is missing`);
        pointers.push(f);
      }
    }
    const out = `${dir}/output.json`;
    if (present.includes(out) && rec.output_json_sha256 !== pack.judged[out]) {
      problems.push(`${out} differs from output_json_sha256`);
      pointers.push(out);
    }
  }
  // Stage folders that evidence.json does not know at all.
  for (const name of safeList(join(pack.dir, "stages"))) {
    if (name !== ".tmp" && !(name in evidence.stages)) {
      problems.push(`stages/${name} is not a stage of this run`);
      pointers.push(`stages/${name}`);
    }
  }
  out.push(
    problems.length
      ? {
          id: "integrity.artifacts",
          verdict: "fail",
          message: `${problems.length} problem(s): ${problems.slice(0, 5).join("; ")}${problems.length > 5 ? "; …" : ""}`,
          evidence: [...new Set(pointers)],
        }
      : {
          id: "integrity.artifacts",
          verdict: "pass",
          message: `${checked} files match their recorded sha256; nothing missing or added`,
          evidence: ["evidence.json#/stages"],
        },
  );
  return out;
}

/** run.json's fields against the digests evidence.json sealed when the stages were recorded. */
function checkRunRecord(evidence: Evidence, run: object): CheckResult {
  const sealed = evidence.run_record;
  if (!sealed)
    return {
      id: "integrity.run-record",
      verdict: "skipped",
      message:
        "evidence.json seals no digests of run.json (written by an engine from before they were recorded)",
      evidence: ["evidence.json"],
    };
  const now = runRecordDigests(run);
  const changed = [...new Set([...Object.keys(sealed), ...Object.keys(now)])]
    .filter((p) => sealed[p] !== now[p])
    .sort();
  if (changed.length === 0)
    return {
      id: "integrity.run-record",
      verdict: "pass",
      message: `run.json's ${Object.keys(sealed).length} sealed fields (params, mode, manifest digest, …) are those the stages were recorded with`,
      evidence: ["evidence.json#/run_record"],
    };
  const what = (p: string) =>
    sealed[p] === undefined ? "added" : now[p] === undefined ? "removed" : "changed";
  return {
    id: "integrity.run-record",
    verdict: "fail",
    message: `run.json was edited after its stages were recorded: ${changed
      .slice(0, 5)
      .map((p) => `${p.slice(1)} ${what(p)}`)
      .join(", ")}${changed.length > 5 ? ", …" : ""} (evidence.json#/run_record seals other values)`,
    evidence: changed.map((p) => `run.json#${p}`),
  };
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
