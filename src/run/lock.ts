// One process at a time in a run folder: a run and a --resume of it (or two resumes) would rerun
// the same stages into the same folders and overwrite each other's run.json and evidence.json.
import {
  closeSync,
  linkSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { UsageError } from "../manifest/diagnostics.js";

export interface RunLock {
  /** Removes the lock file if it is still this process's. Safe to call more than once. */
  release(): void;
}

interface Holder {
  pid: number;
  host: string;
  started: string;
}

export const LOCK_FILE = "run.lock";

// A lock file with no readable holder is one being written right now, unless it is older than
// this: then its writer died between creating and filling it.
const UNREADABLE_GRACE_MS = 10_000;

/**
 * Takes the run folder's lock (a file created with O_EXCL holding pid, host and start time), or
 * throws a usage error naming the holder. A lock left by a process of this host that is no longer
 * running is taken over, with a note on stderr.
 */
export function lockRun(runDir: string): RunLock {
  const path = join(runDir, LOCK_FILE);
  const mine: Holder = { pid: process.pid, host: hostname(), started: new Date().toISOString() };
  const text = `${JSON.stringify(mine)}\n`;
  for (let attempt = 0; attempt < 5; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, "wx");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const seen = readLock(path);
      if (seen === undefined) continue; // gone meanwhile: try again
      if (!isStale(path, seen)) throw heldError(runDir, seen);
      if (takeOver(path, seen))
        process.stderr.write(
          `note: ${runDir}: taking over the lock of pid ${seen?.pid ?? "(unknown)"}, which is no longer running\n`,
        );
      continue;
    }
    try {
      writeSync(fd, text);
    } finally {
      closeSync(fd);
    }
    let released = false;
    const release = (): void => {
      if (released) return;
      released = true;
      process.removeListener("exit", release);
      try {
        if (readFileSync(path, "utf8") === text) unlinkSync(path);
      } catch {
        // already gone
      }
    };
    // Whatever ends the process without reaching release() (a process.exit elsewhere) still frees it.
    process.on("exit", release);
    return { release };
  }
  const seen = readLock(path);
  throw heldError(runDir, seen ?? null);
}

/** The holder, null for a file without a readable one, undefined when there is no file. */
function readLock(path: string): Holder | null | undefined {
  let raw: string;
  try {
    raw = readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
  try {
    const h = JSON.parse(raw) as Holder;
    return typeof h.pid === "number" && typeof h.host === "string" ? h : null;
  } catch {
    return null;
  }
}

function isStale(path: string, h: Holder | null): boolean {
  if (h === null) {
    try {
      return Date.now() - statSync(path).mtimeMs > UNREADABLE_GRACE_MS;
    } catch {
      return true;
    }
  }
  // Another host's process cannot be looked up from here: its lock stands.
  if (h.host !== hostname() || h.pid === process.pid) return false;
  try {
    process.kill(h.pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ESRCH";
  }
}

/**
 * Removes a stale lock without removing a fresh one another process put there meanwhile: the file
 * is renamed away first, and put back if it is not the one judged stale.
 */
function takeOver(path: string, seen: Holder | null): boolean {
  const aside = `${path}.stale-${process.pid}`;
  try {
    renameSync(path, aside);
  } catch {
    return false; // someone else took it over first
  }
  const moved = readLock(aside);
  if (JSON.stringify(moved) !== JSON.stringify(seen)) {
    try {
      // link(2) fails if a lock exists again, so no newer lock is overwritten.
      linkSync(aside, path);
    } catch {
      // another lock is there now; the retry judges it
    }
    unlinkSync(aside);
    return false;
  }
  unlinkSync(aside);
  return true;
}

function heldError(runDir: string, h: Holder | null): UsageError {
  const who = h
    ? `pid ${h.pid} on ${h.host}, since ${h.started}`
    : "a process that is still writing the lock";
  return new UsageError(
    `${runDir} is in use by another pipeline process (${who}); wait for it to end, or remove ${join(runDir, LOCK_FILE)} if that process is gone`,
  );
}
