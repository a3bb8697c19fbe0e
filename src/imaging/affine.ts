import type { Affine } from "./types.js";

// 4x4 matrices are row-major number[16]; 3x3 ones row-major number[9].

export function identity4(): Affine {
  return [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1];
}

export function multiply4(a: Affine, b: Affine): Affine {
  const out = new Array<number>(16).fill(0);
  for (let r = 0; r < 4; r++) {
    for (let c = 0; c < 4; c++) {
      let s = 0;
      for (let k = 0; k < 4; k++) s += a[4 * r + k]! * b[4 * k + c]!;
      out[4 * r + c] = s;
    }
  }
  return out;
}

/** The upper-left 3x3 block (rotation, zooms and shears). */
export function linearPart(affine: Affine): number[] {
  return [0, 1, 2, 4, 5, 6, 8, 9, 10].map((i) => affine[i]!);
}

export function determinant3(m: number[]): number {
  const [a, b, c, d, e, f, g, h, i] = m as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  return a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
}

/** Length of each column of the 3x3 block: the voxel size along each array axis (nibabel `voxel_sizes`). */
export function voxelSizes(affine: Affine): number[] {
  return [0, 1, 2].map((c) => Math.hypot(affine[c]!, affine[4 + c]!, affine[8 + c]!));
}

/**
 * nibabel's fallback affine when neither sform nor qform is set (`shape_zoom_affine`,
 * x flipped): voxel sizes on the diagonal, the array centre at the world origin.
 */
export function baseAffine(shape: number[], zooms: number[]): Affine {
  const n = [0, 1, 2].map((i) => shape[i] ?? 1);
  const z = [0, 1, 2].map((i) => zooms[i] ?? 1);
  z[0] = -z[0]!;
  const out = identity4();
  for (let i = 0; i < 3; i++) {
    out[5 * i] = z[i]!;
    out[4 * i + 3] = (-(n[i]! - 1) / 2) * z[i]!;
  }
  return out;
}

/**
 * Eigen-decomposition of a symmetric 3x3 matrix by cyclic Jacobi rotations.
 * Returns eigenvalues and eigenvectors as the columns of `vectors` (row-major).
 */
function symmetricEigen3(s: number[]): { values: number[]; vectors: number[] } {
  const a = s.slice();
  const v = [1, 0, 0, 0, 1, 0, 0, 0, 1];
  for (let sweep = 0; sweep < 50; sweep++) {
    const off = a[1]! ** 2 + a[2]! ** 2 + a[5]! ** 2;
    if (off < 1e-30 * (a[0]! ** 2 + a[4]! ** 2 + a[8]! ** 2) || off === 0) break;
    for (const [p, q] of [
      [0, 1],
      [0, 2],
      [1, 2],
    ] as const) {
      const apq = a[3 * p + q]!;
      if (apq === 0) continue;
      const theta = (a[3 * q + q]! - a[3 * p + p]!) / (2 * apq);
      const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
      const c = 1 / Math.sqrt(t * t + 1);
      const sn = t * c;
      // A <- J^T A J with J the rotation in the (p, q) plane.
      for (let k = 0; k < 3; k++) {
        const akp = a[3 * k + p]!;
        const akq = a[3 * k + q]!;
        a[3 * k + p] = c * akp - sn * akq;
        a[3 * k + q] = sn * akp + c * akq;
      }
      for (let k = 0; k < 3; k++) {
        const apk = a[3 * p + k]!;
        const aqk = a[3 * q + k]!;
        a[3 * p + k] = c * apk - sn * aqk;
        a[3 * q + k] = sn * apk + c * aqk;
      }
      for (let k = 0; k < 3; k++) {
        const vkp = v[3 * k + p]!;
        const vkq = v[3 * k + q]!;
        v[3 * k + p] = c * vkp - sn * vkq;
        v[3 * k + q] = sn * vkp + c * vkq;
      }
    }
  }
  return { values: [a[0]!, a[4]!, a[8]!], vectors: v };
}

/**
 * The closest shear-free matrix to `m` (the orthogonal factor of its polar
 * decomposition, as nibabel computes with an SVD), dropping directions whose
 * singular value is below `tol` (default: nibabel's `S.max() * 3 * eps`).
 */
export function orthogonalFactor3(m: number[], tol?: number): number[] {
  const mtm = new Array<number>(9).fill(0);
  for (let r = 0; r < 3; r++)
    for (let c = 0; c < 3; c++) {
      let s = 0;
      for (let k = 0; k < 3; k++) s += m[3 * k + r]! * m[3 * k + c]!;
      mtm[3 * r + c] = s;
    }
  const { values, vectors } = symmetricEigen3(mtm);
  const sigma = values.map((x) => Math.sqrt(Math.max(x, 0)));
  const limit = tol ?? Math.max(...sigma) * 3 * Number.EPSILON;
  const out = new Array<number>(9).fill(0);
  for (let k = 0; k < 3; k++) {
    if (!(sigma[k]! > limit)) continue;
    const vk = [0, 1, 2].map((i) => vectors[3 * i + k]!);
    // u_k = m v_k / sigma_k; R += u_k v_k^T
    const uk = [0, 1, 2].map(
      (r) => (m[3 * r]! * vk[0]! + m[3 * r + 1]! * vk[1]! + m[3 * r + 2]! * vk[2]!) / sigma[k]!,
    );
    for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) out[3 * r + c]! += uk[r]! * vk[c]!;
  }
  return out;
}

