/** Typed arrays a voxel buffer may be held in. */
export type VoxelArray =
  | Uint8Array
  | Int8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | Float32Array
  | Float64Array;

/**
 * A 2D or 3D grid of voxels. `data` is flat with the FIRST axis varying fastest
 * (Fortran order, the order NIfTI stores voxels in): index = x + nx*(y + ny*z).
 * `spacing` is the voxel size in mm along each axis of `shape`.
 */
export interface Volume<T extends VoxelArray = VoxelArray> {
  data: T;
  shape: number[];
  spacing: number[];
}

/** Element types an image's voxels may have; "bool" only arises from `.npy` files (held as 0/1 in a Uint8Array). */
export type Dtype =
  | "uint8"
  | "int8"
  | "int16"
  | "uint16"
  | "int32"
  | "uint32"
  | "float32"
  | "float64"
  | "bool";

/**
 * A 4x4 voxel-to-world matrix (RAS+ mm, the NIfTI/nibabel convention), row-major:
 * world[r] = sum_c affine[4*r + c] * [i, j, k, 1][c].
 */
export type Affine = number[];

/**
 * A volume placed in the world. Axes beyond the third (time, channels) are not
 * spatial: the affine maps only the first three, and `spacing` holds whatever
 * the file says for the others.
 */
export interface Image<T extends VoxelArray = VoxelArray> extends Volume<T> {
  affine: Affine;
  dtype: Dtype;
}
