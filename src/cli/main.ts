// The `pipeline` command. Only commander loads at start-up; each command imports what it needs,
// so `pipeline --help` stays fast.
import { resolve } from "node:path";
import { Command, CommanderError, Option } from "commander";
import type { RunTrustedOpts } from "./eval.js";
import { EXIT, printError } from "./output.js";
import { loadRequest, type PipelineOpts } from "./pipeline-options.js";
import type { RunOpts } from "./run.js";
import type { VerifyOpts } from "./verify.js";

const collect = (v: string, prev: string[]): string[] => [...prev, v];

function pipelineOptions(cmd: Command): Command {
  return cmd
    .option("--smoke", "smoke mode: the manifest's smoke profile (micro fixture, CPU, about a minute)")
    .option("--sanity", "sanity mode: the manifest's sanity profile (reproduce a reference result)")
    .option("--profile <name>", "apply a profile from the manifest")
    .option("--set <key=value>", "override a param (repeatable); the value is read as YAML", collect, [])
    .option(
      "--workdir <dir>",
      "workspace: where runs/ lives and relative paths resolve (default: current folder)",
    )
    .option("--skills-dir <dir>", "also load skills from this folder (repeatable)", collect, [])
    .option("--json", "machine-readable output (errors too)");
}

function action<A extends unknown[]>(f: (...args: A) => Promise<number>) {
  return async (...args: A): Promise<void> => {
    const opts = args.find(
      (a): a is { json?: boolean } => typeof a === "object" && a !== null && !(a instanceof Command),
    );
    let code: number;
    try {
      code = await f(...args);
    } catch (err) {
      code = printError(err, Boolean(opts?.json));
    }
    process.exitCode = code;
  };
}

const program = new Command("pipeline")
  .description("medpipe: YAML-driven pipelines for 3D/2D medical image segmentation, with checked evidence")
  .version("0.1.0")
  .showHelpAfterError()
  .enablePositionalOptions()
  .exitOverride();

pipelineOptions(
  program
    .command("run <manifest>")
    .description("run a pipeline; prints the run folder as the last line")
    .option(
      "--resume",
      "continue the latest run of this pipeline: finished stages with unchanged keys are kept",
    )
    .option("--jobs <n>", "stages running at once (default: the CPU count; 256 with --executor slurm)")
    .option(
      "--stages-per-gpu <n>",
      "GPU stages sharing one device at a time (default: the manifest's stages_per_gpu, else 1)",
    )
    .option("--runs-dir <dir>", "where runs go (default: <workdir>/runs)")
    .option("--executor <name>", "local (default) or slurm")
    .option("--cluster <file>", "cluster configuration (YAML) for --executor slurm"),
).action(
  action(async (manifest: string, o: RunOpts) => {
    const { runCommand } = await import("./run.js");
    return runCommand(manifest, o);
  }),
);

program
  .command("run-script <script> [args...]")
  .description(
    "run one skill script as the engine runs a stage (validation, run folder, evidence); args: --input value ...",
  )
  .option("--smoke", "smoke mode (the skill's smoke defaults apply)")
  .option("--timeout <seconds>", "stop the script after this many seconds")
  .option(
    "--workdir <dir>",
    "workspace: paths must stay inside it; runs/ lives there (default: current folder)",
  )
  .option("--runs-dir <dir>", "where runs go (default: <workdir>/runs)")
  .option("--skills-dir <dir>", "also load skills from this folder (repeatable)", collect, [])
  .option("--json", "NDJSON progress events and a final JSON line")
  .passThroughOptions()
  .allowUnknownOption()
  .action(
    action(
      async (
        script: string,
        args: string[],
        o: {
          smoke?: boolean;
          timeout?: string;
          workdir?: string;
          runsDir?: string;
          skillsDir: string[];
          json?: boolean;
        },
      ) => {
        const { runScriptCommand } = await import("./run-script.js");
        return runScriptCommand(script, args, o);
      },
    ),
  );

program
  .command("infer <model> <images...>")
  .description(
    "segment images with a model package (the infer skill, run as run-script runs it) and copy the predictions to --out; prints their paths, then the run folder",
  )
  .requiredOption(
    "--out <dir>",
    "folder for the predictions, <case>.nii.gz (created if missing); files already there stay, a prediction's namesake is replaced",
  )
  .option("--backend <name>", "onnxruntime (default: CPU, no Python) or torch (CUDA when available)")
  .option("--tta", "test-time augmentation by flips (default: the plan's inference.tta)")
  .option("--threads <n>", "intra-op threads of the backend (default: all cores)")
  .option("--probabilities", "also write per-class probabilities to <out>/probabilities/")
  .option(
    "--workdir <dir>",
    "confine the model and images to this folder, as run-script does; runs/ then lives there (default: paths anywhere, runs/ in the current folder)",
  )
  .option("--runs-dir <dir>", "where runs go (default: runs/ in the current folder, or in --workdir)")
  .option("--json", "NDJSON progress events, then one {event: predictions} line")
  .addHelpText(
    "after",
    "\nExit 0 every image predicted; 1 the run failed, or some images were not (the others' predictions\n" +
      "are still copied and listed, each missing one named on stderr); 2 usage error, e.g. --out is a\n" +
      "file or two images share a case name (dup1/la_001.nii.gz, dup2/la_001.nii.gz), found before any inference.",
  )
  .action(
    action(async (model: string, images: string[], o: import("./infer.js").InferOpts) => {
      const { inferCommand } = await import("./infer.js");
      return inferCommand(model, images, o);
    }),
  );

