// Worker thread entry: receives one CaseJob at a time, preprocesses it, answers with the summary
// or the one-line error. The worker holds one case in memory, which bounds the pool's memory.
import { parentPort } from "node:worker_threads";
import { preprocessCase } from "./case.js";
import type { WorkerReply } from "./pool.js";
import type { CaseJob } from "./types.js";

const port = parentPort;
if (!port) throw new Error("preprocess/worker.js runs as a worker thread only");
port.on("message", (job: CaseJob) => {
  preprocessCase(job).then(
    (summary) => port.postMessage({ ok: true, summary } satisfies WorkerReply),
    (err: unknown) =>
      port.postMessage({
        ok: false,
        error: err instanceof Error ? err.message : String(err),
      } satisfies WorkerReply),
  );
});
