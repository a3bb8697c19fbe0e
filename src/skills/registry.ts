// Finds skills (skills/*/skill_manifest.yaml) and checks each manifest before anything runs.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { type Diagnostic, ManifestError, UsageError } from "../manifest/diagnostics.js";
import { ajv, findings, schemaValidator, toDiagnostics } from "../manifest/schema.js";
import { readSource } from "../manifest/source.js";
import { PROJECT_ROOT } from "../paths.js";
import type { Skill, SkillManifest } from "./types.js";

export const MANIFEST_FILE = "skill_manifest.yaml";

/**
 * The project's own skills, then any extra folders (PIPELINE_SKILLS_PATH, --skills-dir). A folder
 * someone named that is not there is a usage error: skipping it would run without its skills and
 * report them as unknown, or not at all.
 */
export function skillDirs(extra: string[] = [], env: NodeJS.ProcessEnv = process.env): string[] {
  const fromEnv = (env.PIPELINE_SKILLS_PATH ?? "").split(":").filter(Boolean);
  for (const [dirs, origin] of [
    [fromEnv, "PIPELINE_SKILLS_PATH"],
    [extra, "--skills-dir"],
  ] as const)
    for (const d of dirs) {
      let problem: string | null = "no such folder";
      try {
        problem = statSync(d).isDirectory() ? null : "not a folder";
      } catch {}
      if (problem) throw new UsageError(`${origin} ${resolve(d)}: ${problem} (expected a folder of skills)`);
    }
  return [...new Set([join(PROJECT_ROOT, "skills"), ...fromEnv, ...extra].map((d) => resolve(d)))];
}

export function loadSkills(dirs: string[]): Map<string, Skill> {
  const skills = new Map<string, Skill>();
  const problems: Diagnostic[] = [];
  for (const root of dirs) {
    if (!existsSync(root)) continue;
    for (const entry of readdirSync(root, { withFileTypes: true }).sort((a, b) =>
      a.name.localeCompare(b.name),
    )) {
      const manifestPath = join(root, entry.name, MANIFEST_FILE);
      if (!entry.isDirectory() || !existsSync(manifestPath)) continue;
      try {
        const skill = loadSkill(manifestPath);
        const other = skills.get(skill.manifest.id);
        if (other) {
          problems.push({
            file: manifestPath,
            line: 1,
            col: 1,
            message: `skill id '${skill.manifest.id}' is also defined by ${other.manifestPath}`,
            expected: "one skill per id",
          });
        } else skills.set(skill.manifest.id, skill);
      } catch (err) {
        if (err instanceof ManifestError) problems.push(...err.diagnostics);
        else throw err;
      }
    }
  }
  if (problems.length) throw new ManifestError(problems);
  return skills;
}

export function loadSkill(manifestPath: string): Skill {
  const doc = readSource(manifestPath);
  const validate = schemaValidator("https://medpipe.dev/schemas/skill.schema.json");
  if (!validate(doc.value)) throw new ManifestError(toDiagnostics(doc, findings(validate.errors)));
  const manifest = doc.value as SkillManifest;
  const dir = resolve(manifestPath, "..");
  const problems: Diagnostic[] = [];
  const scriptPath = join(dir, manifest.entrypoint.script);
  if (!existsSync(scriptPath))
    problems.push(
      doc.diagnostic(
        ["entrypoint", "script"],
        `script not found: ${scriptPath}`,
        "a file in the skill folder",
      ),
    );
  // Checked against a keyword list and the JSON Schema meta-schema only: compiling every input of
  // every skill at start-up would cost more than the commands that use one skill.
  for (const [name, schema] of Object.entries(manifest.inputs)) {
    const stray = unknownKeyword(schema, ["inputs", name]);
    if (stray) {
      problems.push(
        doc.diagnostic(
          stray,
          `input '${name}': unknown schema keyword '${String(stray[stray.length - 1])}' (a description left unquoted splits into keys at ': ' or ', '; quote it)`,
          "JSON Schema keywords, or optional",
          { key: true },
        ),
      );
      continue;
    }
    if (!ajv().validateSchema(schema)) {
      const e = ajv().errors?.[0];
      problems.push(
        doc.diagnostic(
          ["inputs", name],
          `input '${name}' is not a valid JSON Schema: ${e ? `${e.instancePath || "/"} ${e.message}` : "invalid"}`,
        ),
      );
    }
  }

  const resultSchemaPath = resolveSchemaPath(dir, manifest.outputs.result_json.schema);
  let resultFields: string[] = [];
  if (!resultSchemaPath) {
    problems.push(
      doc.diagnostic(
        ["outputs", "result_json", "schema"],
        `result schema not found: ${manifest.outputs.result_json.schema}`,
        "a JSON Schema file, relative to the skill folder or the project root",
      ),
    );
  } else {
    try {
      const schema = JSON.parse(readFileSync(resultSchemaPath, "utf8")) as {
        properties?: Record<string, unknown>;
      };
      resultFields = Object.keys(schema.properties ?? {});
    } catch (err) {
      problems.push(
        doc.diagnostic(
          ["outputs", "result_json", "schema"],
          `result schema is not JSON: ${(err as Error).message}`,
        ),
      );
    }
  }
  if (problems.length) throw new ManifestError(problems);
  return {
    manifest,
    dir,
    manifestPath,
    scriptPath,
    resultSchemaPath: resultSchemaPath as string,
    resultFields,
  };
}

