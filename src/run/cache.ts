// The stage cache: key → a finished stage folder in some run. A hit is linked into the new run
// (hard links, so no bytes are copied and each run folder stays complete on its own).
import { copyFileSync, existsSync, linkSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writeJsonAtomic } from "../evidence/atomic.js";
import type { Hasher } from "../evidence/hash.js";

export interface CacheEntry {
  run_dir: string;
  stage: string;
  output_json_sha256: string;
}

export class StageCache {
  constructor(private readonly dir: string) {}

  private entryPath(key: string): string {
    return join(this.dir, "stages", `${key}.json`);
  }

  /** A usable entry: its folder still exists and its output.json is the one recorded. */
  async lookup(key: string, hasher: Hasher): Promise<CacheEntry | null> {
    const p = this.entryPath(key);
    if (!existsSync(p)) return null;
    const e = JSON.parse(readFileSync(p, "utf8")) as CacheEntry;
    const out = join(e.run_dir, "stages", e.stage, "output.json");
    if (!existsSync(out)) return null;
    if ((await hasher.file(out)).sha256 !== e.output_json_sha256) return null;
    return e;
  }

  put(key: string, entry: CacheEntry): void {
    mkdirSync(join(this.dir, "stages"), { recursive: true });
    writeJsonAtomic(this.entryPath(key), entry);
  }
}

/** Recreates `src` at `dst` with hard links (copies when linking is impossible). */
export function linkTree(src: string, dst: string): void {
  mkdirSync(dst, { recursive: true });
  for (const e of readdirSync(src, { withFileTypes: true })) {
    const from = join(src, e.name);
    const to = join(dst, e.name);
    if (e.isDirectory()) linkTree(from, to);
    else {
      try {
        linkSync(from, to);
      } catch {
        copyFileSync(from, to);
      }
    }
  }
}
