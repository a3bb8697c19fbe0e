// Every skill has a SKILL.md in the Agent Skills format, and it agrees with its manifest.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { ROOT } from "./support/cli.js";

const skillsDir = join(ROOT, "skills");
const ids = readdirSync(skillsDir).filter((d) => !d.startsWith("."));
const SECTIONS = [
  "Purpose",
  "Inputs",
  "Outputs",
  "How to run",
  "Data contract",
  "Reading the results",
  "Limitations",
  "Troubleshooting",
];

describe("SKILL.md", () => {
  it.each(ids)("%s follows the format and matches its manifest", (id) => {
    const text = readFileSync(join(skillsDir, id, "SKILL.md"), "utf8");
    const m = /^---\n([\s\S]*?)\n---\n([\s\S]*)$/.exec(text);
    expect(m, "frontmatter between --- lines at the top").not.toBeNull();
    const front = parse(m?.[1] ?? "") as { name: string; description: string };
    const body = m?.[2] ?? "";
    expect(Object.keys(front).sort()).toEqual(["description", "name"]);
    expect(front.name).toMatch(/^[a-z0-9]+(-[a-z0-9]+)*$/);
    expect(front.name.length).toBeLessThanOrEqual(64);
    expect(front.description.length).toBeGreaterThan(20);
    expect(front.description.length).toBeLessThanOrEqual(1024);
    expect(front.description).not.toMatch(/[<>]/);
    for (const s of SECTIONS) expect(body, `section ${s}`).toMatch(new RegExp(`^## ${s}$`, "m"));
    const manifest = parse(readFileSync(join(skillsDir, id, "skill_manifest.yaml"), "utf8")) as {
      id: string;
      inputs: Record<string, unknown>;
      outputs: { files?: Record<string, string> };
    };
    expect(front.name).toBe(manifest.id);
    const inputs = body.slice(body.indexOf("## Inputs"), body.indexOf("## Outputs"));
    for (const name of Object.keys(manifest.inputs))
      expect(inputs, `input ${name} documented`).toContain(`\`${name}\``);
    const outputs = body.slice(body.indexOf("## Outputs"), body.indexOf("## How to run"));
    for (const name of Object.keys(manifest.outputs.files ?? {}))
      expect(outputs, `output ${name} documented`).toContain(`\${stage.${name}}`);
  });
});
