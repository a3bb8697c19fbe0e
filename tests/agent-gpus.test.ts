// The MCP server's concurrent runs share one count of the stages on each GPU: two runs whose
// manifests allow one stage per device take the one device in turn, not both at once. The device
// is CUDA_VISIBLE_DEVICES=0 (the stages do not touch a GPU); real processes, real runs.
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { AgentTools } from "../src/agent/tools.js";
import { makeWorkspace } from "./support/workspace.js";

const manifest = (tag: string) =>
  [
    `name: gpu-${tag}`,
    "stages_per_gpu: 1",
    "stages:",
    "  g:",
    "    skill: emit",
    `    with: { value: ${tag}, sleep_ms: 1500 }`,
    "    resources: { gpu: required }",
    "",
  ].join("\n");

describe("agent runs on one GPU", () => {
  it("two concurrent runs each allowing one stage per device take it in turn", async () => {
    const ws = makeWorkspace();
    ws.write("a.yaml", manifest("a"));
    ws.write("b.yaml", manifest("b"));
    const tools = new AgentTools({
      dir: ws.dir,
      runsDir: join(ws.dir, "runs"),
      skillsDirs: [ws.skills],
      env: { ...process.env, CUDA_VISIBLE_DEVICES: "0" },
    });
    const quiet = { emit: () => {}, close: async () => {} };
    const signal = new AbortController().signal;
    const runs = await Promise.all(
      ["a.yaml", "b.yaml"].map((m) => tools.runPipeline({ manifest: m }, quiet, signal)),
    );
    expect(runs.map((r) => r.status)).toEqual(["succeeded", "succeeded"]);
    // Each stage process ran for wall_s before it ended; the two must not overlap (200 ms of
    // slack for the output checks after a process ends: they would overlap by about 1.5 s).
    const spans = runs.map((r) => {
      const s = ws.evidence(join(ws.dir, "runs", r.run_dir)).stages.g;
      const end = Date.parse(s?.ended as string);
      expect(s?.device).toBe("0");
      return { from: end - (s?.wall_s as number) * 1000, end };
    });
    const [first, second] = spans.sort((x, y) => x.from - y.from) as [
      { from: number; end: number },
      { from: number; end: number },
    ];
    expect(second.from + 200).toBeGreaterThanOrEqual(first.end);
  }, 60_000);
});
