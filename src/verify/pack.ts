// The evidence pack as the verifier sees it: files read as bytes and JSON, hashed afresh (once:
// several checks read a checkpoint, and `judged` records the digest of its first reading).
// Nothing from the pack is ever imported or executed.
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Evidence } from "../evidence/evidence.js";
import { listFiles } from "../evidence/hash.js";
import type { RunRecord } from "../run/run-dir.js";

export class Pack {
  /** sha256 of every file read through this pack. */
  readonly judged: Record<string, string> = {};

  constructor(readonly dir: string) {}

  exists(rel: string): boolean {
    return existsSync(join(this.dir, rel));
  }

  bytes(rel: string): Buffer {
    const b = readFileSync(join(this.dir, rel));
    this.judged[rel] ??= createHash("sha256").update(b).digest("hex");
    return b;
  }

  /**
   * A file outside the run that the run's evidence names (a ground-truth label of the dataset):
   * read and hashed like the pack's own, recorded under its absolute path.
   */
  external(abs: string): Buffer {
    const b = readFileSync(abs);
    this.judged[abs] ??= createHash("sha256").update(b).digest("hex");
    return b;
  }

  sha256(rel: string): string {
    if (this.judged[rel] === undefined) this.bytes(rel);
    return this.judged[rel] as string;
  }

  json<T>(rel: string): T {
    return JSON.parse(this.bytes(rel).toString("utf8")) as T;
  }

  /** Files below a folder of the pack, relative to the pack. */
  files(rel: string): string[] {
    const abs = join(this.dir, rel);
    return existsSync(abs) ? listFiles(abs).map((f) => `${rel}/${f}`) : [];
  }

  run(): RunRecord | null {
    return this.exists("run.json") ? this.json<RunRecord>("run.json") : null;
  }

  evidence(): Evidence | null {
    return this.exists("evidence.json") ? this.json<Evidence>("evidence.json") : null;
  }
}
