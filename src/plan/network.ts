// What a network asks of the patch it is trained and run on.
import type { JsonObject } from "./types.js";

/**
 * The residual UNet halves each axis once per stride and adds the skip back by concatenation, so
 * an axis that is not a multiple of the product of the strides comes back one voxel short
 * somewhere and the concatenation fails. The basic UNet pads such a gap itself (1: any size).
 */
export function patchMultiple(network: JsonObject): number {
  if ((network.family ?? "unet") !== "unet") return 1;
  const strides = Array.isArray(network.strides) ? network.strides : [2, 2, 2, 2];
  return strides.reduce<number>((m, s) => m * (typeof s === "number" && s > 0 ? s : 1), 1);
}

/** Why `patch` does not fit `network`, one line; null when it does. */
export function patchProblem(patch: number[], network: JsonObject): string | null {
  const m = patchMultiple(network);
  const bad = patch.findIndex((p) => p % m !== 0);
  if (bad < 0) return null;
  const p = patch[bad]!;
  const lower = Math.max(m, Math.floor(p / m) * m);
  const upper = Math.ceil(p / m) * m;
  const near = lower === upper ? `${upper}` : `${lower} or ${upper}`;
  return `patch_size [${patch.join(", ")}]: ${p} (axis ${bad}) is not a multiple of ${m}, the product of the UNet's strides [${(network.strides as number[] | undefined)?.join(", ") ?? "2, 2, 2, 2"}]; use e.g. ${near}`;
}
