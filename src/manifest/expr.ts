// The manifest's expression language: `${...}` inside strings. Deliberately tiny and
// evaluated by walking a parsed tree — never eval — so a manifest can compute, not execute.
//
//   expr    := sum
//   sum     := product (("+" | "-") product)*
//   product := unary (("*" | "/" | "//" | "%") unary)*
//   unary   := "-" unary | postfix
//   postfix := primary ("." NAME | "[" expr "]" | "(" args ")")*
//   primary := NUMBER | STRING | NAME | "(" expr ")" | "[" args "]"

export type Value = null | boolean | number | string | Value[] | { [key: string]: Value };

export type Expr =
  | { kind: "lit"; value: Value; at: number }
  | { kind: "name"; name: string; at: number }
  | { kind: "member"; object: Expr; name: string; at: number }
  | { kind: "index"; object: Expr; index: Expr; at: number }
  | { kind: "call"; callee: string; args: Expr[]; at: number }
  | { kind: "list"; items: Expr[]; at: number }
  | { kind: "neg"; operand: Expr; at: number }
  | { kind: "binary"; op: "+" | "-" | "*" | "/" | "//" | "%"; left: Expr; right: Expr; at: number };

/** An error at a character offset of the template string. */
export class ExprError extends Error {
  constructor(
    message: string,
    readonly offset: number,
    readonly expected?: string,
  ) {
    super(message);
    this.name = "ExprError";
  }
}

export type TemplatePart = string | { expr: Expr; source: string; offset: number };

/** A string with `${...}` holes; `$${` writes a literal `${`. */
export interface Template {
  parts: TemplatePart[];
}

export function hasTemplate(s: string): boolean {
  return s.includes("${");
}

export function parseTemplate(text: string): Template {
  const parts: TemplatePart[] = [];
  let literal = "";
  let i = 0;
  while (i < text.length) {
    if (text.startsWith("$${", i)) {
      literal += "${";
      i += 3;
    } else if (text.startsWith("${", i)) {
      const close = findClose(text, i + 2);
      if (close < 0) throw new ExprError("unterminated ${ ... }", i, "a closing }");
      if (literal) parts.push(literal);
      literal = "";
      const source = text.slice(i + 2, close);
      parts.push({ expr: parseExpr(source, i + 2), source, offset: i });
      i = close + 1;
    } else {
      literal += text[i];
      i++;
    }
  }
  if (literal) parts.push(literal);
  return { parts };
}

function findClose(text: string, from: number): number {
  let quote: string | null = null;
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === quote) quote = null;
    } else if (c === "'" || c === '"') quote = c;
    else if (c === "}") return i;
  }
  return -1;
}

type Token =
  | { t: "num"; v: number; at: number }
  | { t: "str"; v: string; at: number }
  | { t: "name"; v: string; at: number }
  | { t: "op"; v: string; at: number }
  | { t: "end"; at: number };

function tokenize(src: string, base: number): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i] as string;
    if (/\s/.test(c)) {
      i++;
    } else if (/[0-9]/.test(c)) {
      const m = /^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?/.exec(src.slice(i));
      const text = m?.[0] ?? c;
      tokens.push({ t: "num", v: Number(text), at: base + i });
      i += text.length;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i));
      const text = m?.[0] ?? c;
      tokens.push({ t: "name", v: text, at: base + i });
      i += text.length;
    } else if (c === "'" || c === '"') {
      const end = src.indexOf(c, i + 1);
      if (end < 0) throw new ExprError("unterminated string", base + i, `a closing ${c}`);
      tokens.push({ t: "str", v: src.slice(i + 1, end), at: base + i });
      i = end + 1;
    } else if (src.startsWith("//", i)) {
      tokens.push({ t: "op", v: "//", at: base + i });
      i += 2;
    } else if ("+-*/%.[](),".includes(c)) {
      tokens.push({ t: "op", v: c, at: base + i });
      i++;
    } else {
      throw new ExprError(`unexpected character '${c}'`, base + i, "a name, number, string or operator");
    }
  }
  tokens.push({ t: "end", at: base + src.length });
  return tokens;
}

