// Independent oracles for tests: Debian's Python with numpy, scipy and nibabel.
// Tests compare the project's TypeScript against these, never against its own output.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { describe, it } from "vitest";

/** The interpreter that has the oracle libraries (Debian's, not a pyenv shim). */
export const ORACLE_PYTHON =
  process.env.ORACLE_PYTHON ?? (existsSync("/usr/bin/python3") ? "/usr/bin/python3" : "python3");

// JSON has no NaN or Infinity: the wrapper sends them as these strings and the reviver restores them.
const NON_FINITE: Record<string, number> = { NaN: Number.NaN, Infinity: Infinity, "-Infinity": -Infinity };

/**
 * Runs `code` in the oracle interpreter. `input` is available to the script as the
 * JSON-decoded variable `INPUT`; whatever the script assigns to `OUTPUT` comes back
 * (numpy scalars and arrays become numbers and lists; NaN and infinities survive).
 */
export function python<T = unknown>(code: string, input: unknown = null): T {
  const wrapper = `
import json, math, sys
INPUT = json.loads(sys.stdin.read())
OUTPUT = None
${code}
def _plain(v):
    if hasattr(v, "tolist"):
        v = v.tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    return v
sys.stdout.write(json.dumps(_plain(OUTPUT)))
`;
  const out = execFileSync(ORACLE_PYTHON, ["-c", wrapper], {
    input: JSON.stringify(input),
    encoding: "utf8",
    maxBuffer: 1 << 30,
  });
  return JSON.parse(out, (_key, value) =>
    typeof value === "string" && value in NON_FINITE ? NON_FINITE[value] : value,
  ) as T;
}

const imported = new Map<string, boolean>();

/** Whether the oracle interpreter can import every one of `modules` (checked once per module). */
export function oracleHas(...modules: string[]): boolean {
  const unknown = modules.filter((m) => !imported.has(m));
  if (unknown.length > 0) {
    // One interpreter start for all unknown modules; it prints the ones it cannot import.
    const probe = `import importlib, sys\nfor m in sys.argv[1:]:\n    try: importlib.import_module(m)\n    except Exception: print(m)`;
    let missing: string[];
    try {
      missing = execFileSync(ORACLE_PYTHON, ["-c", probe, ...unknown], { encoding: "utf8" }).split(/\s+/);
    } catch {
      missing = unknown; // no interpreter at all
    }
    for (const m of unknown) imported.set(m, !missing.includes(m));
  }
  return modules.every((m) => imported.get(m));
}

function announce(kind: string, name: string, missing: string[]): void {
  const packages = missing.map((m) => `python3-${m.toLowerCase()}`).join(" "); // PIL: python3-pil
  process.stderr.write(
    `\n*** ORACLE MISSING: skipping ${kind} "${name}": ${ORACLE_PYTHON} cannot import ${missing.join(", ")} ` +
      `(apt-get install ${packages}, or set ORACLE_PYTHON) ***\n\n`,
  );
}

type Block = (name: string, ...rest: unknown[]) => void;

function gated<T>(kind: string, run: T, skip: Block, modules: string[]): T {
  if (oracleHas(...modules)) return run;
  const missing = modules.filter((m) => !imported.get(m));
  return ((name: string, ...rest: unknown[]) => {
    announce(kind, name, missing);
    skip(name, ...rest);
  }) as T;
}

/**
 * `describe` when the oracle interpreter has `modules` (e.g. nibabel, scipy: test-only Debian
 * packages that `npm run setup` installs when it can); otherwise `describe.skip`, announced on
 * stderr so that a skipped oracle is never silent. Hooks outside the block guard themselves
 * with `oracleHas`.
 */
export function describeWithOracle(...modules: string[]): typeof describe {
  return gated("block", describe, describe.skip as Block, modules);
}

/** `it` when the oracle interpreter has `modules`, otherwise a loudly announced `it.skip`. */
export function itWithOracle(...modules: string[]): typeof it {
  return gated("test", it, it.skip as Block, modules);
}
