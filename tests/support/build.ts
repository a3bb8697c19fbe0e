// `npm test` builds before vitest runs; a direct vitest run after editing the sources would
// otherwise exercise a stale dist/. Tests that spawn the CLI call this first.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./cli.js";

function newestSource(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true }))
    if (e.isDirectory()) t = Math.max(t, newestSource(join(dir, e.name)));
    else if (e.name.endsWith(".ts") && !e.name.endsWith(".test.ts"))
      t = Math.max(t, statSync(join(dir, e.name)).mtimeMs);
  return t;
}

/** Rebuilds dist/ when `probe` (a file under dist/) is missing or older than any source. */
export function ensureBuilt(probe = "cli/main.js"): void {
  const built = join(ROOT, "dist", probe);
  if (!existsSync(built) || statSync(built).mtimeMs < newestSource(join(ROOT, "src")))
    execFileSync("npm", ["run", "build"], { cwd: ROOT, stdio: "ignore" });
}