/** Parses one expression; `base` is its offset in the enclosing string, for error positions. */
export function parseExpr(src: string, base = 0): Expr {
  const tokens = tokenize(src, base);
  let pos = 0;
  const peek = (): Token => tokens[pos] as Token;
  const isOp = (v: string): boolean => {
    const tok = peek();
    return tok.t === "op" && tok.v === v;
  };
  const expect = (v: string): void => {
    if (!isOp(v)) throw new ExprError(`expected '${v}'`, peek().at, `'${v}'`);
    pos++;
  };
  const sum = (): Expr => {
    let left = product();
    while (isOp("+") || isOp("-")) {
      const tok = tokens[pos++] as Token & { v: "+" | "-" };
      left = { kind: "binary", op: tok.v, left, right: product(), at: tok.at };
    }
    return left;
  };
  const product = (): Expr => {
    let left = unary();
    while (isOp("*") || isOp("/") || isOp("//") || isOp("%")) {
      const tok = tokens[pos++] as Token & { v: "*" | "/" | "//" | "%" };
      left = { kind: "binary", op: tok.v, left, right: unary(), at: tok.at };
    }
    return left;
  };
  const unary = (): Expr => {
    if (isOp("-")) {
      const at = peek().at;
      pos++;
      return { kind: "neg", operand: unary(), at };
    }
    return postfix();
  };
  const args = (close: string): Expr[] => {
    const list: Expr[] = [];
    if (isOp(close)) {
      pos++;
      return list;
    }
    for (;;) {
      list.push(sum());
      if (isOp(",")) {
        pos++;
        continue;
      }
      expect(close);
      return list;
    }
  };
  const postfix = (): Expr => {
    let e = primary();
    for (;;) {
      if (isOp(".")) {
        pos++;
        const tok = peek();
        if (tok.t !== "name" && tok.t !== "num")
          throw new ExprError("expected a name after '.'", tok.at, "a name");
        pos++;
        e = { kind: "member", object: e, name: String(tok.v), at: tok.at };
      } else if (isOp("[")) {
        const at = peek().at;
        pos++;
        const index = sum();
        expect("]");
        e = { kind: "index", object: e, index, at };
      } else if (isOp("(")) {
        if (e.kind !== "name") throw new ExprError("only named functions can be called", e.at);
        pos++;
        e = { kind: "call", callee: e.name, args: args(")"), at: e.at };
      } else {
        return e;
      }
    }
  };
  const primary = (): Expr => {
    const tok = peek();
    if (tok.t === "num" || tok.t === "str") {
      pos++;
      return { kind: "lit", value: tok.v, at: tok.at };
    }
    if (tok.t === "name") {
      pos++;
      if (tok.v === "true" || tok.v === "false") return { kind: "lit", value: tok.v === "true", at: tok.at };
      if (tok.v === "null") return { kind: "lit", value: null, at: tok.at };
      return { kind: "name", name: tok.v, at: tok.at };
    }
    if (isOp("(")) {
      pos++;
      const e = sum();
      expect(")");
      return e;
    }
    if (isOp("[")) {
      pos++;
      return { kind: "list", items: args("]"), at: tok.at };
    }
    throw new ExprError(
      tok.t === "end" ? "expression ends too early" : `unexpected '${tok.v}'`,
      tok.at,
      "a name, number, string, list or '('",
    );
  };
  if (peek().t === "end") throw new ExprError("empty expression", base, "an expression inside ${ }");
  const e = sum();
  const rest = peek();
  if (rest.t !== "end")
    throw new ExprError(`unexpected '${"v" in rest ? rest.v : ""}'`, rest.at, "end of expression");
  return e;
}

/** The root names and member paths an expression reads, e.g. `plan.plan` → {root: "plan", path: ["plan"]}. */
export interface Reference {
  root: string;
  path: string[];
  at: number;
}

