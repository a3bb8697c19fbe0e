// Whether an output.json is acceptable evidence of its stage: the envelope schema, the skill's
// result schema, and the names it gives. The engine checks it before accepting a stage; the
// verifier checks it again on the finished run.
import { readFileSync } from "node:fs";
import { relative } from "node:path";
import type { ValidateFunction } from "ajv";
import type { Value } from "../manifest/expr.js";
import { ajv, errorText, schemaValidator } from "../manifest/schema.js";
import { PROJECT_ROOT } from "../paths.js";
import type { Skill } from "../skills/types.js";

const resultValidators = new WeakMap<Skill, ValidateFunction>();

/** The envelope and the skill's own result schema; the message names the schema and its path. */
export function checkOutput(skill: Skill, stageId: string, output: Record<string, Value>): string | null {
  const envelope = schemaValidator("https://medpipe.dev/schemas/evidence/output.schema.json");
  if (!envelope(output)) return schemaMessage("schemas/evidence/output.schema.json", envelope);
  let result = resultValidators.get(skill);
  if (!result) {
    const schema = JSON.parse(readFileSync(skill.resultSchemaPath, "utf8")) as Record<string, unknown>;
    delete schema.$id;
    result = ajv().compile(schema);
    resultValidators.set(skill, result);
  }
  if (!result(output)) return schemaMessage(relative(PROJECT_ROOT, skill.resultSchemaPath), result);
  if (output.skill !== skill.manifest.id)
    return `output.json names skill '${String(output.skill)}', expected '${skill.manifest.id}'`;
  if (output.stage !== stageId)
    return `output.json names stage '${String(output.stage)}', expected '${stageId}'`;
  if (output.status !== "succeeded") return `output.json reports status '${String(output.status)}'`;
  return null;
}

function schemaMessage(file: string, v: ValidateFunction): string {
  const e = v.errors?.[0];
  if (!e) return `output.json does not match ${file}`;
  return `output.json does not match ${file}: ${e.instancePath || "/"} ${errorText(e)} (schema path ${e.schemaPath})`;
}
