// The torch backend: one `python -m medpipe.infer_worker` process per stage runs the sliding
// window on a model package's weights.safetensors (CUDA when torch sees a GPU, else the CPU).
// Volumes travel as .npy files in a private temp folder: the preprocessed volume in, float32
// probabilities out, both in the project's layout (first axis fastest, channel-planar), so
// neither side transposes anything. Requests go one at a time over the child's stdin; each
// gets one NDJSON answer on its stdout. A failed request fails only its case.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { readNpy, writeNpy } from "../imaging/index.js";
import type { ChannelVolume } from "../inference/index.js";
import { PROJECT_ROOT } from "../paths.js";
import { findPython, pythonProblem } from "../run/python.js";
import { InferError } from "./errors.js";
import type { WindowSettings } from "./package.js";

export type TorchDevice = "auto" | "cpu" | "cuda";

export interface TorchBackendOptions {
  /** auto (default): CUDA when torch sees a GPU, else the CPU. */
  device?: TorchDevice;
  /** torch intra-op threads; default torch's. */
  threads?: number;
}

/** What the worker reported once its network was loaded. */
export interface TorchWorkerInfo {
  python: string;
  device: string;
  torch: string;
  inChannels: number;
  outChannels: number;
  spatialDims: number;
  weightsDigest: string;
}

type Answer = Record<string, unknown> & { event: string };

const oneLine = (s: string) =>
  s
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .join(" ");

export class TorchVolumeModel {
  private readonly answers: Answer[] = [];
  private waiting: ((a: Answer | null) => void) | null = null;
  private exited: string | null = null;
  private lastErr = "";
  private counter = 0;
  private queue: Promise<unknown> = Promise.resolve();
  /** The worker's high-water marks so far, as it reports them after each volume (MiB). */
  readonly peak: { rssMb: number | null; gpuMb: number | null } = { rssMb: null, gpuMb: null };

