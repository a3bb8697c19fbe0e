// A reference result (eval/references/*.yaml), read and validated against its schema. Shared by
// the verifier (regression.reference: ranges) and the engine's sanity check (configuration).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { Ajv } from "ajv";
import { parse } from "yaml";
import { SCHEMAS_DIR } from "../paths.js";

export interface ReferenceMetric {
  centre: number;
  tolerance: number;
  source_std?: number;
  /** `SKILL:/json/pointer` into that skill's output.json; absent: reported, not judged. */
  measured?: string;
}

export interface Reference {
  id: string;
  source: { document: string; result: string };
  configuration: Record<string, unknown>;
  metrics: Record<string, ReferenceMetric>;
  reasoning: string;
}

let validate: ReturnType<Ajv["compile"]> | undefined;

/** The reference at `path`, or an Error naming the file and what is wrong with it. */
export function readReference(path: string): Reference | Error {
  let doc: unknown;
  try {
    doc = parse(readFileSync(path, "utf8"));
  } catch (err) {
    return new Error(
      `${path}: ${(err as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (err as Error).message}`,
    );
  }
  validate ??= new Ajv({ allErrors: true }).compile(
    JSON.parse(readFileSync(join(SCHEMAS_DIR, "reference.schema.json"), "utf8")) as object,
  );
  if (!validate(doc)) {
    const e = validate.errors?.[0];
    return new Error(
      `${path}: not a reference (schemas/reference.schema.json): ${e?.instancePath || "/"} ${e?.message ?? ""}`.trim(),
    );
  }
  return doc as Reference;
}

/** The value at a JSON pointer (`/a/0/b`), or undefined. */
export function atPointer(doc: unknown, pointer: string): unknown {
  let v: unknown = doc;
  for (const raw of pointer.split("/").slice(1)) {
    const k = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (v === null || typeof v !== "object") return undefined;
    v = (v as Record<string, unknown>)[k];
  }
  return v;
}
