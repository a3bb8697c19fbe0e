// What a Node entry script runs: every project file it reaches through relative imports (static,
// dynamic with a literal path, and worker scripts named by `new URL("./x.js", import.meta.url)`),
// and the npm packages those files import. A stage's cache key
// hashes these, so a changed module or package version can never reuse an old result.
import { existsSync, readFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const SPECIFIER =
  /(?:\bfrom\s*|\bimport\s*\(?\s*)["']([^"']+)["']|\bnew URL\(\s*["'](\.{1,2}\/[^"']+\.js)["']\s*,\s*import\.meta\.url/g;
const BUILTIN = new Set(builtinModules);

export interface ImportClosure {
  /** Absolute paths of the entry and every project file it reaches. */
  files: string[];
  /** Package names imported by those files (node: builtins excluded), sorted. */
  packages: string[];
  /** File imports whose file does not exist, as "importer -> specifier". */
  missing: string[];
}

/** The package name of a bare specifier: "@scope/name/sub" -> "@scope/name", "yaml/x" -> "yaml". */
function packageName(spec: string): string {
  const parts = spec.split("/");
  return spec.startsWith("@") ? parts.slice(0, 2).join("/") : (parts[0] as string);
}

export function importClosure(entry: string): ImportClosure {
  const seen = new Set<string>();
  const packages = new Set<string>();
  const missing: string[] = [];
  const stack = [resolve(entry)];
  while (stack.length) {
    const file = stack.pop() as string;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const m of readFileSync(file, "utf8").matchAll(SPECIFIER)) {
      const spec = (m[1] ?? m[2]) as string;
      // A file: relative, absolute, or a file: URL (a skill outside the project importing ours).
      if (spec.startsWith(".") || isAbsolute(spec) || spec.startsWith("file:")) {
        const target = spec.startsWith("file:") ? fileURLToPath(spec) : resolve(dirname(file), spec);
        if (existsSync(target)) stack.push(target);
        else missing.push(`${file} -> ${spec}`);
      } else if (!spec.startsWith("node:") && !BUILTIN.has(spec)) packages.add(packageName(spec));
    }
  }
  return { files: [...seen].sort(), packages: [...packages].sort(), missing };
}

/** The installed version of `name` as seen from `root` (its node_modules), or null. */
export function packageVersion(root: string, name: string): string | null {
  const file = join(root, "node_modules", name, "package.json");
  if (!existsSync(file)) return null;
  return (JSON.parse(readFileSync(file, "utf8")) as { version?: string }).version ?? null;
}
