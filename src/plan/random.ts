// The split's random numbers: numpy's legacy `RandomState` (MT19937) reproduced exactly, so that
// `permutation(n, seed)` equals `np.random.RandomState(seed).permutation(n)` and KFold folds equal
// scikit-learn's `KFold(n_splits=k, shuffle=True, random_state=seed)`.

const N = 624;
const M = 397;

/** The 32-bit Mersenne Twister (Matsumoto & Nishimura 1998), seeded as numpy seeds an int. */
export class Mt19937 {
  private readonly mt = new Uint32Array(N);
  private index = N;

  constructor(seed: number) {
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)
      throw new Error(`seed must be an integer in [0, 2^32 - 1], got ${seed}`);
    // init_genrand: mt[i] = 1812433253 * (mt[i-1] ^ (mt[i-1] >>> 30)) + i, modulo 2^32.
    this.mt[0] = seed >>> 0;
    for (let i = 1; i < N; i++) {
      const prev = this.mt[i - 1]! ^ (this.mt[i - 1]! >>> 30);
      this.mt[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
  }

  nextUint32(): number {
    if (this.index >= N) this.twist();
    let y = this.mt[this.index++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  private twist(): void {
    const mt = this.mt;
    for (let i = 0; i < N; i++) {
      const y = (mt[i]! & 0x80000000) | (mt[(i + 1) % N]! & 0x7fffffff);
      mt[i] = mt[(i + M) % N]! ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
    }
    this.index = 0;
  }

  /**
   * A uniform integer in [0, max] (numpy's legacy `random_interval`): draw 32-bit words masked
   * to the smallest all-ones mask covering max, rejecting values above max. max < 2^32 here.
   */
  interval(max: number): number {
    if (max === 0) return 0;
    let mask = max;
    mask |= mask >>> 1;
    mask |= mask >>> 2;
    mask |= mask >>> 4;
    mask |= mask >>> 8;
    mask |= mask >>> 16;
    mask >>>= 0;
    for (;;) {
      const v = (this.nextUint32() & mask) >>> 0;
      if (v <= max) return v;
    }
  }
}

/**
 * Shuffles in place as numpy's legacy `RandomState.shuffle` does for a 1-D array: Fisher-Yates
 * from the end, `j = random_interval(i)` for i = n-1 down to 1, swap a[i] and a[j].
 */
export function shuffleInPlace<T>(items: T[], rng: Mt19937): T[] {
  for (let i = items.length - 1; i >= 1; i--) {
    const j = rng.interval(i);
    const t = items[i]!;
    items[i] = items[j]!;
    items[j] = t;
  }
  return items;
}

/** `np.random.RandomState(seed).permutation(n)`. */
export function permutation(n: number, seed: number): number[] {
  return shuffleInPlace(
    Array.from({ length: n }, (_, i) => i),
    new Mt19937(seed),
  );
}
