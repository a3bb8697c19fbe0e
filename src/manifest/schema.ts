// JSON Schema validation (ajv) and the translation of its errors into located, readable diagnostics.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";
import { SCHEMAS_DIR } from "../paths.js";
import type { Diagnostic } from "./diagnostics.js";
import type { Path, SourceDoc } from "./source.js";

// ajv-formats is CommonJS; its default export arrives wrapped under ESM.
const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (
  a: Ajv,
) => Ajv;

let shared: Ajv | undefined;

/** One Ajv for the process: the project's schemas are registered once and compiled lazily. */
export function ajv(): Ajv {
  if (shared) return shared;
  const instance = new Ajv({ allErrors: true, strict: false, useDefaults: false, verbose: true });
  addFormats(instance);
  // `path` marks inputs that name files or folders; any string is a valid path here.
  instance.addFormat("path", true);
  instance.addKeyword({ keyword: "optional", schemaType: "boolean" });
  for (const file of ["pipeline.schema.json", "skill.schema.json", "evidence/output.schema.json"]) {
    instance.addSchema(JSON.parse(readFileSync(join(SCHEMAS_DIR, file), "utf8")) as object);
  }
  shared = instance;
  return instance;
}

export function schemaValidator(id: string): ValidateFunction {
  const v = ajv().getSchema(id);
  if (!v) throw new Error(`schema ${id} is not registered`);
  return v;
}

/** An ajv error's message, with the allowed values when it is an enum's (for one-line errors). */
export function errorText(e: ErrorObject): string {
  const message = e.message ?? "is invalid";
  if (e.keyword !== "enum") return message;
  const allowed = (e.params as { allowedValues: unknown[] }).allowedValues;
  return `${message}: ${allowed.map((v) => JSON.stringify(v)).join(", ")}`;
}

export function pointerToPath(pointer: string): string[] {
  if (!pointer) return [];
  return pointer
    .slice(1)
    .split("/")
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
}

export interface Finding {
  path: Path;
  key: boolean;
  message: string;
  expected?: string;
}

/** Turns ajv errors into one finding per place, the most specific first. */
export function findings(errors: ErrorObject[] | null | undefined, base: Path = []): Finding[] {
  const out: Finding[] = [];
  const seen = new Set<string>();
  // oneOf/anyOf report every branch's errors: keep the summary, drop the branches' noise.
  const branchy = new Set(
    (errors ?? []).filter((e) => e.keyword === "oneOf" || e.keyword === "anyOf").map((e) => e.instancePath),
  );
  for (const e of errors ?? []) {
    if (branchy.has(e.instancePath) && e.keyword !== "oneOf" && e.keyword !== "anyOf") continue;
    const path = [...base, ...pointerToPath(e.instancePath)];
    const f = finding(e, path);
    const id = `${f.path.join("/")}|${f.key}|${f.message}`;
    if (!seen.has(id)) {
      seen.add(id);
      out.push(f);
    }
  }
  return out;
}

function finding(e: ErrorObject, path: Path): Finding {
  const where = path.length ? `'${path.join(".")}'` : "the document";
  const p = e.params as Record<string, unknown>;
  // A key that breaks propertyNames: point at the key itself.
  if (e.propertyName !== undefined) {
    const { propertyName, ...rest } = e;
    return finding({ ...rest, keyword: "propertyNames", params: { propertyName } }, path);
  }
  const schema = e.parentSchema as { properties?: Record<string, unknown>; description?: string } | undefined;
  switch (e.keyword) {
    case "additionalProperties": {
      const known = Object.keys(schema?.properties ?? {});
      return {
        path: [...path, String(p.additionalProperty)],
        key: true,
        message: `unknown field '${String(p.additionalProperty)}' in ${where}`,
        expected: known.length ? `one of: ${known.join(", ")}` : "no other fields",
      };
    }
    case "required":
      return {
        path,
        key: path.length > 0,
        message: `missing field '${String(p.missingProperty)}' in ${where}`,
        expected: `a '${String(p.missingProperty)}' field`,
      };
    case "propertyNames":
      return {
        path: [...path, String(p.propertyName)],
        key: true,
        message: `invalid name '${String(p.propertyName)}' in ${where}`,
        expected: "lower-case letters, digits and _ , starting with a letter or _",
      };
    case "type":
      return { path, key: false, message: `wrong type for ${where}`, expected: article(String(p.type)) };
    case "enum":
      return {
        path,
        key: false,
        message: `invalid value for ${where}`,
        expected: `one of: ${(p.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")}`,
      };
    case "const":
      return {
        path,
        key: false,
        message: `invalid value for ${where}`,
        expected: JSON.stringify(p.allowedValue),
      };
    case "pattern":
      return {
        path,
        key: false,
        message: `invalid value for ${where}`,
        expected: schema?.description ?? `text matching ${String(p.pattern)}`,
      };
    case "minItems":
    case "maxItems":
    case "minLength":
    case "maxLength":
    case "minProperties": {
      // Ajv words these "must NOT have fewer than 1 properties"; say it in the manifest's terms.
      const limit = Number(p.limit);
      const unit = e.keyword.endsWith("Items")
        ? "item"
        : e.keyword.endsWith("Length")
          ? "character"
          : "entry";
      const count = `${limit} ${limit === 1 ? unit : unit === "entry" ? "entries" : `${unit}s`}`;
      const atLeast = e.keyword.startsWith("min");
      return {
        path,
        key: false,
        message:
          atLeast && limit === 1 ? `${where} is empty` : `${where} has too ${atLeast ? "few" : "many"}`,
        expected: `${atLeast ? "at least" : "at most"} ${count}`,
      };
    }
    case "minimum":
    case "maximum":
    case "exclusiveMinimum":
    case "exclusiveMaximum":
      return {
        path,
        key: false,
        message: `${where} ${e.message ?? "is out of range"}`,
        expected: `a value that ${e.message?.replace(/^must (be )?/, "is ") ?? "is in range"}`,
      };
    case "oneOf":
    case "anyOf":
      return {
        path,
        key: false,
        message: `invalid value for ${where}`,
        expected: schema?.description ?? "a value matching one of the allowed forms",
      };
    default:
      return { path, key: false, message: `${where} ${e.message ?? "is invalid"}` };
  }
}

function article(types: string): string {
  return types
    .split(",")
    .map((t) =>
      t === "integer" ? "an integer" : t === "array" ? "a list" : t === "object" ? "a mapping" : `a ${t}`,
    )
    .join(" or ");
}

export function toDiagnostics(doc: SourceDoc, list: Finding[]): Diagnostic[] {
  return list.map((f) => doc.diagnostic(f.path, f.message, f.expected, { key: f.key }));
}
