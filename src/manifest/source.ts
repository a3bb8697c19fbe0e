// YAML documents that remember where every value came from, so errors can point at it.
import { readFileSync } from "node:fs";
import { isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";
import { type Diagnostic, ManifestError, UsageError } from "./diagnostics.js";

export type Path = readonly (string | number)[];

export interface Position {
  line: number;
  col: number;
  /** Columns to add to point inside a string scalar (1 for a quoted one). */
  contentOffset: number;
}

export interface SourceDoc {
  file: string;
  text: string;
  value: unknown;
  /** Where the value (or, with `key`, the mapping key) at `path` starts; falls back to the nearest parent. */
  positionOf(path: Path, opts?: { key?: boolean }): Position;
  diagnostic(
    path: Path,
    message: string,
    expected?: string,
    opts?: { key?: boolean; offset?: number },
  ): Diagnostic;
}

export function readSource(file: string, displayName = file): SourceDoc {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`${displayName}: cannot read file (${code ?? String(err)})`);
  }
  return parseSource(text, displayName);
}

export function parseSource(text: string, file: string): SourceDoc {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, merge: false });
  if (doc.errors.length > 0) {
    throw new ManifestError(
      doc.errors.map((e) => {
        const pos = lineCounter.linePos(e.pos[0]);
        const duplicate = e.code === "DUPLICATE_KEY";
        return {
          file,
          line: pos.line,
          col: pos.col,
          message: duplicate
            ? "duplicate key (each key, stage id included, may appear once)"
            : firstLine(e.message),
          expected: duplicate ? "a unique key" : "valid YAML",
        };
      }),
    );
  }
  const root = doc.contents;
  const posAt = (offset: number, contentOffset = 0): Position => {
    const p = lineCounter.linePos(offset);
    return { line: p.line, col: p.col, contentOffset };
  };
  const positionOf = (path: Path, opts: { key?: boolean } = {}): Position => {
    let node: Node | null = root;
    let best: Position = posAt(0);
    if (node?.range) best = posAt(node.range[0]);
    for (let i = 0; i < path.length && node; i++) {
      const seg = path[i];
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find(
          (p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg),
        );
        if (!pair) return best;
        const keyNode = pair.key as Node;
        if (last && opts.key && keyNode.range) return posAt(keyNode.range[0]);
        if (keyNode.range) best = posAt(keyNode.range[0]);
        node = (pair.value as Node | null) ?? null;
        if (node?.range) best = posAt(node.range[0], quoteOffset(node));
      } else if (isSeq(node)) {
        const item = node.items[Number(seg)] as Node | undefined;
        if (!item) return best;
        node = item;
        if (node.range) best = posAt(node.range[0], quoteOffset(node));
      } else {
        return best;
      }
    }
    return best;
  };
  return {
    file,
    text,
    value: doc.toJS({ maxAliasCount: 100 }),
    positionOf,
    diagnostic(path, message, expected, opts = {}) {
      const pos = positionOf(path, opts);
      const offset = opts.offset === undefined ? 0 : pos.contentOffset + opts.offset;
      return { file, line: pos.line, col: pos.col + offset, message, ...(expected ? { expected } : {}) };
    },
  };
}

function quoteOffset(node: Node): number {
  return isScalar(node) && (node.type === "QUOTE_DOUBLE" || node.type === "QUOTE_SINGLE") ? 1 : 0;
}

function firstLine(s: string): string {
  return s.split("\n")[0] ?? s;
}
