// `pipeline eval run-trusted skills/NAME --fixture DIR --out DIR`: a skill run in smoke mode on a
// fixture (through run-script's path: same validation, run folder and evidence), then the
// verifier on what it produced. OUT/skill_run is the run folder, OUT/trust_summary.json the
// verdicts with the sha256 of every file judged; it is written last, so it exists only for a
// finished evaluation.
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { isAbsolute, join, relative, resolve } from "node:path";
import { runScript } from "../agent/run-script.js";
import { writeJsonAtomic } from "../evidence/atomic.js";
import { UsageError } from "../manifest/diagnostics.js";
import type { Value } from "../manifest/expr.js";
import { loadSkills, skillDirs } from "../skills/registry.js";
import { type InputSchema, isRequiredInput, type Skill } from "../skills/types.js";
import { verifyRunWithModel, writeReport } from "../verify/index.js";
import { onnxGridRunner } from "../verify/onnx-runner.js";
import { EXIT } from "./output.js";
import { endSession, startSession } from "./run-session.js";

export interface RunTrustedOpts {
  fixture: string;
  out: string;
  skillsDir: string[];
  json?: boolean;
}

/** A skill named by its folder (skills/NAME), its id, or its script. */
function findSkill(arg: string, skills: Map<string, Skill>): string {
  const abs = resolve(arg);
  for (const s of skills.values())
    if (s.dir === abs || s.dir === abs.replace(/\/+$/, "")) return s.manifest.id;
  return arg; // run-script resolves (or refuses) an id or a script path
}

/**
 * The fixture as the skill's arguments: `DIR/inputs.json` ({input: value}, relative paths of
 * path inputs resolved against DIR) when present; otherwise DIR itself as the skill's one
 * required path input (analyze's `dataset`).
 */
function fixtureArgs(skill: Skill, dir: string): string[] {
  const inputs = skill.manifest.inputs as Record<string, InputSchema>;
  const file = join(dir, "inputs.json");
  if (existsSync(file)) {
    let values: Record<string, Value>;
    try {
      values = JSON.parse(readFileSync(file, "utf8")) as Record<string, Value>;
    } catch (err) {
      throw new UsageError(`${file}: not JSON (${(err as Error).message})`);
    }
    return Object.entries(values).flatMap(([name, v]) => {
      const isPath = inputs[name]?.format === "path" && typeof v === "string";
      const value = isPath ? resolve(dir, v as string) : v;
      return [`--${name}`, typeof value === "string" ? value : JSON.stringify(value)];
    });
  }
  const paths = Object.entries(inputs).filter(([, s]) => s.format === "path" && isRequiredInput(s));
  if (paths.length !== 1)
    throw new UsageError(
      `--fixture ${dir}: ${skill.manifest.id} has ${paths.length ? `several required path inputs (${paths.map(([n]) => n).join(", ")})` : "no required path input"}; put its arguments in ${file}`,
    );
  return [`--${(paths[0] as [string, InputSchema])[0]}`, dir];
}

export async function runTrustedCommand(skillArg: string, o: RunTrustedOpts): Promise<number> {
  const workspace = process.cwd();
  const fixture = resolve(o.fixture);
  if (!existsSync(fixture) || !statSync(fixture).isDirectory())
    throw new UsageError(`--fixture ${o.fixture}: no such folder`);
  const out = resolve(o.out);
  if (existsSync(out) && readdirSync(out).length > 0)
    throw new UsageError(`--out ${o.out}: not empty; give a new or empty folder`);
  const skills = loadSkills(skillDirs(o.skillsDir));
  const id = findSkill(skillArg, skills);
  const skill = skills.get(id);
  const args = skill ? fixtureArgs(skill, fixture) : [];
  const runsDir = join(out, ".runs");
  const session = await startSession(o.json);
  const result = await runScript({
    script: id,
    args,
    mode: "smoke",
    workspace,
    env: process.env as Record<string, string | undefined>,
    skillsDirs: o.skillsDir,
    runsDir,
    jobs: 1,
    resume: false,
    ...session,
  });
  const runDir = join(out, "skill_run");
  renameSync(result.runDir, runDir);
  rmSync(runsDir, { recursive: true, force: true });
  const report = await verifyRunWithModel(runDir, skills, onnxGridRunner);
  writeReport(report);
  const summary = {
    skill: result.skill.manifest.id,
    skill_version: result.skill.manifest.version,
    fixture,
    mode: "smoke",
    run_dir: "skill_run",
    run_status: result.status,
    verdict: result.status === "succeeded" && report.verdict === "pass" ? "pass" : "fail",
    checks: report.checks.map((c) => ({ id: c.id, verdict: c.verdict, message: c.message })),
    // Paths relative to OUT (inside the run) or absolute (the fixture's files).
    judged: Object.fromEntries(
      Object.entries(report.judged).map(([p, sha]) => [
        isAbsolute(p) ? p : relative(out, join(runDir, p)),
        sha,
      ]),
    ),
    verifier: report.verifier,
  };
  writeJsonAtomic(join(out, "trust_summary.json"), summary);
  const code = await endSession(session, { ...result, runDir }, o.json);
  if (o.json) process.stdout.write(`${JSON.stringify({ ok: summary.verdict === "pass", ...summary })}\n`);
  else process.stdout.write(`${summary.verdict}: ${join(out, "trust_summary.json")}\n`);
  if (code !== EXIT.ok) return code;
  return summary.verdict === "pass" ? EXIT.ok : EXIT.failed;
}
