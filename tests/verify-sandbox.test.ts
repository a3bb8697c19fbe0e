// The verifier reads a run as data: it neither runs nor imports anything from it. Proven twice:
// at run time, under Node's permission model that forbids child processes, workers and writes
// outside verify/ (the project's onnxruntime addon is allowed: it evaluates a model as data),
// with booby-trapped files planted in the run and in the baseline it is compared with; and
// statically, no module of the verifier can load code by a computed name.

import { spawnSync } from "node:child_process";
import { cpSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { BIN, cli, ROOT } from "./support/cli.js";
import { makeWorkspace } from "./support/workspace.js";

describe("verifier sandbox", () => {
  it("runs with no child processes, no workers and no writes outside verify/, and triggers no planted file", () => {
    const ws = makeWorkspace();
    ws.write("data/input.txt", "x\n");
    const r = cli(["run", join(ROOT, "tests/pipelines/chain.yaml"), "--skills-dir", ws.skills], {
      cwd: ws.dir,
    });
    expect(r.code).toBe(0);
    const run = join(ws.dir, "trap");
    cpSync(ws.latestRun("chain"), run, { recursive: true });
    const marker = join(ws.dir, "TRIGGERED");
    const stage = join(run, "stages/first");
    writeFileSync(
      join(stage, "evil.mjs"),
      `import { writeFileSync } from "node:fs"; writeFileSync(${JSON.stringify(marker)}, "js");\n`,
    );
    writeFileSync(join(stage, "evil.py"), `open(${JSON.stringify(marker)}, "w").write("py")\n`);
    writeFileSync(join(stage, "model.pth"), "not a pickle the verifier would ever open");
    // The baseline is another pack, with the same planted files; the reference is read as YAML.
    const baseline = join(ws.dir, "baseline");
    cpSync(run, baseline, { recursive: true });
    const reference = ws.write(
      "ref.yaml",
      'id: ref\nsource: { document: d, result: r }\nconfiguration: {}\nmetrics: { sum: { centre: 30, tolerance: 1, measured: "combine:/sum" } }\nreasoning: a test reference whose one value is exact, so no spread.\n',
    );
    const v = spawnSync(
      process.execPath,
      [
        "--experimental-permission",
        "--allow-fs-read=*",
        // onnxruntime (the project's own addon) runs the run's model as data; no process, no worker.
        "--allow-addons",
        `--allow-fs-write=${join(run, "verify")}/*`,
        BIN,
        "verify",
        run,
        "--reference",
        reference,
        "--baseline",
        baseline,
        "--json",
        "--skills-dir",
        ws.skills,
      ],
      { cwd: ws.dir, encoding: "utf8" },
    );
    expect(v.stderr).not.toMatch(/ERR_ACCESS_DENIED/);
    expect(v.status).toBe(1); // the planted files are extra files: integrity fails, as it should
    const report = JSON.parse(v.stdout) as { checks: { id: string; verdict: string; evidence: string[] }[] };
    const integrity = report.checks.find((c) => c.id === "integrity.artifacts");
    expect(integrity?.evidence).toEqual(
      expect.arrayContaining(["stages/first/evil.mjs", "stages/first/evil.py", "stages/first/model.pth"]),
    );
    expect(report.checks.find((c) => c.id === "regression.reference")?.verdict).toBe("pass");
    expect(report.checks.find((c) => c.id === "regression.baseline")?.verdict).toBe("skipped");
    expect(existsSync(marker)).toBe(false);
  });

  it("has no way to load code by a computed name, in any module it imports", () => {
    // Every project module reachable from the verifier by static imports.
    const seen = new Set<string>();
    const visit = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = readFileSync(file, "utf8");
      for (const m of text.matchAll(/from\s+"(\.{1,2}\/[^"]+)\.js"/g))
        visit(resolve(dirname(file), `${m[1]}.ts`));
    };
    visit(join(ROOT, "src/verify/index.ts"));
    visit(join(ROOT, "src/cli/verify.ts"));
    expect(seen.size).toBeGreaterThan(5);
    for (const f of seen) {
      const text = readFileSync(f, "utf8");
      expect(text, f).not.toMatch(/\bimport\s*\(/);
      expect(text, f).not.toMatch(
        /\brequire\s*\(|child_process|node:vm|new Function|\beval\s*\(|worker_threads|execa/,
      );
    }
  });
});
