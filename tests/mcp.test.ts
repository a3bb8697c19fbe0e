// The MCP server driven by the SDK's own Client over a real stdio transport: the tools, a real
// run through run_script, its evidence through get_run and verify_run, and hostile calls that
// are refused with a reason and leave nothing on disk.
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { Ajv } from "ajv";
import addFormatsModule from "ajv-formats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const addFormats = ((addFormatsModule as unknown as { default?: unknown }).default ?? addFormatsModule) as (
  a: Ajv,
) => Ajv;

import { BIN, ROOT } from "./support/cli.js";
import { forge } from "./support/forge.js";
import { writeTinyPackage } from "./support/models.js";
import { makeWorkspace, type Workspace } from "./support/workspace.js";

let ws: Workspace;
let client: Client;
/** The run_script run of the emit skill (a test below judges it against references). */
let emitRun = "";

type Result = {
  isError?: boolean;
  content: { type: string; text: string }[];
  structuredContent?: Record<string, unknown>;
};
const call = async (name: string, args: Record<string, unknown>) =>
  (await client.callTool({ name, arguments: args })) as unknown as Result;

/** Every file below the workspace's runs folder. */
function runFiles(): string[] {
  const root = join(ws.dir, "runs");
  if (!existsSync(root)) return [];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else out.push(join(d, e.name));
    }
  };
  walk(root);
  return out.sort();
}

