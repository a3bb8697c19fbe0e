// One fault, one verdict. When a check fails, what it points at (a file, or a value inside one:
// `path#/json/pointer`) is known to be false; a later check that would read it does not judge
// it again but leaves that part `skipped`, naming the check that owns the fault. So an edited
// file is integrity's finding alone, a false per-case Dice is claims.per-case's and not also
// every summary's, and a leaky plan is cv.split's and not also cv.folds'.
import type { CheckResult } from "./types.js";

export interface Blocked {
  /** What the dependent check would have read. */
  read: string;
  /** The failed pointer it overlaps. */
  pointer: string;
  /** The check that failed on it. */
  by: string;
}

/** `stages/a/b.json#/x/0` as [stages, a, b.json, #, x, 0]: a folder covers its files, a file its values. */
function segments(p: string): string[] {
  const hash = p.indexOf("#");
  const file = (hash < 0 ? p : p.slice(0, hash)).split("/").filter(Boolean);
  if (hash < 0) return file;
  return [
    ...file,
    "#",
    ...p
      .slice(hash + 1)
      .split("/")
      .filter(Boolean),
  ];
}

function overlap(a: string[], b: string[]): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class Taint {
  private readonly marks: { pointer: string; segs: string[]; by: string }[] = [];

  /** Records a failed check's evidence as false. */
  add(result: CheckResult): void {
    if (result.verdict !== "fail") return;
    for (const pointer of result.evidence)
      this.marks.push({ pointer, segs: segments(pointer), by: result.id });
  }

  /** The first of `reads` that an earlier failure covers, or null when all may be judged. */
  blocking(reads: readonly string[]): Blocked | null {
    for (const read of reads) {
      const s = segments(read);
      const m = this.marks.find((x) => overlap(x.segs, s));
      if (m) return { read, pointer: m.pointer, by: m.by };
    }
    return null;
  }
}

/** A part of a check left unjudged, with its reason. */
export interface Skip {
  what: string;
  blocked: Blocked;
}

export function skipLine(s: Skip): string {
  return `${s.what} not judged: ${s.blocked.pointer} already failed ${s.blocked.by}`;
}
