import { randomBytes } from "node:crypto";
import { renameSync, writeFileSync } from "node:fs";

/** Writes a file so that readers see the old content or the new, never half of it. */
export function writeFileAtomic(path: string, data: string | Buffer): void {
  const tmp = `${path}.${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}

export function writeJsonAtomic(path: string, value: unknown): void {
  writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`);
}
