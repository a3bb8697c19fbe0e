// The device pool alone (no processes): slots per device, least busy first, waiters in order, and
// a ledger shared by runs.
import { describe, expect, it } from "vitest";
import { DeviceLedger, GpuPool } from "./gpus.js";

describe("GpuPool", () => {
  it("gives each device to one stage at a time by default", async () => {
    const pool = new GpuPool(["0", "1"]);
    expect([await pool.acquire(), await pool.acquire()]).toEqual(["0", "1"]);
    let third: string | null = null;
    const waiting = pool.acquire().then((d) => {
      third = d;
    });
    await Promise.resolve();
    expect(third).toBeNull(); // both taken: it waits
    pool.release("1");
    await waiting;
    expect(third).toBe("1");
  });

  it("with perDevice 2, spreads over the devices before it shares one, then fills the least busy", async () => {
    const pool = new GpuPool(["0", "1"], 2);
    const got = [await pool.acquire(), await pool.acquire(), await pool.acquire()];
    expect(got).toEqual(["0", "1", "0"]); // 0 and 1 once each, then 0 shared
    pool.release("0"); // busy: 0 once, 1 once
    pool.release("1"); // busy: 0 once
    expect(await pool.acquire()).toBe("1"); // the idle device, not the one already in use
    expect(await pool.acquire()).toBe("0");
    expect(await pool.acquire()).toBe("1");
    let next: string | null = null;
    const waiting = pool.acquire().then((d) => {
      next = d;
    });
    await Promise.resolve();
    expect(next).toBeNull(); // four slots taken
    pool.release("0");
    await waiting;
    expect(next).toBe("0");
  });

  it("two runs sharing a ledger count each other's stages, each within its own limit", async () => {
    // One GPU. Run A allows 3 stages per device (a cross-validation), run B 1 (one training).
    const ledger = new DeviceLedger(["0"]);
    const a = new GpuPool(["0"], 3, ledger);
    const b = new GpuPool(["0"], 1, ledger);
    expect(await a.acquire()).toBe("0"); // A: 1 on the device
    let bGot: string | null = null;
    const bWaits = b.acquire().then((d) => {
      bGot = d;
    });
    await Promise.resolve();
    expect(bGot).toBeNull(); // B wants a device with fewer than 1 stage: it waits
    expect(await a.acquire()).toBe("0"); // A still has room (2 < 3)
    a.release("0"); // 1 left: not room enough for B
    await Promise.resolve();
    expect(bGot).toBeNull();
    a.release("0"); // 0 left: B goes
    await bWaits;
    expect(bGot).toBe("0");
    let aGot: string | null = null;
    const aWaits = a.acquire().then((d) => {
      aGot = d;
    });
    await Promise.resolve();
    expect(aGot).toBe("0"); // B's one stage leaves room under A's limit of 3
    await aWaits;
    // Separate pools (no shared ledger) each count their own stages only.
    const c = new GpuPool(["0"], 1);
    expect(await c.acquire()).toBe("0");
  });

  it("an empty pool has size 0 (stages then run on the CPU)", () => {
    expect(new GpuPool([], 3).size).toBe(0);
  });
});
