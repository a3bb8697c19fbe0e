// evidence.json: what happened to every stage of a run, with digests that the verifier checks.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Value } from "../manifest/expr.js";
import { writeJsonAtomic } from "./atomic.js";
import type { FileDigest } from "./hash.js";
import { hashJson } from "./hash.js";

export type StageStatus = "succeeded" | "cached" | "failed" | "skipped" | "interrupted";

/** Everything a stage's cache key is made of, kept so `pipeline why` can name what changed. */
export interface KeyParts {
  /** The instance id: output.json names its stage, so another stage's result cannot stand in. */
  stage?: string;
  skill: string;
  mode: string;
  code: Record<string, string>;
  inputs: Record<string, Value>;
  hashes: Record<string, string>;
  /** Keys of the stages listed in `needs`: ordering after a stage also means depending on it. */
  needs: Record<string, string>;
  environment: Record<string, string>;
}

export interface StageRecord {
  stage: string;
  skill: string;
  skill_version: string;
  status: StageStatus;
  reason: string | null;
  cache_key: string | null;
  key_parts: KeyParts | null;
  cached_from: string | null;
  started: string | null;
  ended: string | null;
  wall_s: number | null;
  exit_code: number | null;
  signal: string | null;
  attempts: number;
  peak_rss_mb: number | null;
  device: string | null;
  output_json_sha256: string | null;
  artifacts: FileDigest[];
  /**
   * What this stage's record was before a --resume reran it: the resumed run keeps one record
   * per stage, so `pipeline why` would otherwise have nothing to compare the rerun with.
   */
  earlier_attempt?: EarlierAttempt;
}

export interface EarlierAttempt {
  status: StageStatus;
  reason: string | null;
  cache_key: string | null;
  key_parts: KeyParts | null;
  ended: string | null;
}

export interface Evidence {
  schema_version: 1;
  run_id: string;
  pipeline: string;
  stages: Record<string, StageRecord>;
  /** run.json as it stood when the stages were recorded (runRecordDigests); absent in older runs. */
  run_record?: Record<string, string>;
  root_hash: string;
}

/**
 * One hash over every stage's key, status and file digests, and over run.json's sealed fields:
 * change any file, or what the run says it was run with, and it changes. Evidence without
 * `run_record` (written before it existed) hashes as it always did, so older runs still verify.
 */
export function rootHash(e: Pick<Evidence, "stages" | "run_record">): string {
  const stages = Object.keys(e.stages)
    .sort()
    .map((id) => {
      const s = e.stages[id] as StageRecord;
      return [
        id,
        s.status,
        s.cache_key,
        s.output_json_sha256,
        s.artifacts.map((a) => [a.path, a.sha256, a.bytes]),
      ];
    });
  return hashJson(e.run_record ? { stages, run_record: e.run_record } : stages);
}

/**
 * Fields of run.json the engine writes again when the run ends, after evidence.json was last
 * written: the seal leaves them out, or every finished run would contradict its own evidence.
 */
const RUN_FIELDS_WRITTEN_AT_END: ReadonlySet<string> = new Set(["status", "ended"]);

/**
 * sha256 of each field of a run.json, keyed by JSON pointer. An object field (params,
 * environment) is sealed key by key, so that a verifier can name the param that changed.
 */
export function runRecordDigests(run: object): Record<string, string> {
  const out: Record<string, string> = {};
  const esc = (k: string) => k.replace(/~/g, "~0").replace(/\//g, "~1");
  for (const [k, v] of Object.entries(run) as [string, unknown][]) {
    if (RUN_FIELDS_WRITTEN_AT_END.has(k) || v === undefined) continue;
    const entries = v !== null && typeof v === "object" && !Array.isArray(v) ? Object.entries(v) : [];
    if (entries.length === 0) out[`/${esc(k)}`] = hashJson(v);
    for (const [k2, v2] of entries) if (v2 !== undefined) out[`/${esc(k)}/${esc(k2)}`] = hashJson(v2);
  }
  return out;
}

/**
 * Writes evidence.json, sealing run.json's fields into it. The engine writes run.json before the
 * first stage starts (status running) and again only at the end with status and ended, so each
 * write here sees the fields the run was started with.
 */
export function writeEvidence(runDir: string, e: Omit<Evidence, "root_hash" | "run_record">): void {
  const run = readRunFields(runDir);
  const sealed: Omit<Evidence, "root_hash"> = run ? { ...e, run_record: runRecordDigests(run) } : e;
  writeJsonAtomic(join(runDir, "evidence.json"), { ...sealed, root_hash: rootHash(sealed) });
}

function readRunFields(runDir: string): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(readFileSync(join(runDir, "run.json"), "utf8"));
    return v !== null && typeof v === "object" && !Array.isArray(v) ? (v as Record<string, unknown>) : null;
  } catch {
    // No run.json to seal (a caller that keeps none): the stage records are sealed alone.
    return null;
  }
}

export function readEvidence(runDir: string): Evidence | null {
  const p = join(runDir, "evidence.json");
  if (!existsSync(p)) return null;
  return JSON.parse(readFileSync(p, "utf8")) as Evidence;
}
