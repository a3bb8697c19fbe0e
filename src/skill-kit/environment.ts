import { platform, release } from "node:os";

/** What a Node skill can say about where it ran; Python skills add python/torch/cuda/gpu. */
export function nodeEnvironment(): Record<string, string | number | null> {
  return {
    node: process.version,
    python: null,
    torch: null,
    cuda: null,
    gpu_name: null,
    gpu_memory_mb: null,
    platform: `${platform()} ${release()}`,
  };
}
