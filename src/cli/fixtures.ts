// `pipeline fixtures make <kind>`: the CLI face of the fixture generator. Checks the arguments
// (a bad one is a usage error naming it), generates, prints where the dataset went.
import { UsageError } from "../manifest/diagnostics.js";
import { checkFolderFlag, EXIT } from "./output.js";

export async function fixturesMake(
  kind: string,
  o: { cases?: string; size?: string; seed?: string; out: string },
): Promise<number> {
  const { FIXTURE_DEFAULTS, FIXTURE_KINDS, fixtureOutProblem, makeFixture } = await import(
    "../fixtures/index.js"
  );
  const k = FIXTURE_KINDS.find((x) => x === kind);
  if (!k) throw new UsageError(`unknown fixture kind "${kind}": expected one of ${FIXTURE_KINDS.join(", ")}`);
  const defaults = FIXTURE_DEFAULTS[k];
  const cases = o.cases === undefined ? defaults.cases : integer("--cases", o.cases, 1, 10_000);
  const seed = o.seed === undefined ? defaults.seed : integer("--seed", o.seed, 0, 0xffffffff);
  const dims = defaults.size.length;
  const size =
    o.size === undefined ? defaults.size : o.size.split(",").map((p) => integer("--size", p.trim(), 8, 2048));
  if (size.length !== dims)
    throw new UsageError(
      `--size ${o.size}: ${kind} needs ${dims} comma-separated sizes, e.g. ${defaults.size.join(",")}`,
    );
  if (!o.out) throw new UsageError("--out DIR is required");
  checkFolderFlag("--out", o.out);
  const problem = await fixtureOutProblem(o.out);
  if (problem) throw new UsageError(problem);
  const result = await makeFixture(k, {
    cases,
    size,
    seed,
    out: o.out,
    onCase: (id, done, total) => process.stderr.write(`[${done}/${total}] ${id}\n`),
  });
  process.stdout.write(
    `${result.out}: ${result.ids.length} ${kind} cases (size ${size.join("x")}, seed ${seed})\n`,
  );
  return EXIT.ok;
}

function integer(flag: string, text: string, min: number, max: number): number {
  const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`${flag} ${text}: expected an integer in ${min}..${max}`);
  return n;
}
