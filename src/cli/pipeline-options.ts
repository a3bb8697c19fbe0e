// The options every pipeline command shares, turned into a load request.
import { resolve } from "node:path";
import { UsageError } from "../manifest/diagnostics.js";
import type { LoadRequest } from "../run/load.js";

export interface PipelineOpts {
  smoke?: boolean;
  sanity?: boolean;
  profile?: string;
  set: string[];
  workdir?: string;
  skillsDir: string[];
  json?: boolean;
}

export function loadRequest(manifest: string, o: PipelineOpts): LoadRequest {
  if ([o.smoke, o.sanity, o.profile].filter(Boolean).length > 1)
    throw new UsageError("choose one of --smoke, --sanity, --profile");
  const profile = o.smoke ? "smoke" : o.sanity ? "sanity" : (o.profile ?? null);
  return {
    manifest,
    workspace: resolve(o.workdir ?? process.cwd()),
    profile,
    // --profile smoke is --smoke: the mode decides what the skills do and what the verifier
    // and the sanity check expect, so a profile of that name cannot run as a full run.
    mode: profile === "smoke" || profile === "sanity" ? profile : "full",
    sets: o.set,
    skillsDirs: o.skillsDir,
    env: process.env as Record<string, string | undefined>,
  };
}
