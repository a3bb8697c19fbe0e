import { UsageError } from "../manifest/diagnostics.js";
import { loadSkills, skillDirs } from "../skills/registry.js";
import { isRequiredInput } from "../skills/types.js";
import { EXIT, printJson } from "./output.js";

export function listSkills(o: { skillsDir: string[]; json?: boolean }): number {
  const skills = [...loadSkills(skillDirs(o.skillsDir)).values()];
  if (o.json) {
    printJson(skills.map((s) => ({ ...s.manifest, dir: s.dir })));
    return EXIT.ok;
  }
  if (!skills.length) process.stdout.write("no skills found\n");
  const width = Math.max(0, ...skills.map((s) => s.manifest.id.length));
  for (const s of skills) {
    const m = s.manifest;
    const gpu = m.resources?.gpu && m.resources.gpu !== "none" ? ` gpu:${m.resources.gpu}` : "";
    process.stdout.write(
      `${m.id.padEnd(width)}  ${m.version.padEnd(7)} ${m.entrypoint.interpreter}${gpu}  ${m.description}\n`,
    );
  }
  return EXIT.ok;
}

export function showSkill(id: string, o: { skillsDir: string[]; json?: boolean }): number {
  const skills = loadSkills(skillDirs(o.skillsDir));
  const s = skills.get(id);
  if (!s)
    throw new UsageError(
      `unknown skill '${id}'; expected one of: ${[...skills.keys()].join(", ") || "(none)"}`,
    );
  const m = s.manifest;
  if (o.json) {
    printJson({ ...m, dir: s.dir });
    return EXIT.ok;
  }
  const lines = [
    `${m.id} ${m.version} (${m.entrypoint.interpreter} ${m.entrypoint.script})`,
    `  ${m.description}`,
    "",
    "inputs:",
  ];
  for (const [name, schema] of Object.entries(m.inputs)) {
    const { description, default: def, optional: _optional, ...rest } = schema;
    const need = isRequiredInput(schema)
      ? "required"
      : def !== undefined
        ? `default ${JSON.stringify(def)}`
        : "optional";
    lines.push(`  --${name}  ${JSON.stringify(rest)}  (${need})${description ? `  ${description}` : ""}`);
  }
  lines.push("", "outputs:", `  output.json  ${m.outputs.result_json.schema}`);
  for (const [name, rel] of Object.entries(m.outputs.files ?? {})) lines.push(`  ${name}: ${rel}`);
  if (m.resources) lines.push("", `resources: ${JSON.stringify(m.resources)}`);
  process.stdout.write(`${lines.join("\n")}\n`);
  return EXIT.ok;
}
