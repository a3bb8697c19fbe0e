// What a Node skill script calls: parse and validate its inputs against its manifest, run the
// body, then write output.json (envelope + payload) last and atomically. Errors end the process
// with one line on stderr and a non-zero exit code; the engine reads nothing else as a result.
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { writeJsonAtomic } from "../evidence/atomic.js";
import { Hasher, listFiles } from "../evidence/hash.js";
import type { Value } from "../manifest/expr.js";
import { ajv, errorText } from "../manifest/schema.js";
import { loadSkill } from "../skills/registry.js";
import { isPathInput, isRequiredInput, type Mode } from "../skills/types.js";
import { parseArgs } from "./args.js";
import { nodeEnvironment } from "./environment.js";

export interface SkillContext {
  inputs: Record<string, Value>;
  outputDir: string;
  mode: Mode;
  stage: string;
  /** One NDJSON progress event on stdout, e.g. progress({ event: "epoch", epoch: 3, of: 20 }). */
  progress(event: Record<string, Value>): void;
}

export interface SkillResult {
  payload: Record<string, unknown>;
  /** Roles of artifacts by relative path; other files get the role "artifact". */
  roles?: Record<string, string>;
  /** Runtime facts only the body knows (a GPU child's peak memory). */
  runtime?: { peak_gpu_mb?: number | null };
}

export class SkillInputError extends Error {}

export async function runSkill(
  manifestPath: string,
  body: (ctx: SkillContext) => Promise<SkillResult>,
): Promise<void> {
  const started = performance.now();
  try {
    const skill = loadSkill(manifestPath);
    const m = skill.manifest;
    let parsed: ReturnType<typeof parseArgs>;
    try {
      parsed = parseArgs(process.argv.slice(2), m.inputs);
    } catch (err) {
      throw new SkillInputError((err as Error).message);
    }
    const inputs: Record<string, Value> = {};
    for (const [name, schema] of Object.entries(m.inputs))
      if (schema.default !== undefined) inputs[name] = schema.default;
    Object.assign(inputs, parsed.inputs);
    const validate = ajv().compile({
      type: "object",
      properties: m.inputs,
      required: Object.entries(m.inputs)
        .filter(([, s]) => isRequiredInput(s))
        .map(([n]) => n),
    });
    if (!validate(inputs)) {
      const e = validate.errors?.[0];
      const where = e?.instancePath ? `--${e.instancePath.slice(1).split("/")[0]}` : m.id;
      throw new SkillInputError(`${where}: ${e ? errorText(e) : "invalid input"}`);
    }
    const outputDir = resolve(parsed.outputDir);
    mkdirSync(outputDir, { recursive: true });
    const mode = (process.env.MEDPIPE_MODE as Mode | undefined) ?? "full";
    const stage = process.env.MEDPIPE_STAGE ?? "";
    const ctx: SkillContext = {
      inputs,
      outputDir,
      mode,
      stage,
      progress: (event) => process.stdout.write(`${JSON.stringify(event)}\n`),
    };
    const result = await body(ctx);

    // Seeded with the engine's digests (checked against each file's stat before use).
    const hasher = Hasher.load(process.env.MEDPIPE_FILE_HASHES);
    const hashes: Record<string, string> = {};
    for (const [name, schema] of Object.entries(m.inputs)) {
      const v = inputs[name];
      if (isPathInput(schema) && typeof v === "string") hashes[name] = await hasher.path(resolve(v));
    }
    const artifacts = [];
    for (const rel of listFiles(
      outputDir,
      (r) => r === "output.json" || r === "logs" || r.endsWith(".tmp"),
    )) {
      const d = await hasher.file(join(outputDir, rel));
      artifacts.push({
        path: rel,
        role: result.roles?.[rel] ?? "artifact",
        sha256: d.sha256,
        bytes: d.bytes,
      });
    }
    writeJsonAtomic(join(outputDir, "output.json"), {
      skill: m.id,
      skill_version: m.version,
      stage,
      mode,
      status: "succeeded",
      inputs: { values: inputs, hashes },
      environment: nodeEnvironment(),
      runtime: {
        wall_s: (performance.now() - started) / 1000,
        exit_code: 0,
        oom: false,
        peak_rss_mb: process.resourceUsage().maxRSS / 1024,
        peak_gpu_mb: result.runtime?.peak_gpu_mb ?? null,
      },
      artifacts,
      ...result.payload,
    });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`error: ${message}\n`);
    if (process.env.MEDPIPE_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
    process.exit(err instanceof SkillInputError ? 2 : 1);
  }
}
