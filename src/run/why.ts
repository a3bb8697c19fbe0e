// Why a stage ran instead of coming from the cache: the parts of its key that changed.
import type { KeyParts } from "../evidence/evidence.js";
import type { Value } from "../manifest/expr.js";

const UPSTREAM_KEY = /@[0-9a-f]{64}\//g;

export function diffKeyParts(before: KeyParts, after: KeyParts): string[] {
  const out: string[] = [];
  if (before.stage !== after.stage)
    out.push(
      before.stage === undefined
        ? "the stage's id is part of its cache key now"
        : `stage id changed: ${before.stage} → ${after.stage}`,
    );
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
  for (const id of union(before.needs ?? {}, after.needs ?? {})) {
    if (before.needs?.[id] !== after.needs?.[id]) out.push(`stage '${id}' it needs was rerun or changed`);
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
  const masked = (v: Value | undefined): string =>
    v === undefined ? "(unset)" : JSON.stringify(v).replace(UPSTREAM_KEY, "@…/");
  // Same shape with other upstream keys: what changed is the upstream stage, not this input.
  if (masked(a) === masked(b)) {
    const files = [...new Set([...JSON.stringify(b).matchAll(/@[0-9a-f]{64}\/([^"]*)/g)].map((m) => m[1]))];
    return `input '${name}': the upstream output it reads changed (${files.join(", ")})`;
  }
  return `input '${name}' changed: ${masked(a)} → ${masked(b)}`;
}

function union(a: object, b: object): string[] {
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
}
