// Per-case parallelism on worker threads: a fixed number of workers, each given the next case
// when it finishes the last, so at most `workers` cases are in memory. The first failure stops
// the pool and is reported as it is (one line naming the file).
import { existsSync } from "node:fs";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { preprocessCase } from "./case.js";
import type { CaseJob, CaseSummary } from "./types.js";

export type WorkerReply = { ok: true; summary: CaseSummary } | { ok: false; error: string };

const WORKER_URL = new URL("./worker.js", import.meta.url);

/** Default pool size: the cores there are, at most 8 (each worker holds a full volume). */
export function defaultWorkers(): number {
  return Math.max(1, Math.min(8, availableParallelism()));
}

/**
 * Runs every job; `onDone` hears of each case as it finishes (in completion order). Results
 * come back in job order. `workers: 0` runs the cases one by one in this thread; so does any
 * call made from the TypeScript sources (tests), where no compiled worker script exists.
 */
export async function runCases(
  jobs: CaseJob[],
  workers: number,
  onDone: (summary: CaseSummary, done: number) => void = () => {},
): Promise<CaseSummary[]> {
  const results = new Array<CaseSummary>(jobs.length);
  if (workers === 0 || !existsSync(fileURLToPath(WORKER_URL))) {
    for (const [i, job] of jobs.entries()) {
      results[i] = await preprocessCase(job);
      onDone(results[i]!, i + 1);
    }
    return results;
  }
  const size = Math.max(1, Math.min(workers, jobs.length));
  const pool: Worker[] = [];
  let next = 0;
  let done = 0;
  try {
    await new Promise<void>((resolve, reject) => {
      if (jobs.length === 0) return resolve();
      const feed = (worker: Worker) => {
        if (next >= jobs.length) return;
        const index = next++;
        worker.once("message", (reply: WorkerReply) => {
          if (!reply.ok) return reject(new Error(reply.error));
          results[index] = reply.summary;
          onDone(reply.summary, ++done);
          if (done === jobs.length) resolve();
          else feed(worker);
        });
        worker.postMessage(jobs[index]);
      };
      for (let w = 0; w < size; w++) {
        const worker = new Worker(WORKER_URL);
        worker.on("error", (err) => reject(err));
        worker.on("exit", (code) => {
          if (code !== 0 && done < jobs.length)
            reject(new Error(`a preprocessing worker exited with code ${code}`));
        });
        pool.push(worker);
        feed(worker);
      }
    });
  } finally {
    await Promise.all(pool.map((w) => w.terminate()));
  }
  return results;
}
