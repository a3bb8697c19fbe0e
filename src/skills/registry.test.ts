// Skill manifests are checked when loaded: every shipped one passes, a garbled input schema is refused.
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { TEST_SKILLS } from "../../tests/support/cli.js";
import { ManifestError } from "../manifest/diagnostics.js";
import { loadSkill, loadSkills, skillDirs } from "./registry.js";

describe("skill manifests", () => {
  it("every shipped skill and test skill loads, with plain-keyword input schemas", () => {
    const skills = loadSkills(skillDirs([TEST_SKILLS], {}));
    expect(skills.has("infer")).toBe(true);
    expect(skills.has("emit")).toBe(true);
    // The unquoted description once split here into a key of its own.
    expect(skills.get("infer")?.manifest.inputs.save_probabilities).toEqual({
      type: "boolean",
      default: false,
      description:
        "also write per-class softmax probabilities in native space (float32, class axis last) to probabilities/",
    });
  });

  it("refuses an unquoted description that YAML split into a key, naming the file, line and input", () => {
    const dir = mkdtempSync(join(tmpdir(), "skill-garble-"));
    cpSync(join(TEST_SKILLS, "emit"), join(dir, "emit"), { recursive: true });
    const file = join(dir, "emit", "skill_manifest.yaml");
    const text = readFileSync(file, "utf8").replace(
      "{ description: any JSON value to echo }",
      "{ description: any value (JSON, say) to echo }",
    );
    writeFileSync(file, text);
    let err: unknown;
    try {
      loadSkill(file);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ManifestError);
    const message = (err as ManifestError).message;
    expect(message.split("\n")).toHaveLength(1);
    // Line 6: "  value: { " is 11 columns, "description: " 13, "any value (JSON, " 17: the key starts at 42.
    expect(message).toBe(
      `${file}:6:42: input 'value': unknown schema keyword 'say) to echo' (a description left unquoted splits into keys at ': ' or ', '; quote it)`,
    );
  });

  it("refuses an unknown keyword nested in items", () => {
    const dir = mkdtempSync(join(tmpdir(), "skill-garble-"));
    cpSync(join(TEST_SKILLS, "emit"), join(dir, "emit"), { recursive: true });
    const file = join(dir, "emit", "skill_manifest.yaml");
    const text = readFileSync(file, "utf8").replace(
      "  sleep_ms:",
      "  names: { type: array, items: { type: string, minlength: 1 } }\n  sleep_ms:",
    );
    writeFileSync(file, text);
    expect(() => loadSkill(file)).toThrow(/input 'names': unknown schema keyword 'minlength'/);
  });
});
