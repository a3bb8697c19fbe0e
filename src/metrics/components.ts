// Connected-component labelling by one raster scan with a union-find over provisional
// labels, then one relabelling pass. Memory: the label volume plus a table that grows
// with the number of provisional labels, not with the number of voxels.
import type { VoxelArray } from "../imaging/types.js";
import { grid3 } from "./grid.js";

/** 4 or 8 in 2D; 6 (faces), 18 (faces + edges) or 26 (faces + edges + corners) in 3D. */
export type Connectivity = 4 | 8 | 6 | 18 | 26;

export interface Components {
  /** 0 for background, 1..count for components, numbered by their first voxel in memory order. */
  labels: Int32Array;
  count: number;
  /** Voxel count per label; index 0 is the background. */
  sizes: Float64Array;
}

/** Face connectivity for the rank: scipy.ndimage.label's default. */
export function faceConnectivity(rank: number): Connectivity {
  return rank === 3 ? 6 : 4;
}

/** Full connectivity for the rank (every voxel touching by a face, edge or corner). */
export function fullConnectivity(rank: number): Connectivity {
  return rank === 3 ? 26 : 8;
}

/** How many coordinates a neighbour offset may change, checked against the rank. */
function reach(connectivity: Connectivity, rank: 2 | 3): number {
  const ok = rank === 2 ? connectivity === 4 || connectivity === 8 : connectivity >= 6;
  if (!ok) throw new Error(`components: connectivity ${connectivity} does not apply to ${rank}D`);
  return connectivity === 4 || connectivity === 6 ? 1 : connectivity === 8 || connectivity === 18 ? 2 : 3;
}

/** Offsets of the neighbours already visited by a first-axis-fastest scan. */
function backwardOffsets(maxChanged: number): Int8Array {
  const out: number[] = [];
  for (let dz = -1; dz <= 0; dz++) {
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        const earlier = dz < 0 || (dz === 0 && (dy < 0 || (dy === 0 && dx < 0)));
        const changed = (dx !== 0 ? 1 : 0) + (dy !== 0 ? 1 : 0) + (dz !== 0 ? 1 : 0);
        if (earlier && changed <= maxChanged) out.push(dx, dy, dz);
      }
    }
  }
  return Int8Array.from(out);
}

export function labelComponents(
  mask: VoxelArray,
  shape: readonly number[],
  connectivity?: Connectivity,
): Components {
  const g = grid3(shape, mask.length);
  const conn = connectivity ?? faceConnectivity(g.rank);
  const offs = backwardOffsets(reach(conn, g.rank));
  const nOff = offs.length / 3;
  const { nx, ny, nz } = g;
  const labels = new Int32Array(mask.length);

  let parent = new Int32Array(1024);
  let next = 1;
  const find = (a: number): number => {
    while (parent[a] !== a) {
      const up = parent[parent[a]!]!;
      parent[a] = up;
      a = up;
    }
    return a;
  };

  let i = 0;
  for (let z = 0; z < nz; z++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++, i++) {
        if (mask[i] === 0) continue;
        let cur = 0;
        for (let o = 0; o < nOff; o++) {
          const xx = x + offs[3 * o]!;
          const yy = y + offs[3 * o + 1]!;
          const zz = z + offs[3 * o + 2]!;
          if (xx < 0 || xx >= nx || yy < 0 || yy >= ny || zz < 0) continue;
          const l = labels[xx + nx * (yy + ny * zz)]!;
          if (l === 0) continue;
          if (cur === 0) {
            cur = l;
            continue;
          }
          // Union by smaller root, so every set's root is its oldest provisional label.
          const ra = find(cur);
          const rb = find(l);
          if (ra < rb) parent[rb] = ra;
          else if (rb < ra) parent[ra] = rb;
        }
        if (cur === 0) {
          if (next === parent.length) {
            const grown = new Int32Array(parent.length * 2);
            grown.set(parent);
            parent = grown;
          }
          parent[next] = next;
          cur = next++;
        }
        labels[i] = cur;
      }
    }
  }

  // Roots are visited in creation order, and a component's first voxel in memory order
  // always opens its oldest label, so final numbers follow first voxels in memory order.
  const final = new Int32Array(next);
  let count = 0;
  for (let p = 1; p < next; p++) {
    const r = find(p);
    final[p] = r === p ? ++count : final[r]!;
  }
  const sizes = new Float64Array(count + 1);
  for (let j = 0; j < labels.length; j++) {
    const l = final[labels[j]!]!;
    labels[j] = l;
    sizes[l]!++;
  }
  sizes[0] = 0;
  return { labels, count, sizes };
}

/**
 * The largest connected component of the nonzero voxels, as a 0/1 mask. Ties: the
 * component whose first voxel comes first in memory order (first axis fastest) wins.
 * Connectivity defaults to full (26 in 3D, 8 in 2D), as MONAI's KeepLargestConnectedComponent.
 */
export function keepLargestComponent(
  mask: VoxelArray,
  shape: readonly number[],
  connectivity?: Connectivity,
): Uint8Array {
  const conn = connectivity ?? fullConnectivity(shape.length);
  const { labels, count, sizes } = labelComponents(mask, shape, conn);
  const out = new Uint8Array(mask.length);
  if (count === 0) return out;
  let best = 1;
  for (let l = 2; l <= count; l++) if (sizes[l]! > sizes[best]!) best = l;
  for (let j = 0; j < labels.length; j++) out[j] = labels[j] === best ? 1 : 0;
  return out;
}
