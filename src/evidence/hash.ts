// Content hashing: sha256 of files, of folders (over their sorted listing), and of JSON values.
import { createHash } from "node:crypto";
import { type Dirent, existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { open } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import { writeJsonAtomic } from "./atomic.js";

export function sha256(data: string | Buffer): string {
  return createHash("sha256").update(data).digest("hex");
}

/** Read through one reused buffer: a stream's fresh chunk per read costs as much in GC as the hash. */
const HASH_CHUNK = 1 << 20;

export async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  const file = await open(path, "r");
  try {
    const buffer = Buffer.allocUnsafe(HASH_CHUNK);
    for (;;) {
      const { bytesRead } = await file.read(buffer, 0, HASH_CHUNK, null);
      if (bytesRead === 0) break;
      h.update(buffer.subarray(0, bytesRead));
    }
  } finally {
    await file.close();
  }
  return h.digest("hex");
}

/** JSON with sorted keys, so equal values always hash equal. */
export function canonicalJson(v: unknown): string {
  if (v === null || typeof v !== "object") return JSON.stringify(v) ?? "null";
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(",")}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .filter((k) => o[k] !== undefined)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
    .join(",")}}`;
}

export function hashJson(v: unknown): string {
  return sha256(canonicalJson(v));
}

/** Every regular file below `dir`, as sorted POSIX-style relative paths. */
export function listFiles(
  dir: string,
  skip: (rel: string, entry: Dirent) => boolean = () => false,
): string[] {
  const out: string[] = [];
  const walk = (abs: string): void => {
    for (const e of readdirSync(abs, { withFileTypes: true })) {
      const full = join(abs, e.name);
      const rel = relative(dir, full).split(sep).join("/");
      if (skip(rel, e)) continue;
      if (e.isDirectory()) walk(full);
      else if (e.isFile() || (e.isSymbolicLink() && statSync(full).isFile())) out.push(rel);
    }
  };
  walk(dir);
  return out.sort();
}

export interface FileDigest {
  path: string;
  sha256: string;
  bytes: number;
}

/**
 * Hashes files, remembering (device, inode, size, mtime) → digest so that unchanged files are
 * not read again — hard-linked copies of cached stages included; a touched file is re-read,
 * and its digest (so any cache key) stays the same.
 */
export class Hasher {
  private readonly memo = new Map<string, { size: number; mtimeMs: number; ino: number; sha256: string }>();
  dirty = false;

  constructor(seed: Record<string, { size: number; mtimeMs: number; ino: number; sha256: string }> = {}) {
    for (const [k, v] of Object.entries(seed)) this.memo.set(k, v);
  }

  async file(path: string): Promise<FileDigest> {
    const st = statSync(path);
    const id = `${st.dev}:${st.ino}`;
    const hit = this.memo.get(id);
    if (hit && hit.size === st.size && hit.mtimeMs === st.mtimeMs && hit.ino === st.ino)
      return { path, sha256: hit.sha256, bytes: st.size };
    const digest = await sha256File(path);
    this.memo.set(id, { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino, sha256: digest });
    this.dirty = true;
    return { path, sha256: digest, bytes: st.size };
  }

  /** A file's digest, or a folder's: sha256 over "relpath\0digest\n" of its sorted files. */
  async path(p: string): Promise<string> {
    const st = statSync(p);
    if (!st.isDirectory()) return (await this.file(p)).sha256;
    const lines: string[] = [];
    for (const rel of listFiles(p)) lines.push(`${rel}\0${(await this.file(join(p, rel))).sha256}\n`);
    return sha256(lines.join(""));
  }

  snapshot(): Record<string, { size: number; mtimeMs: number; ino: number; sha256: string }> {
    return Object.fromEntries(this.memo);
  }

  /**
   * A hasher that starts from the digests saved in `file` (the runs folder's
   * .cache/file-hashes.json); none when it is absent or not a saved snapshot, since the memo only
   * saves work and every entry is checked against the file's stat before use.
   */
  static load(file: string | undefined): Hasher {
    if (!file) return new Hasher();
    try {
      if (!existsSync(file)) return new Hasher();
      const seed: unknown = JSON.parse(readFileSync(file, "utf8"));
      return seed !== null && typeof seed === "object" && !Array.isArray(seed)
        ? new Hasher(seed as Record<string, { size: number; mtimeMs: number; ino: number; sha256: string }>)
        : new Hasher();
    } catch {
      return new Hasher();
    }
  }

  /** Writes the memo to `file` (atomically) when it learned something since the last save. */
  save(file: string): void {
    if (!this.dirty) return;
    writeJsonAtomic(file, this.snapshot());
    this.dirty = false;
  }
}
