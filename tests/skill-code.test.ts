// A stage's cache key hashes its skill's folder, every module its Node entry reaches and what
// entrypoint.code adds (src/run/cache-key.ts). Checked here on the real skills: the import walk
// finds the modules a skill runs (workers included) and no dangling import, and the skills that
// start Python list the package no import reaches.
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { importClosure } from "../src/run/import-closure.js";
import { ROOT } from "./support/cli.js";
import { makeWorkspace } from "./support/workspace.js";

const skillsDir = join(ROOT, "skills");
const manifests = readdirSync(skillsDir)
  .filter((d) => !d.startsWith("."))
  .map((id) => ({
    id,
    ...(parse(readFileSync(join(skillsDir, id, "skill_manifest.yaml"), "utf8")) as {
      entrypoint: { interpreter: string; script: string; code?: string[] };
    }),
  }))
  .filter((m) => m.entrypoint.interpreter === "node");

const closureOf = (id: string, script: string) => {
  const c = importClosure(join(skillsDir, id, script));
  return { ...c, files: c.files.map((f) => relative(ROOT, f)) };
};

describe("the code a skill's cache key covers", () => {
  it.each(manifests.map((m) => [m.id, m] as const))("%s: every import resolves", (_, m) => {
    const c = closureOf(m.id, m.entrypoint.script);
    expect(c.missing).toEqual([]);
    expect(c.files).toContain("dist/skill-kit/index.js");
    // The skills that start medpipe's Python (training, torch inference): no import reaches it.
    if (["cv-train", "finetune", "infer"].includes(m.id))
      expect(m.entrypoint.code).toContain("src/py/medpipe");
  });

  it("follows re-exports, dynamic imports and worker scripts, and names the npm packages", () => {
    const c = closureOf("preprocess", "scripts/run.js");
    // preprocess/pool.js starts dist/preprocess/worker.js by URL; nothing imports it.
    expect(c.files).toContain("dist/preprocess/worker.js");
    expect(c.files).toContain("dist/imaging/resample.js");
    expect(c.packages).toContain("yaml");
    expect(c.packages.some((p) => p.startsWith("node:"))).toBe(false);
    const infer = closureOf("infer", "scripts/run.js");
    expect(infer.packages).toContain("onnxruntime-node");
    expect(infer.files).toContain("dist/plan/classes.js");
  });

  it("follows a skill outside the project that imports ours by file: URL", () => {
    const ws = makeWorkspace(); // its test skills import dist/skill-kit by an absolute file: URL
    const c = importClosure(join(ws.skills, "emit", "scripts", "run.js"));
    expect(c.missing).toEqual([]);
    expect(c.files).toContain(join(ROOT, "dist/skill-kit/index.js"));
    expect(c.packages).not.toContain("file:");
  });
});
