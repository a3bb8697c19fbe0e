import { availableParallelism } from "node:os";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "tests/**/*.test.ts"],
    // Hang guards, not speed targets: with a worker per core a test's subprocesses share the
    // CPU with another file's (tissue-2d's end-to-end test took 32 s so, the python suite 55+ s).
    testTimeout: 180_000,
    hookTimeout: 180_000,
    pool: "forks",
    // Most test time is spent waiting on pipeline subprocesses (torch trainings, onnxruntime), so
    // a worker per core, not vitest's default of one less: on the 2-core CI machine the suite
    // took 979 s with one worker and 705 s with two (2026-12-07, 495 tests, all passing both ways).
    maxWorkers: Math.max(2, availableParallelism()),
  },
});
