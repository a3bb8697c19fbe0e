// `pipeline mcp`: the agent tools over the Model Context Protocol (stdio). Every tool has input
// and output schemas and answers with structured content plus a text copy; long runs report
// progress when the client asks for it; logs go to stderr only (stdout is the protocol).
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import * as z from "zod";
import { UsageError } from "../manifest/diagnostics.js";
import type { Reporter, RunEvent } from "../run/events.js";
import { describeProgress } from "../run/report.js";
import { AgentTools, type Workspace } from "./tools.js";

const runSummary = {
  run_dir: z.string().describe("run folder, relative to the runs folder"),
  status: z.string().describe("succeeded | failed | interrupted"),
  stages: z.array(z.object({ id: z.string(), status: z.string(), reason: z.string().nullable() })),
  output: z
    .record(z.string(), z.unknown())
    .nullable()
    .describe("output.json of a one-stage run, when it succeeded"),
};

const check = z.object({
  id: z.string(),
  verdict: z.enum(["pass", "fail", "warn", "skipped"]),
  message: z.string(),
  evidence: z.array(z.string()),
});

type Extra = {
  signal: AbortSignal;
  _meta?: { progressToken?: string | number };
  sendNotification: (n: {
    method: "notifications/progress";
    params: { progressToken: string | number; progress: number; total?: number; message?: string };
  }) => Promise<void>;
};

function ok(value: Record<string, unknown>): CallToolResult {
  return { content: [{ type: "text", text: JSON.stringify(value, null, 2) }], structuredContent: value };
}

function refused(err: unknown): CallToolResult {
  if (err instanceof UsageError)
    return { isError: true, content: [{ type: "text", text: `refused: ${err.message}` }] };
  throw err;
}

/** Progress notifications for a run: one step per finished stage; logs to stderr. */
function progressReporter(extra: Extra): Reporter {
  const token = extra._meta?.progressToken;
  let total = 0;
  let done = 0;
  const notify = (message: string): void => {
    process.stderr.write(`${message}\n`);
    if (token === undefined) return;
    void extra
      .sendNotification({
        method: "notifications/progress",
        params: { progressToken: token, progress: done, ...(total ? { total } : {}), message },
      })
      .catch(() => {});
  };
  return {
    emit(e: RunEvent) {
      if (e.event === "run-start") {
        total = e.stages.length;
        notify(`run ${e.pipeline} ${e.run_id}: ${total} stages`);
      } else if (e.event === "stage-progress") notify(`${e.stage}: ${describeProgress(e.data)}`);
      else if (e.event === "stage-end") {
        done++;
        notify(`${e.stage} ${e.status}${e.reason ? `: ${e.reason}` : ""}`);
      }
    },
    close: async () => {},
  };
}

