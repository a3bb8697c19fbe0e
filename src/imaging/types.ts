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
