/** One verdict of the verifier, with where to look. */
export type Verdict = "pass" | "fail" | "warn" | "skipped";

export interface CheckResult {
  /** Stable id, e.g. `integrity.artifacts`. */
  id: string;
  verdict: Verdict;
  /** One line: what was found (for skipped: why). */
  message: string;
  /** Paths relative to the run folder (with #/json/pointer where useful). */
  evidence: string[];
}

export interface VerifyReport {
  run_dir: string;
  run_id: string | null;
  pipeline: string | null;
  mode: string | null;
  verdict: "pass" | "fail";
  checks: CheckResult[];
  /** sha256 of every file the verifier read and judged, relative to the run folder. */
  judged: Record<string, string>;
  /** Whether the run's metrics are judged as quality (false for smoke runs: information only). */
  quality: { judged: boolean; note: string };
  verifier: { version: string; wall_s: number };
}