function resolveSchemaPath(skillDir: string, ref: string): string | null {
  for (const base of [skillDir, PROJECT_ROOT]) {
    const p = resolve(base, ref);
    if (existsSync(p)) return p;
  }
  return null;
}

// The draft-07 keywords, plus the manifest's own `optional`. The meta-schema lets unknown keys
// through, and ajv runs non-strict, so a typo or a YAML-split description would otherwise slip
// into `skills show`, --json and MCP as part of the schema.
const SCHEMA_KEYWORDS = new Set([
  "type",
  "description",
  "default",
  "enum",
  "const",
  "format",
  "optional",
  "title",
  "examples",
  "minimum",
  "maximum",
  "exclusiveMinimum",
  "exclusiveMaximum",
  "multipleOf",
  "minLength",
  "maxLength",
  "pattern",
  "contentEncoding",
  "contentMediaType",
  "items",
  "additionalItems",
  "minItems",
  "maxItems",
  "uniqueItems",
  "contains",
  "properties",
  "patternProperties",
  "additionalProperties",
  "required",
  "propertyNames",
  "minProperties",
  "maxProperties",
  "dependencies",
  "anyOf",
  "oneOf",
  "allOf",
  "not",
  "if",
  "then",
  "else",
  "definitions",
  "$ref",
  "$id",
  "$schema",
  "$comment",
  "readOnly",
  "writeOnly",
]);
const SCHEMA_MAPS = new Set(["properties", "patternProperties", "definitions"]);
const SCHEMA_LISTS = new Set(["anyOf", "oneOf", "allOf"]);
const SUBSCHEMAS = new Set([
  "items",
  "additionalItems",
  "contains",
  "additionalProperties",
  "propertyNames",
  "not",
  "if",
  "then",
  "else",
]);

/** The path of the first key in `schema` (or its subschemas) that is no schema keyword, or null. */
function unknownKeyword(schema: unknown, path: (string | number)[]): (string | number)[] | null {
  if (schema === null || typeof schema !== "object" || Array.isArray(schema)) return null;
  for (const [key, value] of Object.entries(schema)) {
    const here = [...path, key];
    if (!SCHEMA_KEYWORDS.has(key)) return here;
    if (SCHEMA_MAPS.has(key) && value && typeof value === "object") {
      for (const [k, sub] of Object.entries(value)) {
        const found = unknownKeyword(sub, [...here, k]);
        if (found) return found;
      }
    } else if (SCHEMA_LISTS.has(key) || (SUBSCHEMAS.has(key) && Array.isArray(value))) {
      for (const [i, sub] of (Array.isArray(value) ? value : []).entries()) {
        const found = unknownKeyword(sub, [...here, i]);
        if (found) return found;
      }
    } else if (SUBSCHEMAS.has(key)) {
      const found = unknownKeyword(value, here);
      if (found) return found;
    }
  }
  return null;
}
