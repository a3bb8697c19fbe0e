// Finds skills (skills/*/skill_manifest.yaml) and checks each manifest before anything runs.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { type Diagnostic, ManifestError } from "../manifest/diagnostics.js";
import { ajv, findings, schemaValidator, toDiagnostics } from "../manifest/schema.js";
import { readSource } from "../manifest/source.js";
import { PROJECT_ROOT } from "../paths.js";
import type { Skill, SkillManifest } from "./types.js";

export const MANIFEST_FILE = "skill_manifest.yaml";

/** The project's own skills, then any extra folders (PIPELINE_SKILLS_PATH, --skills-dir). */
export function skillDirs(extra: string[] = [], env: NodeJS.ProcessEnv = process.env): string[] {
  const fromEnv = (env.PIPELINE_SKILLS_PATH ?? "").split(":").filter(Boolean);
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
  // Checked against the JSON Schema meta-schema only: compiling every input of every skill at
  // start-up would cost more than the commands that use one skill.
  for (const [name, schema] of Object.entries(manifest.inputs)) {
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
