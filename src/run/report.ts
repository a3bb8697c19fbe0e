// Three views of the same events: live tasks on a terminal (listr2), plain lines elsewhere
// (CI, Slurm logs), NDJSON with --json (agents).
import type { Value } from "../manifest/expr.js";
import type { Reporter, RunEvent } from "./events.js";

export function jsonReporter(out: NodeJS.WritableStream = process.stdout): Reporter {
  return {
    emit: (e) => out.write(`${JSON.stringify(e)}\n`),
    close: async () => {},
  };
}

const MARK: Record<string, string> = {
  succeeded: "✔",
  cached: "↺",
  failed: "✖",
  skipped: "-",
  interrupted: "!",
};

export function describeProgress(data: Record<string, Value>): string {
  const { event, ...rest } = data;
  const parts: string[] = [String(event)];
  if (typeof rest.epoch === "number" && typeof rest.of === "number") {
    parts.push(`${rest.epoch}/${rest.of}`);
    delete rest.epoch;
    delete rest.of;
  }
  for (const [k, v] of Object.entries(rest))
    parts.push(
      `${k}=${typeof v === "number" && !Number.isInteger(v) ? v.toPrecision(4) : JSON.stringify(v)}`,
    );
  return parts.join(" ");
}

export function stageEndLine(e: Extract<RunEvent, { event: "stage-end" }>): string {
  const mark = MARK[e.status] ?? "?";
  if (e.status === "cached") return `${mark} ${e.stage}  cached${e.cached_from ? ` (${e.cached_from})` : ""}`;
  const time = e.wall_s !== null ? `  ${e.wall_s.toFixed(1)}s` : "";
  return `${mark} ${e.stage}  ${e.status}${time}${e.reason ? `: ${e.reason}` : ""}`;
}

export function plainReporter(out: NodeJS.WritableStream = process.stderr): Reporter {
  const line = (s: string): void => {
    out.write(`${s}\n`);
  };
  return {
    emit(e) {
      switch (e.event) {
        case "run-start":
          line(`${e.resumed ? "resume" : "run"} ${e.pipeline} ${e.run_id} (${e.stages.length} stages)`);
          break;
        case "stage-start":
          line(
            `▶ ${e.stage}${e.attempt > 1 ? ` (attempt ${e.attempt})` : ""}${e.device !== null ? ` on GPU ${e.device}` : ""}`,
          );
          break;
        case "stage-progress":
          line(`  ${e.stage}: ${describeProgress(e.data)}`);
          break;
        case "stage-end":
          line(stageEndLine(e));
          break;
        case "run-end":
          line(
            `${e.status}: ${Object.entries(e.counts)
              .map(([k, v]) => `${v} ${k}`)
              .join(", ")}`,
          );
          break;
      }
    },
    close: async () => {},
  };
}

/** Live view: one listr2 task per stage instance, driven by the events (listr2 only draws). */
export async function ttyReporter(): Promise<Reporter> {
  const { Listr } = await import("listr2");
  type Deferred = { resolve: () => void; reject: (e: Error) => void; promise: Promise<void> };
  const deferreds = new Map<string, Deferred>();
  const tasks = new Map<string, { title: string; output: string; skip: (m: string) => void }>();
  let listrDone: Promise<unknown> = Promise.resolve();
  let summary = "";
  const deferred = (): Deferred => {
    let resolve = (): void => {};
    let reject = (_e: Error): void => {};
    const promise = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    promise.catch(() => {});
    return { resolve, reject, promise };
  };
  return {
    emit(e) {
      switch (e.event) {
        case "run-start": {
          for (const s of e.stages) deferreds.set(s, deferred());
          const list = new Listr(
            e.stages.map((s) => ({
              title: s,
              task: async (
                _ctx: unknown,
                task: { title: string; output: string; skip: (m: string) => void },
              ) => {
                tasks.set(s, task);
                await (deferreds.get(s) as Deferred).promise;
              },
            })),
            { concurrent: true, exitOnError: false, rendererOptions: { collapseSubtasks: false } },
          );
          listrDone = list.run().catch(() => {});
          break;
        }
        case "stage-progress": {
          const t = tasks.get(e.stage);
          if (t) t.output = describeProgress(e.data);
          break;
        }
        case "stage-end": {
          const d = deferreds.get(e.stage);
          const t = tasks.get(e.stage);
          if (t) t.title = stageEndLine(e).slice(2);
          if (e.status === "succeeded") d?.resolve();
          else if (e.status === "cached" || e.status === "skipped") {
            t?.skip(stageEndLine(e).slice(2));
            d?.resolve();
          } else d?.reject(new Error(e.reason ?? e.status));
          break;
        }
        case "run-end":
          summary = `${e.status}: ${Object.entries(e.counts)
            .map(([k, v]) => `${v} ${k}`)
            .join(", ")}`;
          for (const d of deferreds.values()) d.resolve();
          break;
        default:
          break;
      }
    },
    async close() {
      await listrDone;
      if (summary) process.stderr.write(`${summary}\n`);
    },
  };
}
