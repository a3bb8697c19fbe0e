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

/** Hands out devices one stage at a time; a stage waits while all are taken. */
export class GpuPool {
  private readonly free: string[];
  private readonly waiters: ((d: string) => void)[] = [];
  constructor(readonly devices: string[]) {
    this.free = [...devices];
  }
  get size(): number {
    return this.devices.length;
  }
  acquire(): Promise<string> {
    const d = this.free.shift();
    if (d !== undefined) return Promise.resolve(d);
    return new Promise((res) => this.waiters.push(res));
  }
  release(d: string): void {
    const next = this.waiters.shift();
    if (next) next(d);
    else this.free.push(d);
  }
}
