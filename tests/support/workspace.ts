// A throwaway workspace with a private copy of the test skills (so a test may edit their code).
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Evidence } from "../../src/evidence/evidence.js";
import { ROOT, TEST_SKILLS } from "./cli.js";

export interface Workspace {
  dir: string;
  skills: string;
  write(rel: string, text: string): string;
  /** The newest run folder of a pipeline. */
  latestRun(pipeline: string): string;
  evidence(runDir: string): Evidence;
  statuses(runDir: string): Record<string, string>;
}

export function makeWorkspace(): Workspace {
  const dir = mkdtempSync(join(tmpdir(), "medpipe-ws-"));
  const skills = join(dir, "skills");
  cpSync(TEST_SKILLS, skills, { recursive: true });
  const kit = pathToFileURL(join(ROOT, "dist/skill-kit/index.js")).href;
  for (const s of readdirSync(skills)) {
    const script = join(skills, s, "scripts", "run.js");
    try {
      writeFileSync(script, readFileSync(script, "utf8").replace("../../../../dist/skill-kit/index.js", kit));
    } catch {
      // a skill without scripts/run.js
    }
  }
  const ws: Workspace = {
    dir,
    skills,
    write(rel, text) {
      const p = join(dir, rel);
      mkdirSync(join(p, ".."), { recursive: true });
      writeFileSync(p, text);
      return p;
    },
    latestRun(pipeline) {
      const runs = readdirSync(join(dir, "runs", pipeline)).sort();
      return join(dir, "runs", pipeline, runs[runs.length - 1] as string);
    },
    evidence(runDir) {
      return JSON.parse(readFileSync(join(runDir, "evidence.json"), "utf8")) as Evidence;
    },
    statuses(runDir) {
      const e = ws.evidence(runDir);
      return Object.fromEntries(Object.entries(e.stages).map(([k, v]) => [k, v.status]));
    },
  };
  return ws;
}

/** Whether a process exists and is not a zombie. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}
