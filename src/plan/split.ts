// Cross-validation splits, pure and seeded: every case id lands in exactly one validation fold
// (holdout: one fold). Fold lists are explicit so that every later stage reads the same split.
import { percentile } from "../analyze/spacing.js";
import { Mt19937, permutation, shuffleInPlace } from "./random.js";

export interface Fold {
  fold: number;
  train: string[];
  val: string[];
}

/** Train = every case not in `val`, in the input order (as scikit-learn's index order). */
function foldOf(ids: string[], fold: number, val: string[]): Fold {
  const held = new Set(val);
  return { fold, train: ids.filter((id) => !held.has(id)), val };
}

function needCases(n: number, k: number, what: string): void {
  if (!Number.isInteger(k) || k < 2) throw new Error(`${what}: k must be an integer >= 2, got ${k}`);
  if (n < k) throw new Error(`${what}: cannot split ${n} case(s) into ${k} folds`);
}

/**
 * scikit-learn's `KFold(n_splits=k, shuffle=True, random_state=seed)`: the case indices are
 * permuted by numpy's `RandomState(seed)`, then cut into k contiguous folds, the first n % k of
 * them one case larger. Validation lists keep the permuted order, training lists the input order.
 */
export function kfold(ids: string[], k: number, seed: number): Fold[] {
  needCases(ids.length, k, "kfold");
  const order = permutation(ids.length, seed);
  const folds: Fold[] = [];
  let at = 0;
  for (let f = 0; f < k; f++) {
    const size = Math.floor(ids.length / k) + (f < ids.length % k ? 1 : 0);
    folds.push(
      foldOf(
        ids,
        f,
        order.slice(at, at + size).map((i) => ids[i]!),
      ),
    );
    at += size;
  }
  return folds;
}

/**
 * Stratified k-fold on a numeric case property: cases are binned at the property's quartiles
 * (numpy "linear" 25/50/75th percentiles; a value equal to a cut goes to the lower bin), each
 * bin is shuffled (MT19937 seeded with `seed`, bins in ascending order, cases in input order
 * before shuffling), and the concatenated bins are dealt to the folds round-robin. So every fold
 * gets its share of each quartile, and fold sizes differ by at most one. (Not scikit-learn's
 * StratifiedKFold algorithm, whose folds differ.)
 */
export function stratifiedKfold(ids: string[], values: number[], k: number, seed: number): Fold[] {
  needCases(ids.length, k, "stratified");
  const cuts = [25, 50, 75].map((q) => percentile(values, q));
  const bins: number[][] = [[], [], [], []];
  values.forEach((v, i) => {
    bins[cuts.filter((c) => v > c).length]!.push(i);
  });
  const rng = new Mt19937(seed);
  const dealt = bins.flatMap((b) => shuffleInPlace(b, rng));
  const val: string[][] = Array.from({ length: k }, () => []);
  dealt.forEach((i, n) => {
    val[n % k]!.push(ids[i]!);
  });
  return val.map((v, f) => foldOf(ids, f, v));
}

/**
 * Group k-fold: all cases of a group share one fold. Groups are taken largest first (equal
 * sizes in an order shuffled by MT19937 with `seed`) and each goes to the fold with the fewest
 * cases so far (the lowest fold index on ties), scikit-learn's GroupKFold balancing rule.
 */
export function groupKfold(ids: string[], groups: string[], k: number, seed: number): Fold[] {
  const members = new Map<string, number[]>();
  groups.forEach((g, i) => {
    members.set(g, [...(members.get(g) ?? []), i]);
  });
  if (members.size < k) throw new Error(`group: ${members.size} group(s) cannot fill ${k} folds`);
  const order = shuffleInPlace([...members.keys()].sort(), new Mt19937(seed));
  order.sort((a, b) => members.get(b)!.length - members.get(a)!.length);
  const val: number[][] = Array.from({ length: k }, () => []);
  for (const g of order) {
    let lightest = 0;
    for (let f = 1; f < k; f++) if (val[f]!.length < val[lightest]!.length) lightest = f;
    val[lightest]!.push(...members.get(g)!);
  }
  return val.map((v, f) =>
    foldOf(
      ids,
      f,
      v.sort((a, b) => a - b).map((i) => ids[i]!),
    ),
  );
}

/**
 * scikit-learn's `train_test_split(ids, test_size=fraction, random_state=seed)` test set:
 * ⌈n × fraction⌉ cases, the first of numpy's `RandomState(seed).permutation(n)`, in that order.
 */
export function testSet(ids: string[], fraction: number, seed: number): string[] {
  if (!(fraction > 0 && fraction < 1)) throw new Error(`fraction must be in (0, 1), got ${fraction}`);
  const n = Math.ceil(ids.length * fraction);
  if (n >= ids.length)
    throw new Error(`${fraction} of ${ids.length} case(s) is ${n}: it leaves no case to train on`);
  return permutation(ids.length, seed)
    .slice(0, n)
    .map((i) => ids[i]!);
}

/**
 * One train/validation split: the first round(n × fraction) cases (at least one, and at least one
 * left for training) of numpy's `RandomState(seed).permutation(n)` are held out.
 */
export function holdout(ids: string[], fraction: number, seed: number): Fold[] {
  if (!(fraction > 0 && fraction < 1))
    throw new Error(`holdout: fraction must be in (0, 1), got ${fraction}`);
  if (ids.length < 2) throw new Error(`holdout: needs at least 2 cases, got ${ids.length}`);
  const n = Math.min(ids.length - 1, Math.max(1, Math.round(ids.length * fraction)));
  const order = permutation(ids.length, seed);
  return [
    foldOf(
      ids,
      0,
      order.slice(0, n).map((i) => ids[i]!),
    ),
  ];
}
