// Comparing two checkpoints by their tensors, not their bytes: the same weights written with
// other metadata or in another order are still the same weights (src/evidence/safetensors.ts,
// the digest definition shared with medpipe/safetensors_io.py).
import { digestOfDigests, readSafetensors, tensorDigests } from "../evidence/safetensors.js";

export interface WeightsComparison {
  /** Same tensor names, and every tensor's digest (dtype, shape, bytes) equal. */
  identical: boolean;
  /** Tensors whose digests differ (or that one side lacks). */
  differing: number;
  tensors: number;
  digest_a: string;
  digest_b: string;
}

export function compareWeights(a: string, b: string): WeightsComparison {
  const da = tensorDigests(readSafetensors(a));
  const db = tensorDigests(readSafetensors(b));
  const names = new Set([...Object.keys(da), ...Object.keys(db)]);
  let differing = 0;
  for (const n of names) if (da[n] === undefined || da[n] !== db[n]) differing++;
  return {
    identical: differing === 0,
    differing,
    tensors: names.size,
    digest_a: digestOfDigests(da),
    digest_b: digestOfDigests(db),
  };
}
