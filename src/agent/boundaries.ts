// What an agent (or run-script) may touch: declared skill scripts only, arguments checked
// before anything starts, and every path inside the workspace after symlinks are followed.
import { existsSync, realpathSync } from "node:fs";
import { dirname, isAbsolute, relative, resolve, sep } from "node:path";
import { UsageError } from "../manifest/diagnostics.js";
import type { Value } from "../manifest/expr.js";
import { PROJECT_ROOT } from "../paths.js";
import type { InputSchema, Skill } from "../skills/types.js";

/** A refused call: exit code 2, one line, nothing written. */
export class Refusal extends UsageError {
  constructor(message: string) {
    super(message);
    this.name = "Refusal";
  }
}

export const MAX_ARG_BYTES = 64 * 1024;

/** The skill whose entrypoint is `script` (a path, or the skill id). */
export function resolveScript(script: string, skills: Map<string, Skill>, workspace: string): Skill {
  const byId = skills.get(script);
  if (byId) return byId;
  const candidates = [resolve(workspace, script), resolve(PROJECT_ROOT, script)].filter(existsSync).map(real);
  for (const skill of skills.values()) if (candidates.includes(real(skill.scriptPath))) return skill;
  throw new Refusal(
    `${script}: not a script declared by a skill manifest; expected one of: ${[...skills.values()]
      .map((s) => `${s.manifest.id} (${relative(PROJECT_ROOT, s.scriptPath)})`)
      .join(", ")}`,
  );
}

function real(p: string): string {
  return realpathSync(p);
}

/** The real path of `p`, or of its nearest existing parent joined with the rest. */
function realish(p: string): string {
  let head = p;
  const tail: string[] = [];
  while (!existsSync(head)) {
    const parent = dirname(head);
    if (parent === head) break;
    tail.unshift(head.slice(parent.length + 1));
    head = parent;
  }
  return [real(head), ...tail].join(sep);
}

export function inside(root: string, p: string): boolean {
  const rel = relative(realish(root), realish(p));
  return rel === "" || (!rel.startsWith(`..${sep}`) && rel !== ".." && !isAbsolute(rel));
}

/** Refuses a path input (or list of them) that leaves the workspace, symlinks followed. */
export function confinePaths(skill: Skill, inputs: Record<string, Value>, workspace: string): void {
  for (const [name, v] of Object.entries(inputs)) {
    const schema = skill.manifest.inputs[name] as InputSchema | undefined;
    const items = schema?.items as InputSchema | undefined;
    const paths =
      schema?.format === "path" && typeof v === "string"
        ? [v]
        : items?.format === "path" && Array.isArray(v)
          ? v.filter((x): x is string => typeof x === "string")
          : [];
    for (const p of paths) {
      if (!inside(workspace, resolve(workspace, p)))
        throw new Refusal(`--${name} ${p}: the path leaves the workspace ${workspace}`);
    }
  }
}

export function checkSizes(args: string[]): void {
  for (const a of args) {
    if (Buffer.byteLength(a) > MAX_ARG_BYTES)
      throw new Refusal(`an argument of ${Buffer.byteLength(a)} bytes is over the limit of ${MAX_ARG_BYTES}`);
  }
}
