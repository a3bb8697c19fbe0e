// Manifest → checked pipeline spec. Pure: the caller reads the files and the skills.
import { parse as parseYamlValue } from "yaml";
import type { Resources, Skill } from "../skills/types.js";
import { isRequiredInput, type Mode } from "../skills/types.js";
import { type Diagnostic, ManifestError, UsageError } from "./diagnostics.js";
import {
  describe,
  ExprError,
  FUNCTION_NAMES,
  hasTemplate,
  memberChain,
  parseTemplate,
  type Reference,
  references,
  render,
  type Scope,
  type Template,
  type Value,
} from "./expr.js";
import { findings, schemaValidator, toDiagnostics } from "./schema.js";
import type { Path, SourceDoc } from "./source.js";

export interface ProfileChoice {
  /** Profile name, or null for none. */
  profile: string | null;
  mode: Mode;
}

export interface CompileOptions extends ProfileChoice {
  /** `--set key=value` overrides of params (value parsed as YAML). */
  sets: string[];
  env: Record<string, string | undefined>;
}

/** A value from the manifest, with the place it came from. */
export interface Located {
  value: unknown;
  path: Path;
  /** Given as data (`--set`, an MCP client's params): used as is, no `${...}` expanded. */
  literal?: boolean;
}

export interface StageRef {
  stage: string;
  /** The output name read, if any (`plan` in `${plan.plan}`). */
  output: string | null;
  /** An input template reads the stage's outputs, or `needs` only orders after it. */
  via: "input" | "needs";
  path: Path;
  offset: number;
}

export interface ForeachAxis {
  name: string;
  values: Value[];
}

export interface StageSpec {
  id: string;
  skill: Skill;
  /** Inputs as written (templates unresolved), including defaults from the skill. */
  inputs: Record<string, Located>;
  needs: string[];
  foreach: ForeachAxis[];
  refs: StageRef[];
  timeoutMs: number | null;
  retries: number;
  resources: Resources;
}

export interface PipelineSpec {
  name: string;
  /** Resolved on first read; see materialize() for a plain copy. */
  description: string;
  file: string;
  source: SourceDoc;
  profile: string | null;
  mode: Mode;
  params: Record<string, Value>;
  profileValues: Record<string, Value>;
  /** GPU stages that may share one device at a time (the manifest's, default 1). */
  stagesPerGpu: number;
  stages: StageSpec[];
}

interface RawStage {
  skill: string;
  with?: Record<string, unknown>;
  needs?: string[];
  foreach?: Record<string, unknown>;
  timeout?: number | string;
  retries?: number;
  resources?: Resources;
}

interface RawManifest {
  name: string;
  description?: string;
  params?: Record<string, unknown>;
  stages_per_gpu?: number;
  profiles?: Record<string, Record<string, unknown> & { params?: Record<string, unknown>; mode?: Mode }>;
  stages: Record<string, RawStage>;
}

const RESERVED = new Set(["params", "env", "profile", ...FUNCTION_NAMES, "true", "false", "null"]);

