// Seeded random masks for the oracle tests (test helper, not used by the library):
// blobs, thin structures, noise and plausible perturbations, on and past the border.

/** mulberry32: tiny, fast, good enough to draw test masks from. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class MaskFactory {
  constructor(private readonly r: () => number) {}

  int(lo: number, hi: number): number {
    return lo + Math.floor(this.r() * (hi - lo + 1));
  }

  real(lo: number, hi: number): number {
    return lo + this.r() * (hi - lo);
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.r() * items.length)]!;
  }

  shape(rank: 2 | 3): number[] {
    // Now and then an axis of length 1: a single slice or a single row is a legal grid.
    const axis = (hi: number): number => (this.r() < 0.06 ? 1 : this.int(2, hi));
    return rank === 3 ? [axis(18), axis(16), axis(14)] : [axis(40), axis(36)];
  }

  spacing(rank: 2 | 3): number[] {
    const kind = this.int(0, 3);
    const n = rank;
    if (kind === 0) return Array(n).fill(1);
    if (kind === 1) return Array.from({ length: n }, () => this.pick([0.5, 1, 1.5, 2, 2.5]));
    if (kind === 2) {
      // Typical MR/CT: fine in-plane, thick slices.
      const inPlane = this.real(0.3, 1.2);
      return rank === 3 ? [inPlane, inPlane, this.real(2, 6)] : [inPlane, this.real(1, 5)];
    }
    return Array.from({ length: n }, () => Math.round(this.real(0.3, 3) * 1000) / 1000);
  }

  /** Union of random ellipsoids; centres may sit on or past the border. */
  blobs(shape: readonly number[], count: number): Uint8Array {
    const [nx = 1, ny = 1, nz = 1] = shape;
    const out = new Uint8Array(nx * ny * nz);
    for (let b = 0; b < count; b++) {
      const c = [this.real(-1, nx), this.real(-1, ny), this.real(-1, nz)];
      const rad = [
        this.real(0.6, nx / 2.5 + 0.6),
        this.real(0.6, ny / 2.5 + 0.6),
        this.real(0.6, nz / 2.5 + 0.6),
      ];
      let i = 0;
      for (let z = 0; z < nz; z++) {
        for (let y = 0; y < ny; y++) {
          for (let x = 0; x < nx; x++, i++) {
            const q =
              ((x - c[0]!) / rad[0]!) ** 2 +
              ((y - c[1]!) / rad[1]!) ** 2 +
              (shape.length === 3 ? ((z - c[2]!) / rad[2]!) ** 2 : 0);
            if (q <= 1) out[i] = 1;
          }
        }
      }
    }
    return out;
  }

  /** One-voxel-thick lines (axis-aligned or diagonal) and planes. */
  thin(shape: readonly number[]): Uint8Array {
    const [nx = 1, ny = 1, nz = 1] = shape;
    const out = new Uint8Array(nx * ny * nz);
    const pieces = this.int(1, 3);
    for (let p = 0; p < pieces; p++) {
      const kind = this.int(0, 2);
      const x0 = this.int(0, nx - 1);
      const y0 = this.int(0, ny - 1);
      const z0 = this.int(0, nz - 1);
      let i = 0;
      for (let z = 0; z < nz; z++) {
        for (let y = 0; y < ny; y++) {
          for (let x = 0; x < nx; x++, i++) {
            const hit =
              kind === 0
                ? y === y0 && z === z0 // a line along the first axis
                : kind === 1
                  ? x - x0 === y - y0 && z === z0 // a diagonal line
                  : shape.length === 3
                    ? z === z0 // a plane (3D) ...
                    : x === x0; // ... or a column (2D)
            if (hit) out[i] = 1;
          }
        }
      }
    }
    return out;
  }

  noise(n: number, p: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.r() < p ? 1 : 0;
    return out;
  }

  /** A plausible prediction for a reference: shifted, nibbled, grown or noisy. */
  perturb(ref: Uint8Array, shape: readonly number[]): Uint8Array {
    const [nx = 1, ny = 1, nz = 1] = shape;
    const kind = this.int(0, 4);
    if (kind === 0) {
      const d = [this.int(-2, 2), this.int(-2, 2), shape.length === 3 ? this.int(-1, 1) : 0];
      const out = new Uint8Array(ref.length);
      let i = 0;
      for (let z = 0; z < nz; z++) {
        for (let y = 0; y < ny; y++) {
          for (let x = 0; x < nx; x++, i++) {
            const xs = x - d[0]!;
            const ys = y - d[1]!;
            const zs = z - d[2]!;
            if (xs >= 0 && xs < nx && ys >= 0 && ys < ny && zs >= 0 && zs < nz)
              out[i] = ref[xs + nx * (ys + ny * zs)]!;
          }
        }
      }
      return out;
    }
    if (kind === 1) {
      const out = Uint8Array.from(ref);
      for (let i = 0; i < out.length; i++) if (this.r() < 0.15) out[i] = 0;
      return out;
    }
    if (kind === 2) {
      const extra = this.blobs(shape, 1);
      return ref.map((v, i) => v | extra[i]!);
    }
    if (kind === 3) {
      const out = Uint8Array.from(ref);
      for (let i = 0; i < out.length; i++) if (this.r() < 0.03) out[i] = 1 - out[i]!;
      return out;
    }
    return this.blobs(shape, this.int(1, 3));
  }
}
