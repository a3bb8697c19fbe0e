// Per-case parallelism on worker threads: a fixed number of workers, each holding one case at a
// time (bounded memory), results kept in job order. With one worker, or where the compiled worker
// script is not there (tests running the TypeScript sources), the cases run in this thread.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { reason } from "../imaging/errors.js";
import type { CaseOutput } from "./case.js";
import { analyzeCaseFiles, type CaseJob } from "./case-io.js";

/** What a case ended as: its analysis, or why the analysis itself failed (a crash, not bad data). */
export type CaseResult = { ok: true; out: CaseOutput } | { ok: false; error: string };

const WORKER_URL = new URL("./worker.js", import.meta.url);

export function workerAvailable(): boolean {
  return existsSync(fileURLToPath(WORKER_URL));
}

export async function runCases(
  jobs: CaseJob[],
  workers: number,
  onDone: (index: number, result: CaseResult) => void,
): Promise<CaseResult[]> {
  const results = new Array<CaseResult>(jobs.length);
  const finish = (i: number, r: CaseResult): void => {
    results[i] = r;
    onDone(i, r);
  };
  const n = Math.min(workers, jobs.length);
  if (n <= 1 || !workerAvailable()) {
    for (let i = 0; i < jobs.length; i++) {
      try {
        finish(i, { ok: true, out: await analyzeCaseFiles(jobs[i]!) });
      } catch (err) {
        finish(i, { ok: false, error: reason(err) });
      }
    }
    return results;
  }
  let next = 0;
  const lane = async (): Promise<void> => {
    let worker = new Worker(WORKER_URL);
    try {
      while (next < jobs.length) {
        const i = next++;
        const r = await ask(worker, jobs[i]!);
        finish(i, r);
        // A worker that died (out of memory, a crash) is replaced for the next case.
        if (!r.ok && r.error.startsWith("worker ")) worker = new Worker(WORKER_URL);
      }
    } finally {
      await worker.terminate();
    }
  };
  await Promise.all(Array.from({ length: n }, lane));
  return results;
}

function ask(worker: Worker, job: CaseJob): Promise<CaseResult> {
  return new Promise((resolve) => {
    const done = (r: CaseResult): void => {
      worker.off("message", onMessage);
      worker.off("error", onError);
      worker.off("exit", onExit);
      resolve(r);
    };
    const onMessage = (r: CaseResult): void => done(r);
    const onError = (err: Error): void => done({ ok: false, error: `worker failed: ${reason(err)}` });
    const onExit = (code: number): void => done({ ok: false, error: `worker exited with code ${code}` });
    worker.on("message", onMessage);
    worker.on("error", onError);
    worker.on("exit", onExit);
    worker.postMessage(job);
  });
}
