// Why a stage ran instead of coming from the cache: the parts of its key that changed.
import type { KeyParts } from "../evidence/evidence.js";
import type { Value } from "../manifest/expr.js";

const UPSTREAM = /^@([0-9a-f]{64})\/(.*)$/;

export function diffKeyParts(before: KeyParts, after: KeyParts): string[] {
  const out: string[] = [];
  if (before.skill !== after.skill) out.push(`skill changed: ${before.skill} → ${after.skill}`);
  if (before.mode !== after.mode) out.push(`mode changed: ${before.mode} → ${after.mode}`);
  for (const file of union(before.code, after.code)) {
    const a = before.code[file];
    const b = after.code[file];
    if (a !== b)
      out.push(`skill code ${a === undefined ? "added" : b === undefined ? "removed" : "changed"}: ${file}`);
  }
  for (const name of union(before.inputs, after.inputs)) {
    const a = before.inputs[name];
    const b = after.inputs[name];
    if (JSON.stringify(a) !== JSON.stringify(b)) out.push(describeInputChange(name, a, b));
  }
  for (const name of union(before.hashes, after.hashes)) {
    const a = before.hashes[name];
    const b = after.hashes[name];
    if (a !== b && a !== undefined && b !== undefined)
      out.push(`content of input '${name}' changed (sha256 ${a.slice(0, 12)}… → ${b.slice(0, 12)}…)`);
  }
  for (const k of union(before.environment, after.environment)) {
    if (before.environment[k] !== after.environment[k])
      out.push(
        `environment changed: ${k} ${before.environment[k] ?? "(none)"} → ${after.environment[k] ?? "(none)"}`,
      );
  }
  return out;
}

function describeInputChange(name: string, a: Value | undefined, b: Value | undefined): string {
  if (typeof a === "string" && typeof b === "string" && UPSTREAM.test(a) && UPSTREAM.test(b))
    return `input '${name}': the upstream output it reads changed (${b.replace(UPSTREAM, "$2")})`;
  const show = (v: Value | undefined): string =>
    v === undefined ? "(unset)" : JSON.stringify(v).replace(/@[0-9a-f]{64}\//g, "@…/");
  return `input '${name}' changed: ${show(a)} → ${show(b)}`;
}

function union(a: object, b: object): string[] {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
}
