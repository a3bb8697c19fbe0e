// Label values and network classes. Value k is class k everywhere (preprocessed labels, the
// trainer, the model package, inference), so the network has (largest value + 1) outputs; a value
// the dataset does not declare (a gap, as in BraTS's 0, 1, 2, 4) is a class no voxel has: the
// sampler never asks for it, the network masks its logits (network.masked_classes, medpipe.nets),
// so no prediction holds it, and the scores never report it.

/** The network's output count for a label dictionary ({"0": "background", "1": ...}). */
export function classCount(labels: Record<string, string>): number {
  return Math.max(0, ...Object.keys(labels).map(Number)) + 1;
}

/** The classes between 1 and the largest value that no declared label value stands for. */
export function maskedClasses(labels: Record<string, string>): number[] {
  const declared = new Set(Object.keys(labels).map(Number));
  return Array.from({ length: classCount(labels) }, (_, k) => k).filter((k) => k > 0 && !declared.has(k));
}

/**
 * Label sampler probabilities: half the patches centred on background, half on foreground shared
 * equally by the declared foreground values (the reference's {0: 0.5, 1: 0.5} for one class); 0
 * for a gap.
 */
export function defaultProbabilities(labels: Record<string, string>): number[] {
  const classes = classCount(labels);
  if (classes < 2) return [1];
  const foreground = Object.keys(labels)
    .map(Number)
    .filter((k) => k !== 0);
  return Array.from({ length: classes }, (_, k) =>
    k === 0 ? 0.5 : foreground.includes(k) ? 0.5 / foreground.length : 0,
  );
}
