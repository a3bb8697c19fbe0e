// Volumes here are channel-planar and first-axis fastest, the project's layout
// (src/imaging/README.md): a `ChannelVolume` with shape [C, n0, n1(, n2)] has voxel
// (x, y, z) of channel c at data[x + n0·(y + n1·(z + n2·c))]. That is byte for byte the
// Fortran `(nx, ny, nz, C)` array of a preprocessed image.npy, and of the probabilities
// the Python side writes; the shape merely lists the channel first, as the Python
// `sliding_window_inference` takes (C, *spatial).
//
// The network instead sees C-order tensors (B, C, n0, n1, n2): n2 fastest. The same
// voxel therefore sits at a *transposed* position in a window tensor; window-io.ts does
// that transposition while it copies windows in and probabilities out, so no whole
// transposed copy of the volume is ever made.

/** A multi-channel volume: shape [C, ...spatial]; data channel-planar, first spatial axis fastest. */
export interface ChannelVolume {
  data: Float32Array;
  shape: number[];
}

/** Voxels per channel. */
export function voxelCount(spatial: readonly number[]): number {
  return spatial.reduce((a, b) => a * b, 1);
}

/**
 * A ChannelVolume over an image.npy-style array (first axis fastest, shape (x, y[, z][, C])).
 * `spatialDims` says whether a trailing axis is channels. No copy: the bytes already match.
 */
export function channelsFirst(
  data: Float32Array,
  shape: readonly number[],
  spatialDims: number,
): ChannelVolume {
  if (shape.length !== spatialDims && shape.length !== spatialDims + 1)
    throw new RangeError(
      `an array of shape [${shape.join(", ")}] is not a ${spatialDims}D image (with or without channels)`,
    );
  const spatial = shape.slice(0, spatialDims);
  const channels = shape.length > spatialDims ? shape[spatialDims]! : 1;
  return { data, shape: [channels, ...spatial] };
}

/** The image.npy-style view (x, y[, z], C) of a ChannelVolume, e.g. to write probabilities with writeNpy. No copy. */
export function channelsLast(volume: ChannelVolume): { data: Float32Array; shape: number[] } {
  const [channels = 1, ...spatial] = volume.shape;
  return { data: volume.data, shape: [...spatial, channels] };
}

/**
 * Per voxel, the index of the most probable class (ties: the lowest class, as the
 * Python side's argmax), as a first-axis-fastest label map over the spatial shape.
 */
export function argmax(probabilities: ChannelVolume): Uint8Array {
  const [classes = 0, ...spatial] = probabilities.shape;
  if (classes < 1 || classes > 256)
    throw new RangeError(`cannot store argmax of ${classes} classes in uint8`);
  const n = voxelCount(spatial);
  const p = probabilities.data;
  if (p.length !== classes * n)
    throw new RangeError(`data has ${p.length} values, shape needs ${classes * n}`);
  const labels = new Uint8Array(n);
  const best = p.slice(0, n);
  for (let c = 1; c < classes; c++) {
    const plane = c * n;
    for (let v = 0; v < n; v++) {
      const value = p[plane + v]!;
      // Strictly greater: an equal later class never wins, so ties keep the lowest.
      if (value > best[v]!) {
        best[v] = value;
        labels[v] = c;
      }
    }
  }
  return labels;
}
