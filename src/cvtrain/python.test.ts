// How a Python child's failure reaches the stage: real interpreters running small modules put on
// PYTHONPATH for the test.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type PyEvent, PythonError, runPythonModule } from "./python.js";

describe("runPythonModule failures", () => {
  const saved = process.env.PYTHONPATH;
  beforeAll(() => {
    const dir = mkdtempSync(join(tmpdir(), "pymod-"));
    const event = 'print(\'{"event": "start"}\', flush=True)';
    // Killed as Linux's out-of-memory killer kills: SIGKILL, no last word on stderr.
    writeFileSync(
      join(dir, "killed_mp.py"),
      `import os, signal\n${event}\nos.kill(os.getpid(), signal.SIGKILL)\n`,
    );
    writeFileSync(
      join(dir, "fails_mp.py"),
      `import sys\n${event}\nprint("error: no cases", file=sys.stderr)\nsys.exit(3)\n`,
    );
    process.env.PYTHONPATH = dir;
  });
  afterAll(() => {
    if (saved === undefined) delete process.env.PYTHONPATH;
    else process.env.PYTHONPATH = saved;
  });

  async function failure(module: string): Promise<PythonError> {
    const events: PyEvent[] = [];
    const err = await runPythonModule(module, [], (e) => events.push(e)).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PythonError);
    expect(events).toEqual([{ event: "start" }]);
    return err as PythonError;
  }

  it("a child killed by SIGKILL is reported with the likely cause and what to change", async () => {
    const err = await failure("killed_mp");
    expect(err.code).toBeNull();
    expect(err.message).toMatch(
      /-m killed_mp ended with signal SIGKILL \(likely the system ran out of memory: try a smaller patch_size or batch_size\)$/,
    );
    expect(err.events).toEqual([{ event: "start" }]);
  });

  it("a child that exits non-zero is reported by its last stderr line", async () => {
    const err = await failure("fails_mp");
    expect(err.code).toBe(3);
    expect(err.message).toBe("error: no cases");
  });
});