export function compilePipeline(
  doc: SourceDoc,
  skills: Map<string, Skill>,
  opts: CompileOptions,
): PipelineSpec {
  const validate = schemaValidator("https://medpipe.dev/schemas/pipeline.schema.json");
  if (!validate(doc.value)) throw new ManifestError(toDiagnostics(doc, findings(validate.errors)));
  const raw = doc.value as RawManifest;
  const problems: Diagnostic[] = [];
  const located = (path: Path, err: unknown): void => {
    if (err instanceof PathedExprError) {
      const e = err.cause;
      problems.push(doc.diagnostic(err.path, e.message, e.expected, { offset: e.offset }));
    } else if (err instanceof ExprError)
      problems.push(doc.diagnostic(path, err.message, err.expected, { offset: err.offset }));
    else if (err instanceof ManifestError) problems.push(...err.diagnostics);
    else throw err;
  };

  // Profile: its params override the manifest's; its other keys become ${profile.KEY}.
  if (
    opts.profile &&
    !raw.profiles?.[opts.profile] &&
    opts.profile !== "smoke" &&
    opts.profile !== "sanity"
  ) {
    const known = Object.keys(raw.profiles ?? {});
    throw new UsageError(
      `${doc.file}: no profile '${opts.profile}'; expected one of: ${known.length ? known.join(", ") : "(none defined)"}`,
    );
  }
  const chosen = opts.profile ? raw.profiles?.[opts.profile] : undefined;
  const mode: Mode = chosen?.mode ?? opts.mode;
  const paramSources = new Map<string, Located>();
  for (const [k, v] of Object.entries(raw.params ?? {}))
    paramSources.set(k, { value: v, path: ["params", k] });
  for (const [k, v] of Object.entries(chosen?.params ?? {})) {
    if (!paramSources.has(k)) {
      problems.push(
        doc.diagnostic(
          ["profiles", opts.profile as string, "params", k],
          `profile sets unknown param '${k}'`,
          knownList(paramSources),
          { key: true },
        ),
      );
    }
    paramSources.set(k, { value: v, path: ["profiles", opts.profile as string, "params", k] });
  }
  for (const assignment of opts.sets) applySet(assignment, paramSources);

  const profileValues: Record<string, Value> = {};
  for (const p of Object.values(raw.profiles ?? {}))
    for (const k of Object.keys(p))
      if (k !== "params" && k !== "mode" && k !== "description") profileValues[k] = null;
  for (const [k, v] of Object.entries(chosen ?? {}))
    if (k !== "params" && k !== "mode" && k !== "description") profileValues[k] = v as Value;

  const stageIds = Object.keys(raw.stages);
  for (const id of stageIds) {
    if (RESERVED.has(id))
      problems.push(
        doc.diagnostic(["stages", id], `'${id}' is reserved and cannot name a stage`, "another stage id", {
          key: true,
        }),
      );
  }
  const env = opts.env;
  const params = lazyParams(paramSources, doc, env, profileValues);
  const baseScope = (root: string): Value | undefined => {
    if (root === "params") return params;
    if (root === "env") return envObject(env);
    if (root === "profile") return profileValues;
    return undefined;
  };

  const stages: StageSpec[] = [];
  for (const id of stageIds) {
    const rs = raw.stages[id] as RawStage;
    const base: Path = ["stages", id];
    const skill = skills.get(rs.skill);
    if (!skill) {
      problems.push(
        doc.diagnostic(
          [...base, "skill"],
          `unknown skill '${rs.skill}'`,
          `one of: ${[...skills.keys()].sort().join(", ") || "(no skills found)"}`,
        ),
      );
      continue;
    }
    const inputsSchema = skill.manifest.inputs;
    const inputs: Record<string, Located> = {};
    for (const [name, schema] of Object.entries(inputsSchema))
      if (schema.default !== undefined) inputs[name] = { value: schema.default, path: [...base, "skill"] };
    for (const [name, v] of Object.entries(skill.manifest.modes?.[mode as "smoke" | "sanity"]?.with ?? {}))
      inputs[name] = { value: v, path: [...base, "skill"] };
    for (const [name, v] of Object.entries(rs.with ?? {})) {
      if (!(name in inputsSchema)) {
        problems.push(
          doc.diagnostic(
            [...base, "with", name],
            `unknown input '${name}' for skill '${skill.manifest.id}'`,
            `one of: ${Object.keys(inputsSchema).join(", ") || "(no inputs)"}`,
            { key: true },
          ),
        );
        continue;
      }
      inputs[name] = { value: v, path: [...base, "with", name] };
    }
    for (const [name, schema] of Object.entries(inputsSchema)) {
      if (isRequiredInput(schema) && !(name in inputs))
        problems.push(
          doc.diagnostic(
            rs.with ? [...base, "with"] : base,
            `stage '${id}' is missing required input '${name}' of skill '${skill.manifest.id}'`,
            `with: { ${name}: ... }`,
            { key: true },
          ),
        );
    }

    // foreach axes: evaluated now, from params/env/profile only.
    const foreach: ForeachAxis[] = [];
    for (const [name, v] of Object.entries(rs.foreach ?? {})) {
      const path = [...base, "foreach", name];
      if (RESERVED.has(name) || stageIds.includes(name)) {
        problems.push(
          doc.diagnostic(
            path,
            `foreach variable '${name}' clashes with a reserved name or a stage id`,
            "another name",
            { key: true },
          ),
        );
        continue;
      }
      try {
        const value = resolveValue(v, baseScope);
        if (
          !Array.isArray(value) ||
          value.length === 0 ||
          !value.every((x) => ["string", "number", "boolean"].includes(typeof x))
        ) {
          problems.push(
            doc.diagnostic(
              path,
              `foreach '${name}' must give a non-empty list of numbers or strings, got ${Array.isArray(value) && value.length === 0 ? "an empty list" : describe(value)}`,
              "e.g. ${range(params.folds)} or [a, b]",
            ),
          );
          continue;
        }
        const dup = value.find((x, i) => value.indexOf(x) !== i);
        if (dup !== undefined) {
          problems.push(
            doc.diagnostic(
              path,
              `foreach '${name}' repeats the value ${JSON.stringify(dup)}; instance ids must be unique`,
              "distinct values",
            ),
          );
          continue;
        }
        foreach.push({ name, values: value });
      } catch (err) {
        located(path, err);
      }
    }

    const refs: StageRef[] = [];
    const vars = new Set(foreach.map((a) => a.name));
    for (const [name, inp] of Object.entries(inputs)) {
      forEachTemplate(
        inp.value,
        inp.path,
        (t, path) => {
          for (const part of t.parts) {
            if (typeof part === "string") continue;
            for (const r of references(part.expr)) {
              const problem = checkReference(r, {
                stageIds,
                vars,
                skills,
                raw,
                params: paramSources,
                profileValues,
              });
              if (problem)
                problems.push(doc.diagnostic(path, problem.message, problem.expected, { offset: r.at }));
              else if (stageIds.includes(r.root))
                refs.push({ stage: r.root, output: r.path[0] ?? null, via: "input", path, offset: r.at });
            }
          }
        },
        (path, err) => located(path, err),
      );
      void name;
    }
    (rs.needs ?? []).forEach((n, i) => {
      if (!stageIds.includes(n))
        problems.push(
          doc.diagnostic(
            [...base, "needs", i],
            `needs unknown stage '${n}'`,
            `one of: ${stageIds.join(", ")}`,
          ),
        );
      else refs.push({ stage: n, output: null, via: "needs", path: [...base, "needs", i], offset: 0 });
    });

    // A run-scoped stage (the verifier) audits the whole run: it comes after every other stage.
    if (skill.manifest.scope === "run") {
      for (const other of stageIds) {
        const o = raw.stages[other] as RawStage;
        if (
          other !== id &&
          skills.get(o.skill)?.manifest.scope !== "run" &&
          !refs.some((r) => r.stage === other)
        )
          refs.push({ stage: other, output: null, via: "needs", path: [...base, "skill"], offset: 0 });
      }
    }

    let timeoutMs: number | null = null;
    if (rs.timeout !== undefined) timeoutMs = parseDuration(rs.timeout);
    stages.push({
      id,
      skill,
      inputs,
      needs: rs.needs ?? [],
      foreach,
      refs,
      timeoutMs,
      retries: rs.retries ?? 0,
      resources: { ...skill.manifest.resources, ...rs.resources },
    });
  }
  problems.push(...shapeProblems(stages, doc));
  if (problems.length) throw new ManifestError(problems);
  return {
    name: raw.name,
    description: raw.description ?? "",
    file: doc.file,
    source: doc,
    profile: opts.profile,
    mode,
    params,
    profileValues,
    stagesPerGpu: raw.stages_per_gpu ?? 1,
    stages,
  };
}

