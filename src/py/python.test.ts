// Runs the Python package's unittest suite (src/py/tests) with the oracle interpreter,
// Debian's python3 with torch 1.13 on the CPU: the same environment CI has.
import { spawnSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { ORACLE_PYTHON } from "../../tests/support/oracle.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

describe("python package (src/py)", () => {
  it("passes its unittest suite", () => {
    const run = spawnSync(
      ORACLE_PYTHON,
      ["-m", "unittest", "discover", "-s", "src/py/tests", "-t", "src/py"],
      {
        cwd: ROOT,
        env: { ...process.env, PYTHONPATH: join(ROOT, "src", "py"), PYTHONDONTWRITEBYTECODE: "1" },
        encoding: "utf8",
        // About 45 s alone; more while other test files train beside it.
        timeout: 280_000,
      },
    );
    if (run.status !== 0) {
      console.error(`${ORACLE_PYTHON} -m unittest failed (status ${run.status}, signal ${run.signal})`);
      console.error(run.stdout, run.stderr, run.error ?? "");
    }
    expect(run.error).toBeUndefined();
    expect(run.status).toBe(0);
  }, 300_000);
});
