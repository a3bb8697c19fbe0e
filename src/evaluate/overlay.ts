// One case as a picture: the image in grey (when known), the reference and the prediction in
// class colours, side by side, as numpy/matplotlib show a 2D array: array row r is picture row r
// (top first), array column c picture column c. A 3D case is shown by one axial slice (axialView).
import type { RasterImage } from "../imaging/png.js";
import type { VoxelArray } from "../imaging/types.js";

/** A 2D array in the project's order: `data[r + rows * c]` is row r, column c (first axis fastest). */
export interface Slice {
  data: VoxelArray;
  shape: number[];
}

/**
 * Class colours: background black, then the Okabe-Ito colour-blind-safe set (orange, sky blue,
 * bluish green, yellow, blue, vermillion, reddish purple), repeated for labels beyond 7.
 */
export const CLASS_COLOURS: readonly (readonly [number, number, number])[] = [
  [0, 0, 0],
  [230, 159, 0],
  [86, 180, 233],
  [0, 158, 115],
  [240, 228, 66],
  [0, 114, 178],
  [213, 94, 0],
  [204, 121, 167],
];

/** The RGB colour of a label value (0 black; others cycle through CLASS_COLOURS[1..]). */
export function classColour(label: number): readonly [number, number, number] {
  if (label <= 0) return CLASS_COLOURS[0]!;
  return CLASS_COLOURS[1 + ((label - 1) % (CLASS_COLOURS.length - 1))]!;
}

/** Pixels of white between panels. */
export const PANEL_GAP = 4;

/** Grey levels: the slice's finite minimum → 0, maximum → 255, linearly, rounded (flat: 0). */
function greyLevels(data: VoxelArray): Uint8Array {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of data) {
    if (!Number.isFinite(v)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const out = new Uint8Array(data.length);
  if (!(hi > lo)) return out;
  for (let i = 0; i < data.length; i++) {
    const v = data[i]!;
    out[i] = Number.isFinite(v) ? Math.round(((v - lo) / (hi - lo)) * 255) : 0;
  }
  return out;
}

/**
 * [image |] reference | prediction, PANEL_GAP white pixels apart. All slices must share one
 * shape [rows, columns].
 */
export function overlayRaster(reference: Slice, prediction: Slice, image: Slice | null): RasterImage {
  const [rows, cols] = reference.shape as [number, number];
  for (const s of [prediction, ...(image ? [image] : [])])
    if (s.shape.length !== 2 || s.shape[0] !== rows || s.shape[1] !== cols)
      throw new Error(
        `overlay: shape [${s.shape.join(", ")}] differs from the reference's [${rows}, ${cols}]`,
      );
  const panels: Array<(i: number) => readonly [number, number, number]> = [];
  if (image) {
    const grey = greyLevels(image.data);
    panels.push((i) => [grey[i]!, grey[i]!, grey[i]!]);
  }
  panels.push(
    (i) => classColour(reference.data[i]!),
    (i) => classColour(prediction.data[i]!),
  );
  const width = panels.length * cols + (panels.length - 1) * PANEL_GAP;
  const data = new Uint8Array(width * rows * 3).fill(255);
  panels.forEach((colour, p) => {
    const x0 = p * (cols + PANEL_GAP);
    for (let r = 0; r < rows; r++)
      for (let c = 0; c < cols; c++) {
        const at = (r * width + x0 + c) * 3;
        const rgb = colour(r + rows * c);
        data[at] = rgb[0];
        data[at + 1] = rgb[1];
        data[at + 2] = rgb[2];
      }
  });
  return { width, height: rows, channels: 3, data };
}

type Volume3 = { data: VoxelArray; shape: readonly number[] };

/**
 * The axial slice of a 3D mask in the comparison space (closest-canonical RAS+) as radiologists
 * view it: the patient's right on the left of the picture (x descending), anterior at the top
 * (y descending). Rows are y, columns x.
 */
export function axialView(volume: Volume3, z: number): Slice {
  const [nx, ny, nz] = volume.shape as [number, number, number];
  if (volume.shape.length !== 3 || z < 0 || z >= nz)
    throw new RangeError(`axialView: slice ${z} of shape [${volume.shape.join(", ")}]`);
  const rows = ny;
  const data = new Float64Array(nx * ny);
  const plane = nx * ny * z;
  for (let c = 0; c < nx; c++)
    for (let r = 0; r < ny; r++) data[r + rows * c] = volume.data[nx - 1 - c + nx * (ny - 1 - r) + plane]!;
  return { data, shape: [rows, nx] };
}

/** The axial slice with the most nonzero voxels of `reference` (the first on ties); the middle one when it has none. */
export function busiestAxialSlice(reference: Volume3): number {
  const [nx, ny, nz] = reference.shape as [number, number, number];
  const plane = nx * ny;
  let best = -1;
  let most = 0;
  for (let z = 0; z < nz; z++) {
    let n = 0;
    for (let i = z * plane; i < (z + 1) * plane; i++) if (reference.data[i] !== 0) n++;
    if (n > most) {
      most = n;
      best = z;
    }
  }
  return best < 0 ? Math.floor(nz / 2) : best;
}
