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
 * The stages running on each device, shared by every run of one process that hands it to
 * GpuPool (the MCP server's concurrent runs): a stage goes to the least busy device that has
 * fewer stages than its own run's limit (so stages spread before they share), else it waits; a
 * freed slot goes to the first waiter it fits.
 */
export class DeviceLedger {
  private readonly busy: Map<string, number>;
  private readonly waiters: { limit: number; grant: (d: string) => void }[] = [];
  constructor(readonly devices: string[]) {
    this.busy = new Map(devices.map((d) => [d, 0]));
  }
  private roomFor(limit: number): string | undefined {
    let pick: string | undefined;
    for (const d of this.devices) {
      const n = this.busy.get(d) as number;
      if (n < limit && (pick === undefined || n < (this.busy.get(pick) as number))) pick = d;
    }
    return pick;
  }
  acquire(limit: number): Promise<string> {
    const pick = this.roomFor(limit);
    if (pick === undefined) return new Promise((grant) => this.waiters.push({ limit, grant }));
    this.busy.set(pick, (this.busy.get(pick) as number) + 1);
    return Promise.resolve(pick);
  }
  release(d: string): void {
    this.busy.set(d, (this.busy.get(d) as number) - 1);
    for (let i = 0; i < this.waiters.length; i++) {
      const w = this.waiters[i] as (typeof this.waiters)[number];
      const pick = this.roomFor(w.limit);
      if (pick === undefined) continue;
      this.waiters.splice(i, 1);
      this.busy.set(pick, (this.busy.get(pick) as number) + 1);
      w.grant(pick);
      return; // one slot was freed: one stage takes it
    }
  }
}

/**
 * A run's view of the devices: a stage of this run goes to a device running fewer than
 * `perDevice` stages, its own run's or those of other runs sharing the ledger.
 */
export class GpuPool {
  readonly ledger: DeviceLedger;
  constructor(
    readonly devices: string[],
    readonly perDevice = 1,
    ledger?: DeviceLedger,
  ) {
    this.ledger = ledger ?? new DeviceLedger(devices);
  }
  get size(): number {
    return this.devices.length;
  }
  acquire(): Promise<string> {
    return this.ledger.acquire(this.perDevice);
  }
  release(d: string): void {
    this.ledger.release(d);
  }
}