export function createServer(ws: Workspace, tools = new AgentTools(ws)): McpServer {
  const server = new McpServer({ name: "medpipe", version: "0.1.0" });

  server.registerTool(
    "list_skills",
    {
      description: "List the skills this workspace can run, with their scripts.",
      inputSchema: {},
      outputSchema: {
        skills: z.array(
          z.object({
            id: z.string(),
            version: z.string(),
            description: z.string(),
            interpreter: z.string(),
            script: z.string(),
            gpu: z.string(),
          }),
        ),
      },
    },
    async () => ok({ skills: tools.listSkills() }),
  );

  server.registerTool(
    "describe_skill",
    {
      description: "A skill's inputs (JSON Schemas, required or not), outputs and resources.",
      inputSchema: { id: z.string().describe("skill id, e.g. analyze") },
      outputSchema: {
        id: z.string(),
        version: z.string(),
        description: z.string(),
        script: z.string(),
        inputs: z.record(z.string(), z.record(z.string(), z.unknown())),
        outputs: z.object({ result_schema: z.string(), files: z.record(z.string(), z.string()) }),
        resources: z.record(z.string(), z.unknown()),
      },
    },
    async ({ id }) => {
      try {
        return ok(tools.describeSkill(id));
      } catch (err) {
        return refused(err);
      }
    },
  );

  server.registerTool(
    "run_script",
    {
      description:
        "Run one skill script exactly as a pipeline stage runs (validated inputs, its own run folder, evidence). " +
        "Only scripts declared by a skill manifest; paths must stay inside the workspace.",
      inputSchema: {
        script: z.string().describe("skill id, or the script path from list_skills"),
        args: z.record(z.string(), z.unknown()).default({}).describe("inputs by name; values as JSON"),
        timeout_s: z.number().positive().optional().describe("stop the script after this many seconds"),
        smoke: z.boolean().optional().describe("smoke mode"),
      },
      outputSchema: runSummary,
    },
    async ({ script, args, timeout_s, smoke }, extra) => {
      try {
        const summary = await tools.runScript(
          {
            script,
            args: args as Record<string, never>,
            ...(timeout_s !== undefined ? { timeout_s } : {}),
            ...(smoke !== undefined ? { smoke } : {}),
          },
          progressReporter(extra as unknown as Extra),
          extra.signal,
        );
        return ok({ ...summary });
      } catch (err) {
        return refused(err);
      }
    },
  );

  server.registerTool(
    "run_pipeline",
    {
      description:
        "Run a pipeline manifest of the workspace, with an optional profile (smoke, sanity, …) and params.",
      inputSchema: {
        manifest: z.string().describe("path of the manifest, relative to the workspace"),
        profile: z.string().optional(),
        params: z.record(z.string(), z.unknown()).optional().describe("param overrides"),
        timeout_s: z.number().positive().optional(),
      },
      outputSchema: runSummary,
    },
    async ({ manifest, profile, params, timeout_s }, extra) => {
      try {
        const summary = await tools.runPipeline(
          {
            manifest,
            ...(profile !== undefined ? { profile } : {}),
            ...(params !== undefined ? { params: params as Record<string, never> } : {}),
            ...(timeout_s !== undefined ? { timeout_s } : {}),
          },
          progressReporter(extra as unknown as Extra),
          extra.signal,
        );
        return ok({ ...summary });
      } catch (err) {
        return refused(err);
      }
    },
  );

  server.registerTool(
    "get_run",
    {
      description: "A run's status, its stages and an evidence summary.",
      inputSchema: { run_dir: z.string().describe("as returned by run_script / run_pipeline") },
      outputSchema: {
        ...runSummary,
        pipeline: z.string(),
        mode: z.string(),
        root_hash: z.string().nullable(),
        files: z.number(),
      },
    },
    async ({ run_dir }) => {
      try {
        return ok({ ...tools.getRun(run_dir) });
      } catch (err) {
        return refused(err);
      }
    },
  );

  server.registerTool(
    "verify_run",
    {
      description:
        "Audit a finished run with the trusted verifier (digests, schemas, claims; the run's models re-make predictions drawn at random); optionally judge its metrics against a reference file (eval/references/*.yaml) or a baseline run of the same pipeline.",
      inputSchema: {
        run_dir: z.string(),
        reference: z.string().optional().describe("a reference YAML inside the workspace"),
        baseline: z.string().optional().describe("a run folder (under the runs folder) of the same pipeline"),
        model_checks: z
          .union([z.number().int().min(1), z.literal("all")])
          .optional()
          .describe("how many predictions the run's models make again, drawn at random (default 1), or all"),
      },
      outputSchema: { verdict: z.enum(["pass", "fail"]), checks: z.array(check) },
    },
    async ({ run_dir, reference, baseline, model_checks }) => {
      try {
        const r = await tools.verifyRun(run_dir, {
          ...(reference !== undefined ? { reference } : {}),
          ...(baseline !== undefined ? { baseline } : {}),
          ...(model_checks !== undefined ? { modelChecks: model_checks } : {}),
        });
        return ok({ verdict: r.verdict, checks: r.checks });
      } catch (err) {
        return refused(err);
      }
    },
  );
  return server;
}
