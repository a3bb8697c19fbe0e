import { spawnSync } from "node:child_process";

/** GPUs this run may use: a pre-set CUDA_VISIBLE_DEVICES wins, else nvidia-smi, else none. */
export function detectGpus(env: NodeJS.ProcessEnv = process.env): string[] {
  const preset = env.CUDA_VISIBLE_DEVICES;
  if (preset !== undefined)
    return preset
      .split(",")
      .map((s) => s.trim())
      .filter((s) => s !== "" && s !== "-1");
  const r = spawnSync("nvidia-smi", ["--query-gpu=index", "--format=csv,noheader"], {
    encoding: "utf8",
    timeout: 10_000,
  });
  if (r.status !== 0 || !r.stdout) return [];
  return r.stdout
    .split("\n")
    .map((s) => s.trim())
    .filter(Boolean);
}

/**
 * Hands out devices, each to at most `perDevice` stages at once: the least busy device first (so
 * stages spread before they share); a stage waits while every slot is taken.
 */
export class GpuPool {
  private readonly busy: Map<string, number>;
  private readonly waiters: ((d: string) => void)[] = [];
  constructor(
    readonly devices: string[],
    readonly perDevice = 1,
  ) {
    this.busy = new Map(devices.map((d) => [d, 0]));
  }
  get size(): number {
    return this.devices.length;
  }
  acquire(): Promise<string> {
    let pick: string | undefined;
    for (const d of this.devices) {
      const n = this.busy.get(d) as number;
      if (n < this.perDevice && (pick === undefined || n < (this.busy.get(pick) as number))) pick = d;
    }
    if (pick === undefined) return new Promise((res) => this.waiters.push(res));
    this.busy.set(pick, (this.busy.get(pick) as number) + 1);
    return Promise.resolve(pick);
  }
  release(d: string): void {
    const next = this.waiters.shift();
    if (next)
      next(d); // every slot was taken: the freed one is the only one
    else this.busy.set(d, (this.busy.get(d) as number) - 1);
  }
}