/**
 * A `${stage.output}` reference's shape is known before anything runs: the engine gathers a
 * fanned-out stage's outputs into a list (one per instance, in foreach order) wherever it is read,
 * and gives a single value otherwise. A list fed to an input whose schema takes no array, a
 * single file path fed to one that takes only arrays, or a list placed inside a longer string
 * (render refuses it) would fail only at run time, after the upstream stages ran.
 */
function shapeProblems(stages: StageSpec[], doc: SourceDoc): Diagnostic[] {
  const byId = new Map(stages.map((s) => [s.id, s]));
  const problems: Diagnostic[] = [];
  for (const stage of stages) {
    const skillId = stage.skill.manifest.id;
    for (const [name, inp] of Object.entries(stage.inputs)) {
      if (inp.literal) continue;
      const schema = stage.skill.manifest.inputs[name];
      try {
        mapTemplates(inp.value, inp.path, (t, path) => {
          const whole = t.parts.length === 1 && path.length === inp.path.length;
          for (const part of t.parts) {
            if (typeof part === "string") continue;
            const r = memberChain(part.expr);
            const source = r && byId.get(r.root);
            if (!r || !source || r.path.length === 0 || stage.foreach.some((a) => a.name === r.root))
              continue;
            const ref = `\${${part.source.trim()}}`;
            const count = source.foreach.reduce((n, a) => n * a.values.length, 1);
            const list = source.foreach.length > 0;
            const fans = `stage '${source.id}' fans out (foreach), so ${ref} is a list of ${count} value${count === 1 ? "" : "s"}`;
            const at = { offset: r.at };
            if (!whole) {
              if (list)
                problems.push(
                  doc.diagnostic(
                    path,
                    `${fans}, which cannot be placed inside a string (input '${name}' of skill ${skillId})`,
                    `the whole value "\${...}" fed to an input that takes a list, or one instance indexed, e.g. \${${part.source.trim()}[0]}`,
                    at,
                  ),
                );
              continue;
            }
            const types = schemaTypes(schema);
            if (!types) continue;
            const takesList = types.includes("array");
            const onlyList = types.every((x) => x === "array" || x === "null");
            if (list && !takesList)
              problems.push(
                doc.diagnostic(
                  path,
                  `${fans}, while input '${name}' of skill ${skillId} expects ${typeWords(types)}`,
                  `one instance indexed (e.g. \${${part.source.trim()}[0]}) or an input that takes a list`,
                  at,
                ),
              );
            // Only a declared output file is surely one value: a result field may itself be a list.
            else if (
              !list &&
              onlyList &&
              r.path.length === 1 &&
              r.path[0]! in (source.skill.manifest.outputs.files ?? {})
            )
              problems.push(
                doc.diagnostic(
                  path,
                  `${ref} is a single path (stage '${source.id}' does not fan out), while input '${name}' of skill ${skillId} expects a list`,
                  `a list, e.g. ["${ref}"], or a stage with a foreach`,
                  at,
                ),
              );
          }
          return null;
        });
      } catch {
        // Parse errors are reported where the references are checked.
      }
    }
  }
  return problems;
}

