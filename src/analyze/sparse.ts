// Finding the non-zero parts of label volumes and masks fast. A label is mostly background: the
// left atrium fills well under 1 % of a heart MR volume, so every pass that only cares about
// non-zero voxels can skip the all-zero stretches, found by native byte comparison (memcmp)
// against a block of zeros rather than voxel by voxel in JavaScript.

/** Integer typed arrays: their zero is the all-zero bit pattern (unlike float -0). */
export type IntegerArray = Uint8Array | Int8Array | Uint16Array | Int16Array | Int32Array | Uint32Array;

export function isIntegerArray(a: unknown): a is IntegerArray {
  return (
    a instanceof Uint8Array ||
    a instanceof Int8Array ||
    a instanceof Uint16Array ||
    a instanceof Int16Array ||
    a instanceof Int32Array ||
    a instanceof Uint32Array
  );
}

/**
 * The indices, ascending, of the blocks of `block` elements (the last one may be shorter) that hold
 * a non-zero element. Groups of `group` blocks are compared first, so an all-zero region costs one
 * native comparison per group.
 */
export function occupiedBlocks(data: IntegerArray, block: number, group = 64): Int32Array {
  const n = data.length;
  const size = data.BYTES_PER_ELEMENT;
  const blocks = Math.ceil(n / block);
  const out = new Int32Array(blocks);
  if (n === 0) return out;
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const zeros = Buffer.alloc(Math.min(n, block * group) * size);
  const allZero = (from: number, to: number): boolean => {
    const s = from * size;
    const e = Math.min(n, to) * size;
    return bytes.compare(zeros, 0, e - s, s, e) === 0;
  };
  let k = 0;
  for (let g = 0; g < blocks; g += group) {
    if (allZero(g * block, (g + group) * block)) continue;
    const last = Math.min(blocks, g + group);
    for (let b = g; b < last; b++) if (!allZero(b * block, (b + 1) * block)) out[k++] = b;
  }
  return out.subarray(0, k);
}

/** Elements per block when a mask's shape is not known (any block size gives the same results). */
export const MASK_BLOCK = 1024;