/** Rotation matrix (3x3 row-major) of the unit quaternion (a, b, c, d), a the scalar part. */
export function quaternionToMatrix(a: number, b: number, c: number, d: number): number[] {
  const n = a * a + b * b + c * c + d * d;
  if (n < Number.EPSILON) return [1, 0, 0, 0, 1, 0, 0, 0, 1];
  const s = 2 / n;
  return [
    1 - s * (c * c + d * d),
    s * (b * c - a * d),
    s * (b * d + a * c),
    s * (b * c + a * d),
    1 - s * (b * b + d * d),
    s * (c * d - a * b),
    s * (b * d - a * c),
    s * (c * d + a * b),
    1 - s * (b * b + c * c),
  ];
}

/**
 * Quaternion (a, b, c, d) of a proper rotation, with a >= 0 as NIfTI requires
 * (only b, c, d are stored; a is recovered as sqrt(1 - b² - c² - d²)).
 * Picks the numerically largest component first so near-180° rotations stay accurate.
 */
export function matrixToQuaternion(r: number[]): [number, number, number, number] {
  const [xx, xy, xz, yx, yy, yz, zx, zy, zz] = r as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const trace = xx + yy + zz;
  let q: [number, number, number, number];
  if (trace > 0) {
    const s = 2 * Math.sqrt(1 + trace);
    q = [s / 4, (zy - yz) / s, (xz - zx) / s, (yx - xy) / s];
  } else if (xx >= yy && xx >= zz) {
    const s = 2 * Math.sqrt(Math.max(1 + xx - yy - zz, 0));
    q = [(zy - yz) / s, s / 4, (xy + yx) / s, (xz + zx) / s];
  } else if (yy >= zz) {
    const s = 2 * Math.sqrt(Math.max(1 + yy - xx - zz, 0));
    q = [(xz - zx) / s, (xy + yx) / s, s / 4, (yz + zy) / s];
  } else {
    const s = 2 * Math.sqrt(Math.max(1 + zz - xx - yy, 0));
    q = [(yx - xy) / s, (xz + zx) / s, (yz + zy) / s, s / 4];
  }
  const norm = Math.hypot(...q);
  const sign = q[0] < 0 ? -1 : 1;
  return q.map((x) => (sign * x) / norm) as [number, number, number, number];
}

export interface Qform {
  /** Quaternion b, c, d (a is implied, >= 0). */
  quatern: [number, number, number];
  offset: [number, number, number];
  /** pixdim[1..3]: positive voxel sizes. */
  zooms: [number, number, number];
  /** pixdim[0]: -1 when the affine is left-handed (det < 0), else 1. */
  qfac: 1 | -1;
}

/**
 * The NIfTI qform parameters closest to `affine` (shears dropped), following
 * the NIfTI-1 standard's method: a left-handed affine is represented by a
 * proper rotation plus qfac = -1, which flips the third axis.
 */
export function qformFromAffine(affine: Affine): Qform {
  const m = linearPart(affine);
  const zooms = voxelSizes(affine).map((z) => (z === 0 ? 1 : z)) as [number, number, number];
  const r = m.map((x, i) => x / zooms[i % 3]!);
  let qfac: 1 | -1 = 1;
  if (determinant3(r) < 0) {
    qfac = -1;
    for (let row = 0; row < 3; row++) r[3 * row + 2] = -r[3 * row + 2]!;
  }
  const [, b, c, d] = matrixToQuaternion(orthogonalFactor3(r));
  return { quatern: [b, c, d], offset: [affine[3]!, affine[7]!, affine[11]!], zooms, qfac };
}

/** The affine a qform describes (the NIfTI-1 "method 2" mapping, as nibabel's get_qform). */
export function affineFromQform(q: Qform): Affine {
  const [b, c, d] = q.quatern;
  const a = Math.sqrt(Math.max(0, 1 - (b * b + c * c + d * d)));
  const r = quaternionToMatrix(a, b, c, d);
  const z = [q.zooms[0], q.zooms[1], q.zooms[2] * q.qfac];
  const out = identity4();
  for (let row = 0; row < 3; row++) {
    for (let col = 0; col < 3; col++) out[4 * row + col] = r[3 * row + col]! * z[col]!;
    out[4 * row + 3] = q.offset[row]!;
  }
  return out;
}
