import type { Dtype, VoxelArray } from "./types.js";

type ArrayCtor = {
  new (length: number): VoxelArray;
  new (buffer: ArrayBuffer, byteOffset?: number, length?: number): VoxelArray;
};

export interface DtypeInfo {
  dtype: Dtype;
  bytes: number;
  ctor: ArrayCtor;
  /** NIfTI datatype code; "bool" has none (written as uint8). */
  niftiCode: number;
  /** numpy type string without the byte-order character. */
  npyKind: string;
}

const TABLE: DtypeInfo[] = [
  { dtype: "uint8", bytes: 1, ctor: Uint8Array, niftiCode: 2, npyKind: "u1" },
  { dtype: "int8", bytes: 1, ctor: Int8Array, niftiCode: 256, npyKind: "i1" },
  { dtype: "int16", bytes: 2, ctor: Int16Array, niftiCode: 4, npyKind: "i2" },
  { dtype: "uint16", bytes: 2, ctor: Uint16Array, niftiCode: 512, npyKind: "u2" },
  { dtype: "int32", bytes: 4, ctor: Int32Array, niftiCode: 8, npyKind: "i4" },
  { dtype: "uint32", bytes: 4, ctor: Uint32Array, niftiCode: 768, npyKind: "u4" },
  { dtype: "float32", bytes: 4, ctor: Float32Array, niftiCode: 16, npyKind: "f4" },
  { dtype: "float64", bytes: 8, ctor: Float64Array, niftiCode: 64, npyKind: "f8" },
  { dtype: "bool", bytes: 1, ctor: Uint8Array, niftiCode: 2, npyKind: "b1" },
];

export function dtypeInfo(dtype: Dtype): DtypeInfo {
  const info = TABLE.find((t) => t.dtype === dtype);
  if (!info) throw new Error(`unknown dtype ${dtype}`);
  return info;
}

export function dtypeFromNiftiCode(code: number): DtypeInfo | undefined {
  return TABLE.find((t) => t.niftiCode === code && t.dtype !== "bool");
}

export function dtypeFromNpyKind(kind: string): DtypeInfo | undefined {
  return TABLE.find((t) => t.npyKind === kind);
}

/** The dtype a typed array holds natively (Uint8Array reads as uint8, never bool). */
export function dtypeOfArray(data: VoxelArray): Dtype {
  if (data instanceof Uint8Array) return "uint8";
  if (data instanceof Int8Array) return "int8";
  if (data instanceof Int16Array) return "int16";
  if (data instanceof Uint16Array) return "uint16";
  if (data instanceof Int32Array) return "int32";
  if (data instanceof Uint32Array) return "uint32";
  if (data instanceof Float32Array) return "float32";
  return "float64";
}

/** Reverses the byte order of every element in place (big-endian files). */
export function swapBytes(bytes: Uint8Array, width: number): void {
  if (width === 1) return;
  for (let i = 0; i + width <= bytes.length; i += width) {
    for (let a = i, b = i + width - 1; a < b; a++, b--) {
      const t = bytes[a]!;
      bytes[a] = bytes[b]!;
      bytes[b] = t;
    }
  }
}
