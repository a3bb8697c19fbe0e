import { describe, expect, it } from "vitest";
import { type ExprError, parseTemplate, references, render, type Value } from "./expr.js";

const scope =
  (vars: Record<string, Value>) =>
  (root: string): Value | undefined =>
    vars[root];

const r = (text: string, vars: Record<string, Value> = {}): Value => render(parseTemplate(text), scope(vars));

describe("expression language", () => {
  it("keeps the type of a whole-string expression and interpolates otherwise", () => {
    expect(r("${params.folds}", { params: { folds: 5 } })).toBe(5);
    expect(r("fold-${params.folds}.json", { params: { folds: 5 } })).toBe("fold-5.json");
    expect(r("plain text")).toBe("plain text");
    expect(r("cost: $${x}")).toBe("cost: ${x}");
  });

  it("does arithmetic with the usual precedence, floor division and a non-negative modulo", () => {
    expect(r("${1 + 2 * 3}")).toBe(7);
    expect(r("${(1 + 2) * 3}")).toBe(9);
    expect(r("${7 // 2}")).toBe(3);
    expect(r("${-7 // 2}")).toBe(-4);
    expect(r("${-7 % 3}")).toBe(2);
    expect(r("${2.5e1 / 2}")).toBe(12.5);
    expect(r("${-x}", { x: 4 })).toBe(-4);
  });

  it("has range, len, min, max and str", () => {
    expect(r("${range(3)}")).toEqual([0, 1, 2]);
    expect(r("${range(1, 7, 2)}")).toEqual([1, 3, 5]);
    expect(r("${range(3, 0, -1)}")).toEqual([3, 2, 1]);
    expect(r("${len(xs)}", { xs: [1, 2, 3] })).toBe(3);
    expect(r("${max(xs)}", { xs: [4, 9, 2] })).toBe(9);
    expect(r("${min(3, 1)}")).toBe(1);
    expect(r("${str(5) + 'x'}")).toBe("5x");
  });

  it("indexes lists and maps a member read over a list (gather)", () => {
    const cv = [{ model: "a" }, { model: "b" }];
    expect(r("${cv.model}", { cv })).toEqual(["a", "b"]);
    expect(r("${cv[1].model}", { cv })).toBe("b");
    expect(r("${cv[-1].model}", { cv })).toBe("b");
    expect(r("${[1, 2] + [3]}")).toEqual([1, 2, 3]);
  });

  it("reports errors with the offset of the offending token", () => {
    const err = (text: string, vars: Record<string, Value> = {}): ExprError => {
      try {
        r(text, vars);
      } catch (e) {
        return e as ExprError;
      }
      throw new Error("no error");
    };
    expect(err("ab ${nosuch}").offset).toBe(5);
    expect(err("${1 +}").message).toMatch(/ends too early/);
    expect(err("${x.y}", { x: { z: 1 } }).message).toMatch(/no field 'y'/);
    expect(err("${1 / 0}").message).toMatch(/division by zero/);
    expect(err("${range(1.5)}").message).toMatch(/integers/);
    expect(err("a${x}", { x: [1] }).message).toMatch(/cannot be placed inside a string/);
    expect(err("${import('fs')}").message).toMatch(/unknown function 'import'/);
    expect(err("${a ; b}").message).toMatch(/unexpected character ';'/);
    expect(err("${x").message).toMatch(/unterminated/);
  });

  it("bounds the lists and strings an expression makes, counting a range before making it", () => {
    const err = (text: string, vars: Record<string, Value> = {}): ExprError => {
      try {
        r(text, vars);
      } catch (e) {
        return e as ExprError;
      }
      throw new Error("no error");
    };
    expect(r("${range(10000)}")).toHaveLength(10_000);
    expect(r("${range(5, 20005, 2)}")).toHaveLength(10_000);
    expect(r("${range(0, -3, -2)}")).toEqual([0, -2]);
    const t0 = performance.now();
    const big = err("${range(100000000)}");
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(big.message).toBe("range(100000000) would give 100000000 values");
    expect(big.expected).toBe("at most 10000 values");
    expect(big.offset).toBe(2);
    expect(err("${range(10001)}").message).toMatch(/would give 10001 values/);
    // past 2^53, adding the step may leave the number as it is: refused, not looped on forever
    expect(err("${range(9007199254740992, 9007199254740995)}").message).toMatch(/at most 2\^53/);
    expect(err("${x + x}", { x: Array.from({ length: 6000 }, (_, i) => i) }).message).toBe(
      "joining lists of 6000 and 6000 values gives more than 10000",
    );
    expect(err("${s + s}", { s: "x".repeat(600_000) }).message).toMatch(/more than 1000000 characters/);
  });

  it("lists the references an expression reads", () => {
    const t = parseTemplate("${plan.plan} ${cv.model[0]} ${range(params.folds) + [fold]}");
    const refs = t.parts.flatMap((p) => (typeof p === "string" ? [] : references(p.expr)));
    expect(refs.map((x) => [x.root, ...x.path].join("."))).toEqual([
      "plan.plan",
      "cv.model",
      "params.folds",
      "fold",
    ]);
  });
});