export function references(e: Expr): Reference[] {
  const out: Reference[] = [];
  const walk = (x: Expr): void => {
    const chain = memberChain(x);
    if (chain) {
      out.push(chain);
      return;
    }
    switch (x.kind) {
      case "member":
        walk(x.object);
        break;
      case "index":
        walk(x.object);
        walk(x.index);
        break;
      case "call":
        x.args.forEach(walk);
        break;
      case "list":
        x.items.forEach(walk);
        break;
      case "neg":
        walk(x.operand);
        break;
      case "binary":
        walk(x.left);
        walk(x.right);
        break;
      default:
        break;
    }
  };
  walk(e);
  return out;
}

/** `a.b.c` as a reference, or null when the expression is anything more than a member chain. */
export function memberChain(e: Expr): Reference | null {
  if (e.kind === "name") return { root: e.name, path: [], at: e.at };
  if (e.kind === "member") {
    const inner = memberChain(e.object);
    return inner ? { ...inner, path: [...inner.path, e.name] } : null;
  }
  return null;
}

/** Values of root names; returning undefined means "unknown name". */
export type Scope = (root: string) => Value | undefined;

/**
 * The longest list an expression may make (range, or lists joined with +). A foreach over more
 * would be more stages than a run can hold, and params that join a list to itself double it each time.
 */
export const MAX_LIST = 10_000;
const MAX_STRING = 1_000_000;

const FUNCTIONS: Record<string, (args: Value[], at: number) => Value> = {
  range(args, at) {
    const nums = args.map((a) => integer(a, at, "range"));
    const [start, stop, step] =
      nums.length === 1 ? [0, nums[0] as number, 1] : [nums[0], nums[1], nums[2] ?? 1];
    if (nums.length < 1 || nums.length > 3 || step === 0)
      throw new ExprError(
        "range takes 1 to 3 integers and a non-zero step",
        at,
        "range(n), range(a, b) or range(a, b, step)",
      );
    // Counted before any value is made: range(1e8) must fail at once, not after filling memory.
    const count = Math.max(0, Math.ceil(((stop as number) - (start as number)) / (step as number)));
    if (count > MAX_LIST)
      throw new ExprError(
        `range(${nums.join(", ")}) would give ${count} values`,
        at,
        `at most ${MAX_LIST} values`,
      );
    const out: number[] = [];
    for (let i = 0; i < count; i++) out.push((start as number) + i * (step as number));
    return out;
  },
  len(args, at) {
    const [v] = args;
    if (args.length !== 1 || !(Array.isArray(v) || typeof v === "string"))
      throw new ExprError("len takes one list or string", at, "len(list)");
    return v.length;
  },
  min: (args, at) => extreme(args, at, "min", Math.min),
  max: (args, at) => extreme(args, at, "max", Math.max),
  str(args, at) {
    if (args.length !== 1) throw new ExprError("str takes one value", at, "str(value)");
    return display(args[0] as Value);
  },
};

export const FUNCTION_NAMES = Object.keys(FUNCTIONS);

function extreme(args: Value[], at: number, name: string, f: (...n: number[]) => number): Value {
  const list = args.length === 1 && Array.isArray(args[0]) ? args[0] : args;
  if (list.length === 0 || !list.every((v) => typeof v === "number"))
    throw new ExprError(`${name} takes numbers or one list of numbers`, at, `${name}(a, b) or ${name}(list)`);
  return f(...(list as number[]));
}

function integer(v: Value, at: number, fn: string): number {
  // Past 2^53 adding 1 may leave a number unchanged: such a range would never end.
  if (typeof v !== "number" || !Number.isSafeInteger(v))
    throw new ExprError(`${fn} needs integers (at most 2^53 in size), got ${describe(v)}`, at);
  return v;
}

export function describe(v: Value | undefined): string {
  if (v === undefined) return "nothing";
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "an object";
  return `${typeof v} ${JSON.stringify(v)}`;
}

export function display(v: Value): string {
  return typeof v === "string" ? v : JSON.stringify(v);
}