/** The JSON types an input schema names, or null when it names none (it may take anything). */
function schemaTypes(schema: unknown): string[] | null {
  if (schema === null || typeof schema !== "object") return null;
  const { type } = schema as { type?: unknown };
  if (typeof type === "string") return [type];
  if (Array.isArray(type) && type.length > 0 && type.every((x) => typeof x === "string")) return type;
  return null;
}

function typeWords(types: string[]): string {
  const word = (t: string) => (/^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`);
  return types.length === 1 ? word(types[0] as string) : `one of ${types.join(", ")}`;
}

interface RefContext {
  stageIds: string[];
  vars: Set<string>;
  skills: Map<string, Skill>;
  raw: RawManifest;
  params: Map<string, Located>;
  profileValues: Record<string, Value>;
}

function checkReference(r: Reference, c: RefContext): { message: string; expected?: string } | null {
  if (r.root === "params") {
    const name = r.path[0];
    if (name === undefined) return null;
    return c.params.has(name) ? null : { message: `unknown param '${name}'`, expected: knownList(c.params) };
  }
  if (r.root === "env")
    return r.path[0] === undefined ? { message: "env needs a variable name", expected: "${env.NAME}" } : null;
  if (r.root === "profile") {
    const key = r.path[0];
    if (key === undefined || key in c.profileValues) return null;
    return {
      message: `no profile defines '${key}'`,
      expected: Object.keys(c.profileValues).length
        ? `one of: ${Object.keys(c.profileValues).join(", ")}`
        : "a key one of this manifest's profiles sets (none sets any)",
    };
  }
  if (c.vars.has(r.root)) return null;
  if (c.stageIds.includes(r.root)) {
    const output = r.path[0];
    if (output === undefined) return null;
    const stage = c.raw.stages[r.root] as RawStage;
    const skill = c.skills.get(stage.skill);
    if (!skill) return null; // reported at that stage
    const outputs = [...new Set([...Object.keys(skill.manifest.outputs.files ?? {}), ...skill.resultFields])];
    if (outputs.includes(output) || (outputs.length === 0 && skill.resultFields.length === 0)) return null;
    return {
      message: `stage '${r.root}' (skill ${skill.manifest.id}) has no output '${output}'`,
      expected: `one of: ${outputs.join(", ")}`,
    };
  }
  return {
    message: `unknown name '${r.root}'`,
    expected: `params.*, env.*, profile.*, a stage id (${c.stageIds.join(", ")})${c.vars.size ? ` or a foreach variable (${[...c.vars].join(", ")})` : ""}`,
  };
}

function knownList(params: Map<string, Located>): string {
  return `one of: ${[...params.keys()].join(", ") || "(no params)"}`;
}

function applySet(assignment: string, params: Map<string, Located>): void {
  const eq = assignment.indexOf("=");
  if (eq <= 0) throw new UsageError(`--set ${assignment}: expected KEY=VALUE`);
  const key = assignment.slice(0, eq).replace(/^params\./, "");
  if (!params.has(key))
    throw new UsageError(`--set ${assignment}: no param '${key}'; expected ${knownList(params)}`);
  let value: unknown;
  try {
    value = parseYamlValue(assignment.slice(eq + 1));
  } catch {
    value = assignment.slice(eq + 1);
  }
  params.set(key, { value: value ?? "", path: [], literal: true });
}

/** Params are resolved on first use, so an unused param may name an unset variable. */
function lazyParams(
  sources: Map<string, Located>,
  doc: SourceDoc,
  env: Record<string, string | undefined>,
  profile: Record<string, Value>,
): Record<string, Value> {
  const out: Record<string, Value> = {};
  const cache = new Map<string, Value>();
  const busy = new Set<string>();
  for (const [name, src] of sources) {
    Object.defineProperty(out, name, {
      enumerable: true,
      get(): Value {
        const hit = cache.get(name);
        if (hit !== undefined) return hit;
        if (busy.has(name))
          throw new ManifestError([
            doc.diagnostic(src.path, `param '${name}' refers to itself`, "params without cycles"),
          ]);
        busy.add(name);
        try {
          const scope: Scope = (root) =>
            root === "params"
              ? out
              : root === "env"
                ? envObject(env)
                : root === "profile"
                  ? profile
                  : undefined;
          const v = src.literal ? (src.value as Value) : resolveAt(src, doc, scope);
          cache.set(name, v);
          return v;
        } finally {
          busy.delete(name);
        }
      },
    });
  }
  return out;
}

/** The params that resolve, as plain values (for the run record). */
export function materialize(params: Record<string, Value>): Record<string, Value> {
  const out: Record<string, Value> = {};
  for (const k of Object.keys(params)) {
    try {
      out[k] = params[k] as Value;
    } catch {
      // An unresolvable param that no stage uses stays unresolved; it cannot affect the run.
    }
  }
  return out;
}

function envObject(env: Record<string, string | undefined>): Record<string, Value> {
  return new Proxy({} as Record<string, Value>, {
    get: (_t, key) => (typeof key === "string" ? env[key] : undefined),
    has: (_t, key) => typeof key === "string" && env[key] !== undefined,
    ownKeys: () => Object.keys(env).filter((k) => env[k] !== undefined),
    getOwnPropertyDescriptor: (_t, key) =>
      typeof key === "string" && env[key] !== undefined
        ? { value: env[key], enumerable: true, configurable: true }
        : undefined,
  });
}

/** Resolves a manifest value whose templates need only the given scope; errors carry positions. */
export function resolveAt(src: Located, doc: SourceDoc, scope: Scope): Value {
  let failure: Diagnostic | null = null;
  let value: Value;
  try {
    value = mapTemplates(src.value, src.path, (t, path, text) => {
      try {
        return render(t, scope);
      } catch (err) {
        if (!(err instanceof ExprError)) throw err;
        const unset = unsetEnv(err, text);
        failure ??= unset
          ? doc.diagnostic(path, `environment variable ${unset} is not set`, envHint(unset, path), {
              offset: err.offset,
            })
          : doc.diagnostic(path, err.message, err.expected, { offset: err.offset });
        return null;
      }
    });
  } catch (err) {
    if (!(err instanceof PathedExprError)) throw err;
    throw new ManifestError([
      doc.diagnostic(err.path, err.message, err.cause.expected, { offset: err.cause.offset }),
    ]);
  }
  if (failure) throw new ManifestError([failure]);
  return value;
}

/** The variable a `${env.NAME}` template found unset, if that is what failed. */
function unsetEnv(err: ExprError, text: string): string | null {
  const m = /no field '([^']+)'/.exec(err.message);
  return m && /\$\{\s*env\./.test(text) ? (m[1] as string) : null;
}

// Listing the environment's names, as an unknown field's error would, helps no one here.
function envHint(name: string, path: readonly (string | number)[]): string {
  const param = path[0] === "params" && typeof path[1] === "string" ? `, or --set ${path[1]}=VALUE` : "";
  return `${name} set in the environment${param}`;
}

function resolveValue(v: unknown, scope: Scope): Value {
  return mapTemplates(v, [], (t) => render(t, scope));
}

/** An expression error inside a nested value, with the path of the string it is in. */
export class PathedExprError extends Error {
  constructor(
    readonly path: Path,
    override readonly cause: ExprError,
  ) {
    super(cause.message);
  }
}

/** Copies a YAML value, replacing every templated string by `f`'s result. */
export function mapTemplates(
  v: unknown,
  path: Path,
  f: (t: Template, path: Path, text: string) => Value,
): Value {
  if (typeof v === "string") {
    if (!hasTemplate(v)) return v;
    let t: Template;
    try {
      t = parseTemplate(v);
    } catch (err) {
      throw err instanceof ExprError ? new PathedExprError(path, err) : err;
    }
    return f(t, path, v);
  }
  if (Array.isArray(v)) return v.map((x, i) => mapTemplates(x, [...path, i], f));
  if (v !== null && typeof v === "object") {
    const out: Record<string, Value> = {};
    for (const [k, x] of Object.entries(v)) out[k] = mapTemplates(x, [...path, k], f);
    return out;
  }
  return (v ?? null) as Value;
}

function forEachTemplate(
  v: unknown,
  path: Path,
  f: (t: Template, path: Path) => void,
  onError: (path: Path, err: unknown) => void,
): void {
  try {
    mapTemplates(v, path, (t, p) => {
      f(t, p);
      return null;
    });
  } catch (err) {
    onError(path, err);
  }
}

export function parseDuration(v: number | string): number {
  if (typeof v === "number") return v * 1000;
  const m = /^([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)$/.exec(v);
  if (!m) throw new UsageError(`invalid duration '${v}'; expected e.g. 90s, 30m, 2h`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as "ms" | "s" | "m" | "h"];
  return Number(m[1]) * unit;
}