describe("mcp server", () => {
  beforeAll(async () => {
    ws = makeWorkspace();
    ws.write("data/input.txt", "hello agent\n");
    mkdirSync(join(ws.dir, "pids"));
    symlinkSync("/etc", join(ws.dir, "escape"));
    client = new Client({ name: "medpipe-test", version: "1.0.0" });
    await client.connect(
      new StdioClientTransport({
        command: process.execPath,
        args: [BIN, "mcp", "--workdir", ws.dir, "--skills-dir", ws.skills],
        stderr: "ignore",
      }),
    );
  });
  afterAll(async () => {
    await client?.close();
  });

  it("lists its tools, each with input and output schemas", async () => {
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual([
      "describe_skill",
      "get_run",
      "list_skills",
      "run_pipeline",
      "run_script",
      "verify_run",
    ]);
    for (const t of tools) {
      expect(t.inputSchema.type).toBe("object");
      expect(t.outputSchema?.type).toBe("object");
    }
    const skills = await call("list_skills", {});
    expect((skills.structuredContent?.skills as { id: string }[]).map((s) => s.id)).toContain("emit");
    expect(JSON.parse(skills.content[0]?.text ?? "")).toEqual(skills.structuredContent);
  });

  it("runs a script, then reads and verifies its evidence", async () => {
    const r = await call("run_script", {
      script: "emit",
      args: { value: { answer: 42 }, source: "data/input.txt" },
    });
    expect(r.isError).toBeFalsy();
    const s = r.structuredContent as {
      run_dir: string;
      status: string;
      output: { value: unknown; source_bytes: number };
    };
    expect(s.status).toBe("succeeded");
    expect(s.output.value).toEqual({ answer: 42 });
    expect(s.output.source_bytes).toBe(12);
    const run = await call("get_run", { run_dir: s.run_dir });
    expect(run.structuredContent).toMatchObject({
      status: "succeeded",
      pipeline: "script-emit",
      mode: "full",
    });
    expect(run.structuredContent?.root_hash).toMatch(/^[0-9a-f]{64}$/);
    const v = await call("verify_run", { run_dir: s.run_dir });
    expect(v.structuredContent?.verdict).toBe("pass");
    emitRun = s.run_dir;
  });

  it("verify_run judges a run against a reference; bad references and baselines are refused", async () => {
    const reference = (name: string, centre: number) =>
      ws.write(
        `refs/${name}.yaml`,
        [
          `id: ${name}`,
          "source: { document: this test, result: the emitted answer }",
          "configuration: {}",
          "metrics:",
          `  answer: { centre: ${centre}, tolerance: 1, measured: "emit:/value/answer" }`,
          "reasoning: the emit skill returns its input unchanged, so the value is exact.",
          "",
        ].join("\n"),
      );
    reference("near", 41.5);
    reference("far", 50);
    const judged = (r: Result) =>
      (r.structuredContent?.checks as { id: string; verdict: string; message: string }[]).find(
        (c) => c.id === "regression.reference",
      );
    const pass = await call("verify_run", { run_dir: emitRun, reference: "refs/near.yaml" });
    expect(pass.structuredContent?.verdict, pass.content[0]?.text).toBe("pass");
    expect(judged(pass)?.message).toContain("answer 42 in 41.5 ± 1");
    const fail = await call("verify_run", { run_dir: emitRun, reference: "refs/far.yaml" });
    expect(fail.structuredContent?.verdict).toBe("fail");
    expect(judged(fail)?.verdict).toBe("fail");
    for (const [args, reason] of [
      [{ reference: "/etc/hosts" }, /^refused: reference \/etc\/hosts: the path leaves the workspace/],
      [{ reference: "data/input.txt" }, /^refused: --reference .*input\.txt: /],
      [{ baseline: "/tmp" }, /^refused: \/tmp: not inside the runs folder/],
    ] as const) {
      const r = await call("verify_run", { run_dir: emitRun, ...args });
      expect(r.isError).toBe(true);
      expect(r.content[0]?.text).toMatch(reason);
      expect(r.content[0]?.text.split("\n")).toHaveLength(1);
    }
  });

  it("runs analyze on the micro fixture, reads its schema-valid output.json, and verifies the run", async () => {
    cpSync(join(ROOT, "fixtures/heart_micro"), join(ws.dir, "heart_micro"), { recursive: true });
    const r = await call("run_script", {
      script: "analyze",
      args: { dataset: "heart_micro" },
      timeout_s: 300,
    });
    expect(r.isError).toBeFalsy();
    const s = r.structuredContent as { run_dir: string; status: string };
    expect(s.status).toBe("succeeded");
    const run = await call("get_run", { run_dir: s.run_dir });
    const output = (run.structuredContent as { output: Record<string, unknown> }).output;
    const ajv = new Ajv({ allErrors: true, strict: false });
    addFormats(ajv);
    ajv.addSchema(JSON.parse(readFileSync(join(ROOT, "schemas/evidence/output.schema.json"), "utf8")));
    const envelope = ajv.getSchema("https://medpipe.dev/schemas/evidence/output.schema.json");
    const payload = ajv.compile(
      JSON.parse(readFileSync(join(ROOT, "schemas/skills/analyze.output.schema.json"), "utf8")),
    );
    expect(envelope?.(output), JSON.stringify(envelope?.errors)).toBe(true);
    expect(payload(output), JSON.stringify(payload.errors)).toBe(true);
    expect(output).toMatchObject({ skill: "analyze", num_cases: 8, errors: 0 });
    const v = await call("verify_run", { run_dir: s.run_dir });
    expect(v.structuredContent?.verdict).toBe("pass");
  });

  it("verify_run has the run's model predict again: an infer output replaced by the reference label fails", async () => {
    // A seeded package in the workspace, and the infer skill run on two images through run_script.
    writeTinyPackage(join(ws.dir, "pkg"), 5, false);
    mkdirSync(join(ws.dir, "imgs"));
    for (const id of ["la_001", "la_002"])
      cpSync(
        join(ROOT, "fixtures/heart_micro/imagesTr", `${id}.nii.gz`),
        join(ws.dir, "imgs", `${id}.nii.gz`),
      );
    const r = await call("run_script", {
      script: "infer",
      args: { model: "pkg", images: "imgs", threads: 1 },
      timeout_s: 300,
    });
    expect(r.isError, r.content[0]?.text).toBeFalsy();
    const runDir = (r.structuredContent as { run_dir: string }).run_dir;
    type Checks = { id: string; verdict: string; message: string }[];
    const modelCheck = (v: Result) =>
      (v.structuredContent?.checks as Checks).find((c) => c.id === "model.predictions");
    const clean = await call("verify_run", { run_dir: runDir, model_checks: "all" });
    expect(clean.structuredContent?.verdict, clean.content[0]?.text).toBe("pass");
    expect(modelCheck(clean)?.verdict, modelCheck(clean)?.message).toBe("pass");
    expect(modelCheck(clean)?.message).toMatch(
      /^re-run on CPU: infer la_001: Dice 1\.0000 .*infer la_002: Dice 1\.0000 /,
    );
    // The adversary re-records every digest; only predicting again shows the file is not the model's.
    const abs = join(ws.dir, "runs", runDir);
    forge(
      abs,
      "infer",
      "predictions/la_001.nii.gz",
      readFileSync(join(ROOT, "fixtures/heart_micro/labelsTr/la_001.nii.gz")),
    );
    const forged = await call("verify_run", { run_dir: runDir, model_checks: "all" });
    expect(forged.structuredContent?.verdict).toBe("fail");
    const failed = (forged.structuredContent?.checks as Checks).filter((c) => c.verdict === "fail");
    expect(failed.map((c) => c.id)).toEqual(["model.predictions"]);
    expect(failed[0]?.message).toMatch(/^infer la_001: Dice 0\.\d+ with the package's prediction: /);
    const bad = await call("verify_run", { run_dir: runDir, model_checks: 0 });
    expect(bad.isError).toBe(true);
  }, 240_000);

  it("runs a pipeline with params", async () => {
    ws.write(
      "pipes/two.yaml",
      'name: two\nparams: { v: 1 }\nstages:\n  a: { skill: emit, with: { value: "${params.v}" } }\n  b: { skill: emit, with: { value: "${a.value * 2}" } }\n',
    );
    const r = await call("run_pipeline", { manifest: "pipes/two.yaml", params: { v: 21 } });
    expect(r.structuredContent).toMatchObject({ status: "succeeded", stages: [{ id: "a" }, { id: "b" }] });
  });

  it("passes shell metacharacters as literal text", async () => {
    const nasty = "$(touch pwned); `touch pwned2` && rm -rf / | cat ${HOME} > x";
    const r = await call("run_script", { script: "emit", args: { value: nasty } });
    expect((r.structuredContent as { output: { value: string } }).output.value).toBe(nasty);
    expect(existsSync(join(ws.dir, "pwned"))).toBe(false);
    expect(existsSync(join(ws.dir, "pwned2"))).toBe(false);
  });

  const hostile: { name: string; tool: string; args: Record<string, unknown>; reason: RegExp }[] = [
    {
      name: "path traversal",
      tool: "run_script",
      args: { script: "emit", args: { value: 1, source: "../../etc/passwd" } },
      reason: /leaves the workspace/,
    },
    {
      name: "absolute path outside",
      tool: "run_script",
      args: { script: "emit", args: { value: 1, source: "/etc/passwd" } },
      reason: /leaves the workspace/,
    },
    {
      name: "symlink escaping the workspace",
      tool: "run_script",
      args: { script: "emit", args: { value: 1, source: "escape/passwd" } },
      reason: /leaves the workspace/,
    },
    {
      name: "undeclared script",
      tool: "run_script",
      args: { script: "/bin/sh", args: {} },
      reason: /not a script declared by a skill manifest/,
    },
    {
      name: "a script file that no manifest declares",
      tool: "run_script",
      args: { script: "data/input.txt", args: {} },
      reason: /not a script declared/,
    },
    {
      name: "undeclared argument",
      tool: "run_script",
      args: { script: "emit", args: { value: 1, colour: "red" } },
      reason: /unknown input --colour/,
    },
    {
      name: "an output dir of its own",
      tool: "run_script",
      args: { script: "emit", args: { value: 1, output_dir: "/tmp/elsewhere" } },
      reason: /--output-dir is not allowed/,
    },
    {
      name: "oversized argument",
      tool: "run_script",
      args: { script: "emit", args: { value: "x".repeat(70_000) } },
      reason: /over the limit of 65536/,
    },
    {
      name: "wrong type",
      tool: "run_script",
      args: { script: "emit", args: { value: 1, count: "many" } },
      reason: /wrong type for input 'count'/,
    },
    {
      name: "a timeout beyond the limit",
      tool: "run_script",
      args: { script: "emit", args: { value: 1 }, timeout_s: 1e9 },
      reason: /timeout_s/,
    },
    {
      name: "a manifest outside the workspace",
      tool: "run_pipeline",
      args: { manifest: "/etc/hosts" },
      reason: /outside the workspace/,
    },
    {
      name: "a pipeline reading outside the workspace",
      tool: "run_pipeline",
      args: { manifest: "pipes/leak.yaml" },
      reason: /leaves the workspace/,
    },
    {
      name: "get_run outside the runs folder",
      tool: "get_run",
      args: { run_dir: "../../etc" },
      reason: /not inside the runs folder/,
    },
    {
      name: "verify_run outside the runs folder",
      tool: "verify_run",
      args: { run_dir: "/tmp" },
      reason: /not inside the runs folder/,
    },
  ];

  it.each(hostile)("refuses $name, writing nothing", async (h) => {
    ws.write(
      "pipes/leak.yaml",
      "name: leak\nstages:\n  a: { skill: emit, with: { value: 1, source: /etc/passwd } }\n",
    );
    const before = runFiles();
    const r = await call(h.tool, h.args);
    expect(r.isError).toBe(true);
    expect(r.content[0]?.text).toMatch(/^refused: /);
    expect(r.content[0]?.text).toMatch(h.reason);
    expect(r.content[0]?.text.split("\n")).toHaveLength(1);
    expect(runFiles()).toEqual(before);
  });

  it("stops a script at its timeout", async () => {
    const r = await call("run_script", {
      script: "sleeper",
      args: { pid_dir: "pids", sleep_ms: 60_000 },
      timeout_s: 1,
    });
    const s = r.structuredContent as { status: string; stages: { reason: string }[] };
    expect(s.status).toBe("failed");
    expect(s.stages[0]?.reason).toMatch(/^timeout after 1\.0 s/);
  });

  it("refuses a third concurrent run", async () => {
    const long = { script: "sleeper", args: { pid_dir: "pids", sleep_ms: 4000 } };
    const first = call("run_script", long);
    const second = call("run_script", long);
    await new Promise((r) => setTimeout(r, 500));
    const third = await call("run_script", { script: "emit", args: { value: 3 } });
    expect(third.isError).toBe(true);
    expect(third.content[0]?.text).toMatch(/too many concurrent runs \(limit 2\)/);
    expect((await first).structuredContent?.status).toBe("succeeded");
    expect((await second).structuredContent?.status).toBe("succeeded");
  });
});