export function evaluate(e: Expr, scope: Scope): Value {
  switch (e.kind) {
    case "lit":
      return e.value;
    case "name": {
      const v = scope(e.name);
      if (v === undefined) throw new ExprError(`unknown name '${e.name}'`, e.at);
      return v;
    }
    case "member":
      return member(evaluate(e.object, scope), e.name, e.at);
    case "index": {
      const obj = evaluate(e.object, scope);
      const idx = evaluate(e.index, scope);
      if (Array.isArray(obj) && typeof idx === "number") {
        const i = idx < 0 ? obj.length + idx : idx;
        if (!Number.isInteger(i) || i < 0 || i >= obj.length)
          throw new ExprError(`index ${idx} is out of range for a list of ${obj.length}`, e.at);
        return obj[i] as Value;
      }
      if (typeof idx === "string") return member(obj, idx, e.at);
      throw new ExprError(`cannot index ${describe(obj)} with ${describe(idx)}`, e.at);
    }
    case "call": {
      const fn = FUNCTIONS[e.callee];
      if (!fn)
        throw new ExprError(`unknown function '${e.callee}'`, e.at, `one of ${FUNCTION_NAMES.join(", ")}`);
      return fn(
        e.args.map((a) => evaluate(a, scope)),
        e.at,
      );
    }
    case "list":
      return e.items.map((x) => evaluate(x, scope));
    case "neg": {
      const v = evaluate(e.operand, scope);
      if (typeof v !== "number") throw new ExprError(`cannot negate ${describe(v)}`, e.at, "a number");
      return -v;
    }
    case "binary":
      return binary(e.op, evaluate(e.left, scope), evaluate(e.right, scope), e.at);
  }
}

// A member of a list maps over the list: that is how `${cv.model}` gathers every fold's model.
function member(obj: Value, name: string, at: number): Value {
  if (Array.isArray(obj)) return obj.map((x) => member(x, name, at));
  if (obj !== null && typeof obj === "object") {
    const v = obj[name];
    if (v === undefined)
      throw new ExprError(`no field '${name}'`, at, `one of ${Object.keys(obj).join(", ") || "(none)"}`);
    return v;
  }
  throw new ExprError(`cannot read '${name}' of ${describe(obj)}`, at);
}

function binary(op: string, a: Value, b: Value, at: number): Value {
  if (op === "+" && typeof a === "string" && typeof b === "string") {
    if (a.length + b.length > MAX_STRING)
      throw new ExprError(`joining strings gives more than ${MAX_STRING} characters`, at, "shorter strings");
    return a + b;
  }
  if (op === "+" && Array.isArray(a) && Array.isArray(b)) {
    if (a.length + b.length > MAX_LIST)
      throw new ExprError(
        `joining lists of ${a.length} and ${b.length} values gives more than ${MAX_LIST}`,
        at,
        `lists of at most ${MAX_LIST} values`,
      );
    return [...a, ...b];
  }
  if (typeof a !== "number" || typeof b !== "number")
    throw new ExprError(`cannot apply '${op}' to ${describe(a)} and ${describe(b)}`, at, "two numbers");
  switch (op) {
    case "+":
      return a + b;
    case "-":
      return a - b;
    case "*":
      return a * b;
    case "/":
      if (b === 0) throw new ExprError("division by zero", at);
      return a / b;
    case "//":
      if (b === 0) throw new ExprError("division by zero", at);
      return Math.floor(a / b);
    default:
      if (b === 0) throw new ExprError("modulo by zero", at);
      return a - b * Math.floor(a / b);
  }
}

/**
 * Renders a template. A string that is exactly one `${...}` keeps the value's type
 * (so `"${params.folds}"` is the number 5); anything else becomes a string.
 */
export function render(t: Template, scope: Scope): Value {
  const [only] = t.parts;
  if (t.parts.length === 1 && typeof only === "object") return evaluate(only.expr, scope);
  let out = "";
  for (const p of t.parts) {
    if (typeof p === "string") {
      out += p;
      continue;
    }
    const v = evaluate(p.expr, scope);
    if (v !== null && typeof v === "object")
      throw new ExprError(`${describe(v)} cannot be placed inside a string`, p.offset, "a number or string");
    out += v === null ? "" : String(v);
  }
  return out;
}
