// `pipeline run-script` (and the MCP tool run_script): one skill script, run exactly as a
// pipeline stage is — same input validation, same output folder rules, same evidence — by
// building a one-stage pipeline in memory and running it through the engine.
import { stringify } from "yaml";
import { buildGraph } from "../graph/expand.js";
import { ManifestError } from "../manifest/diagnostics.js";
import type { Value } from "../manifest/expr.js";
import { compilePipeline } from "../manifest/pipeline.js";
import { parseSource } from "../manifest/source.js";
import { checkStaticInputs } from "../run/inputs.js";
import type { RunOptions, RunResult } from "../run/run.js";
import { runLoaded } from "../run/run.js";
import { parseArgs } from "../skill-kit/args.js";
import { loadSkills, skillDirs } from "../skills/registry.js";
import { isRequiredInput, type Mode, type Skill } from "../skills/types.js";
import { checkSizes, confinePaths, Refusal, resolveScript } from "./boundaries.js";

export interface ScriptCall extends RunOptions {
  script: string;
  /** `--name value` pairs, as on a command line. */
  args: string[];
  mode: Mode;
  timeoutS?: number;
}

/** Checks a call and builds its one-stage pipeline; throws a Refusal before anything is written. */
export function prepareScript(
  call: Omit<ScriptCall, keyof Omit<RunOptions, "workspace" | "env" | "skillsDirs">>,
) {
  checkSizes(call.args);
  const skills = loadSkills(skillDirs(call.skillsDirs, call.env as NodeJS.ProcessEnv));
  const skill = resolveScript(call.script, skills, call.workspace);
  if (call.args.some((a) => a === "--output-dir" || a === "--output_dir"))
    throw new Refusal("--output-dir is not allowed: outputs go to the run folder under the runs folder");
  let inputs: Record<string, Value>;
  try {
    inputs = parseArgs(["--output-dir", "-", ...call.args], skill.manifest.inputs).inputs;
  } catch (err) {
    throw new Refusal(`${skill.manifest.id}: ${(err as Error).message}`);
  }
  // Said here as the flags a caller gives: the manifest check below would say `with: { x: ... }`.
  const given = { ...(skill.manifest.modes?.[call.mode as "smoke" | "sanity"]?.with ?? {}), ...inputs };
  const missing = Object.entries(skill.manifest.inputs).filter(
    ([name, schema]) => isRequiredInput(schema) && !(name in given),
  );
  if (missing.length)
    throw new Refusal(
      `${skill.manifest.id}: missing ${missing.map(([name]) => `--${name} VALUE`).join(", ")} (${missing
        .map(([name, schema]) => `${name}: ${schema.description ?? "required"}`)
        .join("; ")})`,
    );
  confinePaths(skill, inputs, call.workspace);
  const stage = skill.manifest.id.replace(/-/g, "_");
  const manifest = {
    name: `script-${skill.manifest.id}`,
    description: `run-script ${skill.manifest.id}`,
    stages: {
      [stage]: {
        skill: skill.manifest.id,
        with: literal(inputs),
        ...(call.timeoutS ? { timeout: call.timeoutS } : {}),
      },
    },
  };
  const doc = parseSource(stringify(manifest), `run-script ${skill.manifest.id}`);
  try {
    const spec = compilePipeline(doc, skills, { profile: null, mode: call.mode, sets: [], env: call.env });
    const graph = buildGraph(spec);
    checkStaticInputs(spec, graph, call.env, call.workspace, { pathsExist: true });
    return {
      skill,
      loaded: { spec, graph, manifestPath: `run-script:${skill.manifest.id}` },
    };
  } catch (err) {
    if (err instanceof ManifestError)
      throw new Refusal(
        err.diagnostics.map((d) => `${d.message}${d.expected ? ` (expected ${d.expected})` : ""}`).join("; "),
      );
    throw err;
  }
}

export async function runScript(call: ScriptCall): Promise<RunResult & { skill: Skill }> {
  const { skill, loaded } = prepareScript(call);
  const result = await runLoaded(loaded, call);
  return { ...result, skill };
}

// Arguments are data: `${` in them must reach the script as text, not as an expression.
function literal(v: Value): Value {
  // A replacer function, because "$$" in a replacement pattern would mean a single "$".
  if (typeof v === "string") return v.replace(/\$\{/g, () => "$${");
  if (Array.isArray(v)) return v.map(literal);
  if (v !== null && typeof v === "object")
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, literal(x)]));
  return v;
}
