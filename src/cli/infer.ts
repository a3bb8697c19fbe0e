// `pipeline infer MODEL IMAGES... --out DIR`: the infer skill run exactly as `pipeline run-script
// infer` runs it (input checks, run folder, evidence), then its predictions copied into DIR.
// stdout: one line per prediction written to DIR, then the run folder as the last line.
// Exit 1 when any requested image got no prediction, though the others are copied: a caller
// that checks only the exit code must not take a partial folder for a complete one.
// A person at a shell names a model and scans wherever they are, so by default nothing is
// confined (the workspace is the file system root) and the run goes to runs/ in the current
// folder; --workdir DIR confines the paths to DIR as run-script does, and the run goes to DIR/runs.
import { copyFile, mkdir, readFile, rename, rm, stat } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { runScript } from "../agent/run-script.js";
import { scanImageCases } from "../infer/images.js";
import { UsageError } from "../manifest/diagnostics.js";
import { checkFolderFlag, EXIT } from "./output.js";
import { startSession } from "./run-session.js";

export interface InferOpts {
  out: string;
  backend?: string;
  tta?: boolean;
  threads?: string;
  probabilities?: boolean;
  workdir?: string;
  runsDir?: string;
  json?: boolean;
}

interface InferPayload {
  cases: Array<{ id: string; output: string; probabilities: string | null }>;
  failed: Array<{ case: string; file: string; reason: string }>;
}

const BACKENDS = ["onnxruntime", "torch"];

/** The skill's arguments, as `run-script infer` takes them; paths absolute (from the current folder). */
export function inferArgs(model: string, images: string[], o: InferOpts): string[] {
  if (images.length === 0) throw new UsageError("infer: give at least one image (a file or a folder)");
  const backend = o.backend ?? "onnxruntime";
  if (!BACKENDS.includes(backend))
    throw new UsageError(`--backend ${backend}: expected one of ${BACKENDS.join(", ")}`);
  const args = ["--model", resolve(model)];
  const paths = images.map((p) => resolve(p));
  // Always JSON: a path that reads as a JSON number or keyword must stay a path.
  args.push("--images", JSON.stringify(paths.length === 1 ? paths[0] : paths), "--backend", backend);
  if (o.tta) args.push("--tta", "true");
  if (o.probabilities) args.push("--save_probabilities", "true");
  if (o.threads !== undefined) {
    const n = Number(o.threads);
    if (!Number.isInteger(n) || n < 1)
      throw new UsageError(`--threads ${o.threads}: expected an integer >= 1`);
    args.push("--threads", String(n));
  }
  return args;
}

/** Copies `src` to `dst` through a temp name: DIR never holds half a file under a case's name. */
async function place(src: string, dst: string): Promise<void> {
  const tmp = `${dst}.tmp-${process.pid}`;
  try {
    await copyFile(src, tmp);
    await rename(tmp, dst);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/** Missing paths named with the folder they were resolved in (the skill's check says "workspace /"). */
async function checkExists(model: string, images: string[]): Promise<void> {
  const note = `relative paths resolve against the current folder, ${process.cwd()}`;
  if (!(await stat(resolve(model)).catch(() => null)))
    throw new UsageError(`model ${resolve(model)}: no such folder (${note})`);
  for (const image of images)
    if (!(await stat(resolve(image)).catch(() => null)))
      throw new UsageError(`image ${resolve(image)}: no such file or folder (${note})`);
}

/**
 * Two images that make one case id would write one <id>.nii.gz in --out: refused here, naming
 * both, rather than failing the second case after the first one's inference. A model or image
 * this scan cannot read is left to the skill's own checks, which name the problem.
 */
async function checkDistinctCases(model: string, images: string[]): Promise<void> {
  let dims: 2 | 3;
  try {
    const plan = JSON.parse(await readFile(join(resolve(model), "plan.json"), "utf8")) as {
      spatial_dims?: unknown;
    };
    if (plan.spatial_dims !== 2 && plan.spatial_dims !== 3) return;
    dims = plan.spatial_dims;
  } catch {
    return;
  }
  const owner = new Map<string, string>();
  for (const image of images) {
    const scan = await scanImageCases(resolve(image), dims).catch(() => null);
    for (const c of scan?.cases ?? []) {
      const first = owner.get(c.id);
      const file = c.files[0]!;
      if (first !== undefined)
        throw new UsageError(
          `images ${first} and ${file} are both case ${c.id}: each would be ${c.id}${dims === 3 ? ".nii.gz" : ".npy"} in --out; rename one or run them separately`,
        );
      owner.set(c.id, file);
    }
  }
}

export async function inferCommand(model: string, images: string[], o: InferOpts): Promise<number> {
  const args = inferArgs(model, images, o);
  const out = resolve(o.out);
  checkFolderFlag("--out", out);
  const runsDir = resolve(o.workdir ?? process.cwd(), o.runsDir ?? "runs");
  checkFolderFlag("--runs-dir", runsDir);
  await checkExists(model, images);
  await checkDistinctCases(model, images);
  const workspace = o.workdir === undefined ? "/" : resolve(o.workdir);
  const session = await startSession(o.json);
  let result: Awaited<ReturnType<typeof runScript>>;
  try {
    result = await runScript({
      script: "infer",
      args,
      mode: "full",
      workspace,
      env: process.env as Record<string, string | undefined>,
      skillsDirs: [],
      runsDir,
      jobs: 1,
      resume: false,
      ...session,
    });
  } catch (err) {
    await session.reporter.close();
    throw err;
  }
  await session.reporter.close();
  let failedCases = 0;
  if (result.status === "succeeded") {
    const stage = join(result.runDir, "stages", "infer");
    const payload = JSON.parse(await readFile(join(stage, "output.json"), "utf8")) as InferPayload;
    await mkdir(out, { recursive: true });
    const written: string[] = [];
    for (const c of payload.cases) {
      const dst = join(out, basename(c.output));
      await place(join(stage, c.output), dst);
      written.push(dst);
      if (c.probabilities) {
        await mkdir(join(out, "probabilities"), { recursive: true });
        const p = join(out, "probabilities", basename(c.probabilities));
        await place(join(stage, c.probabilities), p);
        written.push(p);
      }
    }
    failedCases = payload.failed.length;
    for (const f of payload.failed)
      process.stderr.write(`error: case ${f.case} not predicted: ${f.file}: ${f.reason}\n`);
    if (o.json)
      process.stdout.write(
        `${JSON.stringify({ event: "predictions", out, files: written, failed: payload.failed, run_dir: result.runDir })}\n`,
      );
    else for (const f of written) process.stdout.write(`${f}\n`);
  }
  // As run-script: the run folder last (with --json the events carry it).
  if (!o.json) process.stdout.write(`${result.runDir}\n`);
  // Every requested image or none: a partial result is kept and listed, but is no success.
  if (result.status === "succeeded") return failedCases ? EXIT.failed : EXIT.ok;
  return result.status === "interrupted" ? EXIT.interrupted : EXIT.failed;
}