  private constructor(
    readonly source: string,
    private readonly child: ChildProcess,
    private readonly dir: string,
  ) {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      let parsed: unknown = null;
      try {
        parsed = JSON.parse(line);
      } catch {
        parsed = null;
      }
      if (parsed && typeof parsed === "object" && typeof (parsed as Answer).event === "string")
        this.deliver(parsed as Answer);
      else process.stderr.write(`${line}\n`); // never into our own NDJSON
    });
    createInterface({ input: child.stderr! }).on("line", (line) => {
      if (!line.trim()) return;
      this.lastErr = line;
      // Its own fatal one-liner comes back as an error event, which we report; the rest
      // (warnings) goes to the stage log.
      if (!line.startsWith("medpipe.infer_worker: ")) process.stderr.write(`${line}\n`);
    });
    child.on("error", (err) => this.end(err.message));
    // A write to a worker that has just died fails with EPIPE; its "close" tells why.
    child.stdin!.on("error", () => undefined);
    child.on("close", (code, signal) =>
      this.end(`the torch worker ended (${signal ? `signal ${signal}` : `exit code ${code}`})`),
    );
  }

  /** Starts the worker and waits for its network to load. */
  static async start(
    weightsPath: string,
    settings: WindowSettings,
    options: TorchBackendOptions = {},
  ): Promise<{ model: TorchVolumeModel; info: TorchWorkerInfo }> {
    if (!(await stat(weightsPath).catch(() => null))?.isFile())
      throw new InferError(weightsPath, "missing: backend torch needs the package's weights.safetensors");
    const { runtime, probes } = findPython();
    if (!runtime)
      throw new Error(
        `backend torch: ${pythonProblem(probes)}; ${process.env.PIPELINE_PYTHON ? "correct PIPELINE_PYTHON" : "install torch, set PIPELINE_PYTHON"}, or use backend onnxruntime`,
      );
    const inference = {
      patch_size: settings.patch,
      overlap: settings.overlap,
      mode: settings.mode,
      sw_batch_size: settings.swBatchSize,
      tta: settings.tta,
    };
    const args = ["-m", "medpipe.infer_worker", "--weights", weightsPath];
    args.push("--inference", JSON.stringify(inference), "--device", options.device ?? "auto");
    if (options.threads !== undefined) args.push("--threads", String(options.threads));
    const dir = await mkdtemp(join(tmpdir(), "medpipe-torch-"));
    const child = spawn(runtime.command, args, {
      env: {
        ...process.env,
        PYTHONPATH: [join(PROJECT_ROOT, "src", "py"), process.env.PYTHONPATH].filter(Boolean).join(":"),
        PYTHONDONTWRITEBYTECODE: "1",
        PYTHONUNBUFFERED: "1",
      },
      stdio: ["pipe", "pipe", "pipe"],
    });
    const model = new TorchVolumeModel(weightsPath, child, dir);
    const ready = await model.next();
    if (ready?.event !== "ready") {
      await model.release();
      const why = ready?.event === "error" ? String(ready.message) : model.reason();
      throw new InferError(weightsPath, `backend torch could not load the network: ${why}`);
    }
    return {
      model,
      info: {
        python: runtime.command,
        device: String(ready.device),
        torch: String(ready.torch),
        inChannels: Number(ready.in_channels),
        outChannels: Number(ready.out_channels),
        spatialDims: Number(ready.spatial_dims),
        weightsDigest: String(ready.weights_digest),
      },
    };
  }

  /** The worker's process id (one worker serves every volume of a stage). */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /**
   * Softmax probabilities [K, ...spatial] of a preprocessed volume [C, ...spatial], by the
   * shared sliding-window specification with the settings given at start. Calls queue up.
   */
  predictVolume(volume: ChannelVolume): Promise<ChannelVolume> {
    const run = this.queue.then(() => this.request(volume));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async request(volume: ChannelVolume): Promise<ChannelVolume> {
    if (this.exited) throw new Error(this.reason());
    const [channels = 1, ...spatial] = volume.shape;
    const id = `v${++this.counter}`;
    const image = join(this.dir, `${id}.image.npy`);
    const output = join(this.dir, `${id}.probs.npy`);
    try {
      await writeNpy(image, {
        data: volume.data,
        dtype: "float32",
        shape: [...spatial, channels],
        fortranOrder: true,
      });
      this.child.stdin!.write(`${JSON.stringify({ id, image, output })}\n`);
      const answer = await this.next();
      if (!answer) throw new Error(this.reason());
      if (answer.event === "case_error")
        throw new Error(
          `backend torch: ${String(answer.message).replaceAll(`${image}: `, "")}${answer.status === "oom" ? " (out of memory: lower sw_batch_size or turn tta off)" : ""}`,
        );
      if (answer.event !== "case" || answer.id !== id)
        throw new Error(`backend torch: unexpected answer ${JSON.stringify(answer).slice(0, 200)}`);
      const most = (a: number | null, b: unknown) => (typeof b === "number" ? Math.max(a ?? 0, b) : a);
      this.peak.rssMb = most(this.peak.rssMb, answer.peak_rss_mb);
      this.peak.gpuMb = most(this.peak.gpuMb, answer.peak_gpu_mb);
      const probs = await readNpy(output);
      const classes = probs.shape[spatial.length] ?? 0;
      if (
        !(probs.data instanceof Float32Array) ||
        !probs.fortranOrder ||
        probs.shape.length !== spatial.length + 1 ||
        spatial.some((n, a) => probs.shape[a] !== n)
      )
        throw new Error(
          `backend torch: probabilities of shape (${probs.shape.join(", ")}) ${probs.dtype}, expected (${spatial.join(", ")}, K) float32 in Fortran order`,
        );
      return { data: probs.data, shape: [classes, ...spatial] };
    } finally {
      await rm(image, { force: true });
      await rm(output, { force: true });
    }
  }

  /** Ends the worker (EOF on its stdin) and removes the temp folder. */
  async release(): Promise<void> {
    if (!this.exited) {
      const closed = new Promise<void>((done) => this.child.once("close", () => done()));
      this.child.stdin!.end();
      const timer = setTimeout(() => this.child.kill("SIGTERM"), 10_000);
      await closed;
      clearTimeout(timer);
    }
    await rm(this.dir, { recursive: true, force: true });
  }

  private reason(): string {
    return oneLine(`${this.exited ?? "the torch worker ended"}${this.lastErr ? `: ${this.lastErr}` : ""}`);
  }

  private deliver(a: Answer): void {
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = null;
      w(a);
    } else this.answers.push(a);
  }

  private end(why: string): void {
    if (this.exited) return;
    this.exited = why;
    if (this.waiting) {
      const w = this.waiting;
      this.waiting = null;
      w(null);
    }
  }

  /** The next answer, or null once the worker has ended. */
  private next(): Promise<Answer | null> {
    const a = this.answers.shift();
    if (a) return Promise.resolve(a);
    if (this.exited) return Promise.resolve(null);
    return new Promise((resolve) => {
      this.waiting = resolve;
    });
  }
}