pipelineOptions(
  program.command("validate <manifest>").description("check a manifest and its skills without running"),
).action(
  action(async (manifest: string, o: PipelineOpts) => {
    const { loadPipeline } = await import("../run/load.js");
    const { spec, graph } = loadPipeline(loadRequest(manifest, o), "inspect");
    if (o.json) {
      process.stdout.write(
        `${JSON.stringify({ ok: true, pipeline: spec.name, mode: spec.mode, profile: spec.profile, stages: graph.nodes.map((n) => n.id) })}\n`,
      );
    } else {
      process.stdout.write(
        `ok: ${spec.name}: ${spec.stages.length} stages, ${graph.nodes.length} instances (${spec.mode})\n`,
      );
    }
    return EXIT.ok;
  }),
);

pipelineOptions(
  program
    .command("plan <manifest>")
    .description("dry run: each stage, whether it would run or come from the cache, and why")
    .option("--runs-dir <dir>", "where runs are (default: <workdir>/runs)"),
).action(
  action(async (manifest: string, o: RunOpts) => {
    const { loadPipeline } = await import("../run/load.js");
    const { planRun } = await import("../run/plan.js");
    const req = loadRequest(manifest, o);
    const entries = await planRun(loadPipeline(req, "run"), {
      runsDir: resolve(req.workspace, o.runsDir ?? "runs"),
      workspace: req.workspace,
      env: req.env,
    });
    if (o.json) process.stdout.write(`${JSON.stringify({ ok: true, stages: entries })}\n`);
    else {
      const width = Math.max(...entries.map((e) => e.stage.length));
      for (const e of entries)
        process.stdout.write(`${e.decision.padEnd(6)} ${e.stage.padEnd(width)}  (${e.skill})  ${e.reason}\n`);
    }
    return EXIT.ok;
  }),
);

pipelineOptions(
  program.command("graph <manifest>").description("print the stage graph as a Mermaid flowchart"),
).action(
  action(async (manifest: string, o: PipelineOpts) => {
    const { loadPipeline } = await import("../run/load.js");
    const { toMermaid } = await import("../graph/mermaid.js");
    process.stdout.write(toMermaid(loadPipeline(loadRequest(manifest, o), "inspect").graph));
    return EXIT.ok;
  }),
);

const skills = program
  .command("skills")
  .description("list the skills")
  .option("--skills-dir <dir>", "also load skills from this folder (repeatable)", collect, [])
  .option("--json", "machine-readable output")
  .action(
    action(async (o: { skillsDir: string[]; json?: boolean }) => {
      const { listSkills } = await import("./skills.js");
      return listSkills(o);
    }),
  );
skills
  .command("show <id>")
  .description("a skill's inputs and outputs")
  .option("--skills-dir <dir>", "also load skills from this folder (repeatable)", collect, [])
  .option("--json", "machine-readable output")
  .action(
    action(async (id: string, o: { skillsDir: string[]; json?: boolean }) => {
      const { showSkill } = await import("./skills.js");
      return showSkill(id, { ...o, skillsDir: [...o.skillsDir, ...(skills.opts().skillsDir as string[])] });
    }),
  );

program
  .command("why <run> <stage>")
  .description("why a stage of a run was run rather than taken from the cache")
  .option("--json", "machine-readable output")
  .action(
    action(async (run: string, stage: string, o: { json?: boolean }) => {
      const { explainStage } = await import("./why.js");
      return explainStage(run, stage, o);
    }),
  );

program
  .command("evaluate")
  .description(
    "score predicted segmentations against references: overlap, volume, lesion and surface metrics",
  )
  .requiredOption("--pred <path>", "prediction: a .nii.gz/.nii/.npy file, or a folder of them")
  .requiredOption(
    "--gt <path>",
    "reference: a file or folder like --pred; cases pair by name (_0000 ignored)",
  )
  .option("--labels <list>", "labels to score, e.g. 1,2 (default: every nonzero label in the references)")
  .option("--cases <list>", "only these cases, e.g. la_003,la_007 (other files in the folders are ignored)")
  .option("--tolerances <mm>", "NSD tolerances in mm (default 0.5,1,2)")
  .option(
    "--json",
    'one JSON object {cases, summary, definition, notes}; NaN/±Infinity as the strings "NaN", "Infinity", "-Infinity"',
  )
  .option("--csv", "per-case rows as CSV with a header; NaN/±Infinity written as in --json")
  .option("--no-surface", "skip HD95, ASSD and NSD (the slow part)")
  .addHelpText(
    "after",
    "\nNIfTI pairs are compared in closest-canonical RAS and must share shape and affine (1e-3 mm);\n" +
      "spacing comes from --gt (.npy: spacing 1). Summary: mean ± sample std per label, NaN and\n" +
      "infinite values left out and counted. Exit 0 evaluated, 2 usage error or mismatched grids.",
  )
  .action(
    action(
      async (o: {
        pred: string;
        gt: string;
        labels?: string;
        cases?: string;
        tolerances?: string;
        json?: boolean;
        csv?: boolean;
        surface: boolean;
      }) => {
        const { evaluateCommand } = await import("./evaluate.js");
        return evaluateCommand(o);
      },
    ),
  );

