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
  return {
    manifest,
    workspace: resolve(o.workdir ?? process.cwd()),
    profile: o.smoke ? "smoke" : o.sanity ? "sanity" : (o.profile ?? null),
    mode: o.smoke ? "smoke" : o.sanity ? "sanity" : "full",
    sets: o.set,
    skillsDirs: o.skillsDir,
    env: process.env as Record<string, string | undefined>,
  };
}
