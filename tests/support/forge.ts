// Tampering with a finished run the way an adversary would: a stage file replaced and its
// digest re-recorded everywhere the run records it (evidence.json, the stage's own artifact
// list, the root hash), so the change gets past integrity and only a semantic check can catch it.
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Evidence, rootHash } from "../../src/evidence/evidence.js";

export type Json = Record<string, unknown>;

export const sha = (b: Buffer | string) => createHash("sha256").update(b).digest("hex");

export const stageFile = (dir: string, stage: string, file: string) => join(dir, "stages", stage, file);

/** Every `K_sha256` beside a string `K` equal to `file`, below `v`, set to `digest`. */
function restate(v: unknown, file: string, digest: string): void {
  if (v === null || typeof v !== "object") return;
  const o = v as Record<string, unknown>;
  for (const [k, x] of Object.entries(o)) {
    if (k.endsWith("_sha256") && o[k.slice(0, -"_sha256".length)] === file) o[k] = digest;
    else restate(x, file, digest);
  }
}

/**
 * Replaces a stage file and re-records its digest everywhere the run records it: evidence.json,
 * the stage's artifact list, a `K_sha256` its output.json states beside the path (the infer
 * skill's `output_sha256`), the root hash.
 */
export function forge(dir: string, stage: string, file: string, bytes: Buffer): void {
  writeFileSync(stageFile(dir, stage, file), bytes);
  const evPath = join(dir, "evidence.json");
  const ev = JSON.parse(readFileSync(evPath, "utf8")) as Evidence;
  const rec = ev.stages[stage];
  if (!rec) throw new Error(`no stage ${stage}`);
  const outPath = stageFile(dir, stage, "output.json");
  if (file !== "output.json") {
    // The stage's own artifact list must agree too, or outputs.artifact-claims would catch it.
    const out = JSON.parse(readFileSync(outPath, "utf8")) as {
      artifacts: { path: string; sha256: string; bytes: number }[];
    };
    for (const a of out.artifacts)
      if (a.path === file) Object.assign(a, { sha256: sha(bytes), bytes: bytes.length });
    restate(out, file, sha(bytes));
    writeFileSync(outPath, JSON.stringify(out, null, 2));
  }
  const outBytes = readFileSync(outPath);
  for (const a of rec.artifacts) {
    if (a.path === file) Object.assign(a, { sha256: sha(bytes), bytes: bytes.length });
    if (a.path === "output.json") Object.assign(a, { sha256: sha(outBytes), bytes: outBytes.length });
  }
  rec.output_json_sha256 = sha(outBytes);
  ev.root_hash = rootHash(ev);
  writeFileSync(evPath, JSON.stringify(ev, null, 2));
}

/** forge() of a JSON file, edited in place by `edit`. */
export function forgeJson(dir: string, stage: string, file: string, edit: (j: Json) => void): void {
  const j = JSON.parse(readFileSync(stageFile(dir, stage, file), "utf8")) as Json;
  edit(j);
  forge(dir, stage, file, Buffer.from(JSON.stringify(j, null, 2)));
}

/** A value inside parsed JSON, by its path of keys and indexes. */
export const at = <T>(v: unknown, ...path: (string | number)[]): T =>
  path.reduce<unknown>((o, k) => (o as Record<string | number, unknown>)[k], v) as T;