program
  .command("verify <run>")
  .description("audit a finished run as data: digests, schemas, claims; exit 1 on any failed check")
  .option(
    "--reference <file>",
    "judge the aggregate metrics against a reference's ranges (eval/references/*.yaml)",
  )
  .option("--baseline <run>", "judge the metrics not worse than a baseline run of the same pipeline")
  .option(
    "--model-checks <n>",
    "held-out cases whose stored prediction its fold's model re-makes: a number drawn at random, or all",
    "1",
  )
  .option("--skills-dir <dir>", "also load skills from this folder (repeatable)", collect, [])
  .option("--json", "machine-readable output")
  .action(
    action(async (run: string, o: VerifyOpts) => {
      const { verifyCommand } = await import("./verify.js");
      return verifyCommand(run, o);
    }),
  );

program
  .command("eval")
  .description("the evaluation harness")
  .command("run-trusted <skill>")
  .description(
    "run a skill (skills/NAME) in smoke mode on a fixture into OUT/skill_run, verify its evidence, write OUT/trust_summary.json",
  )
  .requiredOption("--fixture <dir>", "the fixture: the skill's one required path input, or DIR/inputs.json")
  .requiredOption("--out <dir>", "a new or empty folder for skill_run/ and trust_summary.json")
  .option("--skills-dir <dir>", "also load skills from this folder (repeatable)", collect, [])
  .option("--json", "NDJSON progress events and the summary as the final JSON line")
  .action(
    action(async (skill: string, o: RunTrustedOpts) => {
      const { runTrustedCommand } = await import("./eval.js");
      return runTrustedCommand(skill, o);
    }),
  );

program
  .command("mcp")
  .description(
    "serve list_skills, describe_skill, run_script, run_pipeline, get_run, verify_run over MCP (stdio)",
  )
  .option("--workdir <dir>", "workspace the agent may use (default: current folder)")
  .option("--runs-dir <dir>", "where runs go (default: <workdir>/runs)")
  .option("--skills-dir <dir>", "also load skills from this folder (repeatable)", collect, [])
  .action(
    action(async (o: { workdir?: string; runsDir?: string; skillsDir: string[] }) => {
      // The server would otherwise start and fail each tool call on a missing skills folder.
      const { skillDirs } = await import("../skills/registry.js");
      skillDirs(o.skillsDir);
      const { mcpCommand } = await import("./mcp.js");
      return mcpCommand(o);
    }),
  );

program
  .command("doctor")
  .description(
    "check Node, Python, torch (and that it writes model.onnx), CUDA, GPUs and onnxruntime, with the fix for anything missing",
  )
  .option("--json", "machine-readable output")
  .action(
    action(async (o: { json?: boolean }) => {
      const { doctor } = await import("./doctor.js");
      return doctor(o);
    }),
  );

program
  .command("fixtures")
  .description("synthetic datasets for tests and benchmarks")
  .command("make <kind>")
  .description("generate a deterministic synthetic dataset: heart (MR), spleen (CT) or tissue2d (2D slices)")
  .option("--cases <n>", "number of cases (default: the committed micro fixture's)")
  .option("--size <sizes>", "grid size per axis, comma-separated, e.g. 320,320,110 (2 sizes for tissue2d)")
  .option("--seed <n>", "random seed; the same arguments give the same bytes")
  .requiredOption("--out <dir>", "output folder (missing, empty, or an earlier fixture to replace)")
  .action(
    action(async (kind: string, o: { cases?: string; size?: string; seed?: string; out: string }) => {
      const { fixturesMake } = await import("./fixtures.js");
      return fixturesMake(kind, o);
    }),
  );

program.addOption(new Option("--debug", "show stack traces of internal errors").hideHelp());

// A reader that stops early (`pipeline plan M | head`) closes the pipe: what is left to print has
// nowhere to go, which is no failure of the command (a run goes on to its end and its evidence).
for (const stream of [process.stdout, process.stderr])
  stream.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code !== "EPIPE") throw err;
  });

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode =
      err.code === "commander.helpDisplayed" || err.code === "commander.version" || err.exitCode === 0
        ? 0
        : EXIT.usage;
  } else {
    process.exitCode = printError(err, process.argv.includes("--json"));
  }
}
