// The cluster configuration: a separate YAML file, so that one manifest runs unchanged on a
// laptop and on a cluster.
import { readFileSync } from "node:fs";
import { ManifestError } from "../../manifest/diagnostics.js";
import { ajv, findings, toDiagnostics } from "../../manifest/schema.js";
import { readSource } from "../../manifest/source.js";
import { SCHEMAS_DIR } from "../../paths.js";

export interface ClusterConfig {
  partition?: string;
  account?: string;
  qos?: string;
  time?: string;
  mem?: string;
  cpus?: number;
  max_cpus_per_task?: number;
  gpu_request: "gres" | "gpus";
  extra_sbatch: string[];
  poll_interval_s: number;
  max_poll_interval_s: number;
  fs_wait_s: number;
  batch_window_ms: number;
}

export const CLUSTER_DEFAULTS: ClusterConfig = {
  gpu_request: "gres",
  extra_sbatch: [],
  poll_interval_s: 2,
  max_poll_interval_s: 30,
  fs_wait_s: 30,
  batch_window_ms: 200,
};

export function loadClusterConfig(file: string | null): ClusterConfig {
  if (!file) return { ...CLUSTER_DEFAULTS };
  const doc = readSource(file);
  const validate = ajv().compile(
    JSON.parse(readFileSync(`${SCHEMAS_DIR}cluster.schema.json`, "utf8")) as object,
  );
  if (!validate(doc.value ?? {})) throw new ManifestError(toDiagnostics(doc, findings(validate.errors)));
  return { ...CLUSTER_DEFAULTS, ...(doc.value as Partial<ClusterConfig>) };
}
