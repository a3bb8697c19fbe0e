// Independent oracles for tests: Debian's Python with numpy, scipy and nibabel.
// Tests compare the project's TypeScript against these, never against its own output.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

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
