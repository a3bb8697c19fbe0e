// Worker-thread entry: analyzes one case per message and posts the result back (the foreground
// samples are transferred, not copied). One case at a time, so memory stays one case's volumes.
import { parentPort } from "node:worker_threads";
import { reason } from "../imaging/errors.js";
import { analyzeCaseFiles, type CaseJob } from "./case-io.js";

const port = parentPort;
if (!port) throw new Error("analyze/worker.js must run in a worker thread");
port.on("message", (job: CaseJob) => {
  analyzeCaseFiles(job).then(
    (out) => {
      const buffers = out.samples.map((s) => s.buffer as ArrayBuffer);
      port.postMessage({ ok: true, out }, buffers);
    },
    (err: unknown) => port.postMessage({ ok: false, error: reason(err) }),
  );
});
