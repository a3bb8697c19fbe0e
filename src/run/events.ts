import type { StageStatus } from "../evidence/evidence.js";
import type { Value } from "../manifest/expr.js";

/** What a run reports while it goes; rendered live, as plain lines, or as NDJSON (--json). */
export type RunEvent =
  | {
      event: "run-start";
      run_id: string;
      run_dir: string;
      pipeline: string;
      stages: string[];
      resumed: boolean;
    }
  | { event: "stage-start"; stage: string; attempt: number; device: string | null }
  | { event: "stage-progress"; stage: string; data: Record<string, Value> }
  | {
      event: "stage-end";
      stage: string;
      status: StageStatus;
      reason: string | null;
      wall_s: number | null;
      cached_from: string | null;
    }
  | { event: "run-end"; run_id: string; run_dir: string; status: string; counts: Record<string, number> };

export interface Reporter {
  emit(e: RunEvent): void;
  close(): Promise<void>;
}
