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
  root_hash: string;
}

/** One hash over every stage's key, status and file digests: change any file and it changes. */
export function rootHash(stages: Record<string, StageRecord>): string {
  return hashJson(
    Object.keys(stages)
      .sort()
      .map((id) => {
        const s = stages[id] as StageRecord;
        return [
          id,
          s.status,
          s.cache_key,
          s.output_json_sha256,
          s.artifacts.map((a) => [a.path, a.sha256, a.bytes]),
        ];
      }),
  );
}

export function writeEvidence(runDir: string, e: Omit<Evidence, "root_hash">): void {
  writeJsonAtomic(join(runDir, "evidence.json"), { ...e, root_hash: rootHash(e.stages) });
}

export function readEvidence(runDir: string): Evidence | null {
  const p = join(runDir, "evidence.json");
  if (!existsSync(p)) return null;
  return JSON.parse(readFileSync(p, "utf8")) as Evidence;
}
