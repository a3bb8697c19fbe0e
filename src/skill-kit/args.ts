// The command line every skill script receives: --output-dir DIR --<input> VALUE ...
// Strings are passed as they are; every other value as JSON.
import type { Value } from "../manifest/expr.js";
import type { InputSchema } from "../skills/types.js";

export function toArgs(outputDir: string, inputs: Record<string, Value>): string[] {
  const args = ["--output-dir", outputDir];
  for (const [name, v] of Object.entries(inputs)) {
    if (v === null) continue;
    args.push(`--${name}`, typeof v === "string" ? v : JSON.stringify(v));
  }
  return args;
}

export interface ParsedArgs {
  outputDir: string;
  inputs: Record<string, Value>;
}

export function parseArgs(argv: string[], schemas: Record<string, InputSchema>): ParsedArgs {
  let outputDir: string | null = null;
  const inputs: Record<string, Value> = {};
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i] as string;
    if (!flag.startsWith("--")) throw new Error(`unexpected argument '${flag}'; expected --NAME VALUE pairs`);
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    i++;
    const name = flag.slice(2).replace(/-/g, "_");
    if (name === "output_dir") {
      outputDir = value;
      continue;
    }
    const schema = schemas[name];
    if (!schema)
      throw new Error(`unknown input --${name}; expected one of: ${Object.keys(schemas).join(", ")}`);
    // A repeated flag would silently keep only its last value; a list is given as one JSON value.
    if (name in inputs) throw new Error(`--${name} given twice; expected it once (a list as one JSON value)`);
    inputs[name] = schema.type === "string" ? value : parseValue(value);
  }
  if (!outputDir) throw new Error("--output-dir is required");
  return { outputDir, inputs };
}

function parseValue(text: string): Value {
  try {
    return JSON.parse(text) as Value;
  } catch {
    return text;
  }
}
