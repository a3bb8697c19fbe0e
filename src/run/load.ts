// Reading a pipeline: the manifest file and the skills (I/O), then the pure compile and graph.
import { resolve } from "node:path";
import { buildGraph, type Graph } from "../graph/expand.js";
import { compilePipeline, type PipelineSpec } from "../manifest/pipeline.js";
import { readSource } from "../manifest/source.js";
import { loadSkills, skillDirs } from "../skills/registry.js";
import type { Mode } from "../skills/types.js";
import { checkStaticInputs } from "./inputs.js";
import { checkSanityConfiguration } from "./sanity.js";

export interface LoadRequest {
  manifest: string;
  workspace: string;
  profile: string | null;
  mode: Mode;
  sets: string[];
  skillsDirs: string[];
  env: Record<string, string | undefined>;
}

export interface LoadedPipeline {
  spec: PipelineSpec;
  graph: Graph;
  manifestPath: string;
}

/**
 * `use`: "run" (a run or its dry run: the files the inputs name must exist) or "inspect"
 * (validate, graph: the manifest alone).
 */
export function loadPipeline(req: LoadRequest, use: "run" | "inspect"): LoadedPipeline {
  const manifestPath = resolve(req.manifest);
  const doc = readSource(manifestPath, req.manifest);
  const skills = loadSkills(skillDirs(req.skillsDirs, req.env as NodeJS.ProcessEnv));
  const spec = compilePipeline(doc, skills, {
    profile: req.profile,
    mode: req.mode,
    sets: req.sets,
    env: req.env,
  });
  checkSanityConfiguration(spec, req.env, req.workspace);
  const graph = buildGraph(spec);
  checkStaticInputs(spec, graph, req.env, req.workspace, { pathsExist: use === "run" });
  return { spec, graph, manifestPath };
}
