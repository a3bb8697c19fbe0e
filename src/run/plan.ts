// `pipeline plan`: what a run would do — each stage cached or run, and why — without running.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { readEvidence } from "../evidence/evidence.js";
import { Hasher, hashJson } from "../evidence/hash.js";
import { ManifestError } from "../manifest/diagnostics.js";
import type { Value } from "../manifest/expr.js";
import { StageCache } from "./cache.js";
import { keyParts, needsKeys } from "./cache-key.js";
import { type Namespace, resolveInputs, stageNamespace } from "./inputs.js";
import type { LoadedPipeline } from "./load.js";
import { latestRun } from "./run-dir.js";
import { diffKeyParts } from "./why.js";

export interface PlanEntry {
  stage: string;
  skill: string;
  deps: string[];
  decision: "run" | "cached";
  reason: string;
  cache_key: string | null;
}

export async function planRun(
  loaded: LoadedPipeline,
  opts: { runsDir: string; workspace: string; env: Record<string, string | undefined> },
): Promise<PlanEntry[]> {
  const { spec, graph } = loaded;
  const cacheDir = join(opts.runsDir, ".cache");
  const hashesFile = join(cacheDir, "file-hashes.json");
  const hasher = Hasher.load(hashesFile);
  const cache = new StageCache(cacheDir);
  const last = latestRun(opts.runsDir, spec.name);
  const previous = last ? readEvidence(last) : null;
  const namespaces = new Map<string, Namespace>();
  const entries: PlanEntry[] = [];
  const willRun = new Set<string>();
  const keys = new Map<string, string>();
  for (const node of graph.nodes) {
    const base = { stage: node.id, skill: node.spec.skill.manifest.id, deps: node.deps };
    const upstream = node.deps.find((d) => willRun.has(d));
    if (upstream) {
      willRun.add(node.id);
      entries.push({ ...base, decision: "run", reason: `after ${upstream} runs`, cache_key: null });
      continue;
    }
    let key: string;
    let parts: Awaited<ReturnType<typeof keyParts>>;
    try {
      const inputs = resolveInputs(node, {
        spec,
        graph,
        namespaces,
        env: opts.env,
        workspace: opts.workspace,
      });
      parts = await keyParts(
        { hasher, env: opts.env, mode: spec.mode, stage: node.id },
        node.spec.skill,
        inputs,
        needsKeys(node, graph, (id) => keys.get(id) ?? null),
      );
      key = hashJson(parts);
      keys.set(node.id, key);
    } catch (err) {
      if (!(err instanceof ManifestError) && !(err instanceof Error)) throw err;
      willRun.add(node.id);
      entries.push({ ...base, decision: "run", reason: `will fail: ${err.message}`, cache_key: null });
      continue;
    }
    if (node.spec.skill.manifest.cache === false) {
      willRun.add(node.id);
      entries.push({
        ...base,
        decision: "run",
        reason: `always runs: skill ${node.spec.skill.manifest.id} declares cache: false`,
        cache_key: key,
      });
      continue;
    }
    const hit = await cache.lookup(key, hasher);
    if (hit) {
      const dir = join(hit.run_dir, "stages", hit.stage);
      const output = JSON.parse(readFileSync(join(dir, "output.json"), "utf8")) as Record<string, Value>;
      namespaces.set(node.id, stageNamespace(node.spec.skill, dir, output, key));
      entries.push({
        ...base,
        decision: "cached",
        reason: `same key as ${hit.stage} in ${hit.run_dir}`,
        cache_key: key,
      });
      continue;
    }
    willRun.add(node.id);
    const before = previous?.stages[node.id]?.key_parts;
    const changes = before ? diffKeyParts(before, parts) : [];
    const reason = !before
      ? "no earlier result"
      : changes.length
        ? changes.join("; ")
        : "earlier result missing or not successful";
    entries.push({ ...base, decision: "run", reason, cache_key: key });
  }
  return entries;
}
