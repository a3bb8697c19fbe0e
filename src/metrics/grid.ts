// Shape helpers shared by the metric modules. A 2D grid is handled as a 3D grid with
// nz = 1; `rank` remembers which axes really exist so that neighbourhoods never reach
// along an axis the caller does not have.
import type { VoxelArray } from "../imaging/types.js";

export interface Grid3 {
  nx: number;
  ny: number;
  nz: number;
  rank: 2 | 3;
}

export function grid3(shape: readonly number[], length: number): Grid3 {
  if (shape.length !== 2 && shape.length !== 3) {
    throw new Error(`metrics: expected a 2D or 3D shape, got [${shape}]`);
  }
  for (const s of shape) {
    if (!Number.isInteger(s) || s < 1) throw new Error(`metrics: bad shape [${shape}]`);
  }
  const nx = shape[0]!;
  const ny = shape[1]!;
  const nz = shape.length === 3 ? shape[2]! : 1;
  if (nx * ny * nz !== length) {
    throw new Error(`metrics: data has ${length} voxels but shape [${shape}] needs ${nx * ny * nz}`);
  }
  return { nx, ny, nz, rank: shape.length === 3 ? 3 : 2 };
}

/** 1 where `data` equals `label`, or where it is nonzero when `label` is undefined. */
export function binarize(data: VoxelArray, label?: number): Uint8Array {
  const out = new Uint8Array(data.length);
  if (label === undefined) {
    for (let i = 0; i < data.length; i++) out[i] = data[i] !== 0 ? 1 : 0;
  } else {
    for (let i = 0; i < data.length; i++) out[i] = data[i] === label ? 1 : 0;
  }
  return out;
}

/** Inclusive voxel bounding box. */
export interface Box {
  x0: number;
  x1: number;
  y0: number;
  y1: number;
  z0: number;
  z1: number;
}

/** Bounding box of the 1s of two 0/1 masks; null when both are empty. */
export function unionBox(a: Uint8Array, b: Uint8Array, g: Grid3): Box | null {
  const box: Box = { x0: g.nx, x1: -1, y0: g.ny, y1: -1, z0: g.nz, z1: -1 };
  growBox(box, a, g);
  growBox(box, b, g);
  return box.x1 < 0 ? null : box;
}

/**
 * Widens `box` to the 1s of a 0/1 mask. indexOf/lastIndexOf jump over empty rows
 * at memchr speed, so a full-size volume with a small organ costs about a millisecond.
 */
function growBox(box: Box, mask: Uint8Array, g: Grid3): void {
  const { nx, ny } = g;
  // Node's Buffer searches with memchr; Uint8Array's own indexOf is a plain loop in V8.
  const m = Buffer.from(mask.buffer, mask.byteOffset, mask.length);
  let pos = m.indexOf(1);
  while (pos >= 0) {
    const row = Math.floor(pos / nx);
    const rowStart = row * nx;
    const last = m.lastIndexOf(1, rowStart + nx - 1);
    const y = row % ny;
    const z = Math.floor(row / ny);
    if (pos - rowStart < box.x0) box.x0 = pos - rowStart;
    if (last - rowStart > box.x1) box.x1 = last - rowStart;
    if (y < box.y0) box.y0 = y;
    if (y > box.y1) box.y1 = y;
    if (z < box.z0) box.z0 = z;
    if (z > box.z1) box.z1 = z;
    pos = m.indexOf(1, rowStart + nx);
  }
}

/** Copy of the box out of a grid, first axis fastest. */
export function crop(src: Uint8Array, g: Grid3, box: Box): Uint8Array {
  const cx = box.x1 - box.x0 + 1;
  const cy = box.y1 - box.y0 + 1;
  const cz = box.z1 - box.z0 + 1;
  const out = new Uint8Array(cx * cy * cz);
  let o = 0;
  for (let z = box.z0; z <= box.z1; z++) {
    for (let y = box.y0; y <= box.y1; y++) {
      const row = box.x0 + g.nx * (y + g.ny * z);
      out.set(src.subarray(row, row + cx), o);
      o += cx;
    }
  }
  return out;
}
