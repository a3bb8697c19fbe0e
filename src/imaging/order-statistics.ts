// Order statistics without a full sort: the few ranks a percentile needs (min, max, the two values
// around each percentile's position) are found by multi-way quickselect in O(n), where a sort of
// a full-size volume (11 M values) costs about 2 s.

/**
 * Reorders `a` in place so that, for every rank r (0-based) in `ranks`, a[r] holds the value a
 * full ascending sort would put there. Other positions end up partially ordered. The values must
 * not be NaN. Equal values are gathered by three-way partitioning, so integer-valued data (many
 * ties) stays linear.
 */
export function selectRanks(a: Float64Array, ranks: readonly number[]): void {
  const n = a.length;
  for (const r of ranks)
    if (!Number.isInteger(r) || r < 0 || r >= n)
      throw new Error(`selectRanks: rank ${r} outside 0..${n - 1}`);
  const wanted = [...new Set(ranks)].sort((x, y) => x - y);
  // Segments [lo, hi] (inclusive) with the slice [r0, r1) of `wanted` that falls inside them.
  const stack: number[] = [0, n - 1, 0, wanted.length];
  while (stack.length > 0) {
    const r1 = stack.pop()!;
    const r0 = stack.pop()!;
    const hi = stack.pop()!;
    const lo = stack.pop()!;
    if (r0 >= r1 || lo >= hi) continue;
    if (hi - lo < 24) {
      insertionSort(a, lo, hi);
      continue;
    }
    const pivot = medianOfThree(a[lo]!, a[(lo + hi) >>> 1]!, a[hi]!);
    // a[lo, lt) < pivot, a[lt, i) == pivot, a(gt, hi] > pivot.
    let lt = lo;
    let i = lo;
    let gt = hi;
    while (i <= gt) {
      const v = a[i]!;
      if (v < pivot) {
        a[i++] = a[lt]!;
        a[lt++] = v;
      } else if (v > pivot) {
        a[i] = a[gt]!;
        a[gt--] = v;
      } else i++;
    }
    let m0 = r0;
    while (m0 < r1 && wanted[m0]! < lt) m0++;
    let m1 = m0;
    while (m1 < r1 && wanted[m1]! <= gt) m1++;
    stack.push(lo, lt - 1, r0, m0, gt + 1, hi, m1, r1);
  }
}

function insertionSort(a: Float64Array, lo: number, hi: number): void {
  for (let i = lo + 1; i <= hi; i++) {
    const v = a[i]!;
    let j = i - 1;
    while (j >= lo && a[j]! > v) {
      a[j + 1] = a[j]!;
      j--;
    }
    a[j + 1] = v;
  }
}

function medianOfThree(x: number, y: number, z: number): number {
  if (x < y) return y < z ? y : x < z ? z : x;
  return x < z ? x : y < z ? z : y;
}

/** The ranks `percentileSorted` reads for percentile q of n values: floor((n-1)q/100) and the next. */
export function percentileRanks(n: number, q: number): [number, number] {
  const lo = Math.floor(((n - 1) * q) / 100);
  return [lo, Math.min(lo + 1, n - 1)];
}
