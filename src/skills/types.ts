import type { Value } from "../manifest/expr.js";

export type GpuPolicy = "required" | "preferred" | "none";
export type Mode = "full" | "smoke" | "sanity";

export interface Resources {
  gpu?: GpuPolicy;
  cpus?: number;
  memory?: string;
  gpus?: number;
}

/** An input's JSON Schema, with the two keys the engine reads itself. */
export interface InputSchema {
  [key: string]: unknown;
  optional?: boolean;
  default?: Value;
  format?: string;
  description?: string;
}

export interface SkillManifest {
  id: string;
  version: string;
  description: string;
  entrypoint: { interpreter: "node" | "python"; script: string; code?: string[] };
  inputs: Record<string, InputSchema>;
  outputs: { result_json: { schema: string }; files?: Record<string, string> };
  resources?: Resources;
  requires?: { python_modules?: string[] };
  /** Environment variables whose values change what the stage produces: part of the cache key. */
  cache_env?: string[];
  /** false: the result depends on the run the stage is in, so it is never reused. */
  cache?: boolean;
  /** `run`: the stage audits the whole run and runs after every other stage. */
  scope?: "stage" | "run";
  modes?: Partial<
    Record<"smoke" | "sanity", { fixture?: string; reference?: string; with?: Record<string, Value> }>
  >;
}

export interface Skill {
  manifest: SkillManifest;
  /** Absolute folder of the skill. */
  dir: string;
  manifestPath: string;
  scriptPath: string;
  resultSchemaPath: string;
  /** Top-level payload fields the result schema declares (for checking `${stage.field}`). */
  resultFields: string[];
}

export function isRequiredInput(schema: InputSchema): boolean {
  return schema.optional !== true && schema.default === undefined;
}

export function isPathInput(schema: InputSchema): boolean {
  return schema.format === "path";
}
