// The recommendation: which checkpoint a user should keep. Pure, so the rule is tested by hand.
//
// The fine-tuned checkpoint is recommended only when (a) its weights differ from the pretrained
// ones, tensor by tensor (a "fine-tuned" file that is the epoch-0 copy of the pretrained weights
// is the checkpoint trap), and (b) its formal Dice beats the pretrained formal Dice by more than
// IMPROVEMENT_MARGIN. Without formal evaluation, the training-time trace (epoch 0 = the
// pretrained weights) stands in, when there is an epoch 0 to compare with; otherwise nothing
// shows an improvement and the pretrained checkpoint stays.

export const IMPROVEMENT_MARGIN = 1e-3;

export interface DecisionInput {
  weightsMatch: boolean;
  formalPretrained: number | null;
  formalFinetuned: number | null;
  trainingStart: number | null;
  trainingBest: number | null;
}

export interface Decision {
  basis: "formal" | "training" | "none";
  improved: boolean;
  regressed: boolean;
  recommend: "pretrained" | "finetuned";
  reason: string;
}

export function decide(d: DecisionInput): Decision {
  let basis: Decision["basis"] = "none";
  let before: number | null = null;
  let after: number | null = null;
  if (d.formalPretrained !== null && d.formalFinetuned !== null) {
    basis = "formal";
    [before, after] = [d.formalPretrained, d.formalFinetuned];
  } else if (d.trainingStart !== null && d.trainingBest !== null) {
    basis = "training";
    [before, after] = [d.trainingStart, d.trainingBest];
  }
  const better = before !== null && after !== null && after - before > IMPROVEMENT_MARGIN;
  const worse = before !== null && after !== null && before - after > IMPROVEMENT_MARGIN;
  const improved = better && !d.weightsMatch;
  const reason = d.weightsMatch
    ? "the fine-tuned checkpoint holds the pretrained weights tensor for tensor (no epoch beat the start): nothing was gained"
    : basis === "none"
      ? "no formal evaluation and no epoch-0 validation: nothing shows an improvement"
      : improved
        ? `${basis} Dice ${after} beats ${before} by more than ${IMPROVEMENT_MARGIN}`
        : `${basis} Dice ${after} does not beat ${before} by more than ${IMPROVEMENT_MARGIN}`;
  return {
    basis,
    improved,
    regressed: worse && !d.weightsMatch,
    recommend: improved ? "finetuned" : "pretrained",
    reason,
  };
}
