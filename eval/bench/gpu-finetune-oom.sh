#!/usr/bin/env bash
# The CUDA acceptance of issue 7's OOM case: on a CUDA GPU, finetuning with an absurd patch size
# must give runtime.oom: true, a non-zero exit, a one-line hint, and no checkpoint claimed.
#
#   1. pipelines/finetune.yaml --smoke makes a small pretrained package (cv-train fold all on
#      fixtures/heart_micro) and checks the normal path on this GPU;
#   2. the finetune skill alone (pipeline run-script) on that package and fixtures/spleen_micro
#      with patch_size PATCH (default 768^3: one 16-channel bf16 activation of a batch of 2 is
#      already 29 GB, so the UNet's activations exceed any current GPU).
#   Judged: step 2 exits non-zero; one stderr line names "out of memory" and the hint (reduce
#   patch_size ...); the failed attempt's output.json.rejected (failed/finetune/attempt-1/) says
#   runtime.oom true and names no checkpoint; no .safetensors file is left in that run. Step 1
#   must succeed.
#
# Usage: bash eval/bench/gpu-finetune-oom.sh [--dry-run]
# Environment: OUT (default $BENCH_WORK/out) gets gpu-finetune-oom.json and .log; BENCH_WORK
#   (default /tmp/gpu-finetune-oom) holds the runs; PATCH overrides the absurd patch (JSON list).
# A GPU machine without Node.js: as eval/bench/gpu-heart-cv.sh (.portable/bootstrap.sh).
set -euo pipefail

dry=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry=1 ;;
    -h | --help)
      sed -n '2,18p' "$0"
      exit 0
      ;;
    *)
      echo "unknown argument: $arg (see --help)" >&2
      exit 2
      ;;
  esac
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
WORK=${BENCH_WORK:-/tmp/gpu-finetune-oom}
OUT=${OUT:-$WORK/out}
LOG=$OUT/gpu-finetune-oom.log
RESULT=$OUT/gpu-finetune-oom.json
PATCH=${PATCH:-[768,768,768]}

smoke_cmd=(node bin/pipeline.js run pipelines/finetune.yaml --smoke --runs-dir "$WORK/runs")
oom_cmd=(node bin/pipeline.js run-script --workdir / --runs-dir "$WORK/oom" finetune
  --pretrained PRETRAINED_PACKAGE --dataset_dir "$ROOT/fixtures/spleen_micro" --label_mapping '[[1,1]]'
  --epochs 1 --patch_size "$PATCH")

if [ "$dry" = 1 ]; then
  echo "cd $ROOT"
  [ -x "$(command -v node || true)" ] || echo "source .portable/bootstrap.sh"
  echo "rm -rf $WORK/runs $WORK/oom"
  printf '%q ' "${smoke_cmd[@]}"
  echo
  echo "# PRETRAINED_PACKAGE = <the smoke run folder>/stages/pretrain/model"
  printf '%q ' "${oom_cmd[@]}"
  echo
  echo "# then: exit code, stderr, failed/finetune/attempt-1/output.json.rejected -> $RESULT, log -> $LOG"
  exit 0
fi

mkdir -p "$OUT" "$WORK"
: >"$LOG"
log() { echo "$*" | tee -a "$LOG"; }
# Node.js (from .portable/ on a GPU machine without it) and the built dist/.
# shellcheck source=eval/bench/gpu-env.sh
source eval/bench/gpu-env.sh
"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null || {
  echo "no CUDA device visible to $PY: this benchmark judges a CUDA out-of-memory error" >&2
  exit 2
}
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,memory.total --format=csv | tee -a "$LOG"

rm -rf "$WORK/runs" "$WORK/oom"
log "\$ ${smoke_cmd[*]}"
set +e
"${smoke_cmd[@]}" >"$WORK/smoke.stdout" 2>>"$LOG"
smoke_rc=$?
set -e
smoke_run=$(tail -n 1 "$WORK/smoke.stdout" || true)
log "smoke exit $smoke_rc, run folder $smoke_run"
pkg=$smoke_run/stages/pretrain/model
oom_cmd=("${oom_cmd[@]/PRETRAINED_PACKAGE/$pkg}")
log "\$ ${oom_cmd[*]}"
set +e
"${oom_cmd[@]}" >"$WORK/oom.stdout" 2>"$WORK/oom.stderr"
oom_rc=$?
set -e
tee -a "$LOG" <"$WORK/oom.stderr"
oom_run=$(tail -n 1 "$WORK/oom.stdout" || true)

python3 - "$smoke_rc" "$oom_rc" "$oom_run" "$WORK/oom.stderr" "$RESULT" <<'PY' 2>&1 | tee -a "$LOG"
import glob, json, os, sys

smoke_rc, oom_rc, oom_run, stderr_path, result_path = sys.argv[1:]
smoke_rc, oom_rc = int(smoke_rc), int(oom_rc)
lines = [l for l in open(stderr_path).read().splitlines() if l.strip()]
hint = next((l for l in lines if "out of memory" in l and "patch_size" in l), "")
rejected = sorted(glob.glob(os.path.join(oom_run, "failed", "finetune", "attempt-*", "output.json.rejected")))
out = json.load(open(rejected[0])) if rejected else None
checkpoints = sorted(glob.glob(os.path.join(oom_run, "**", "*.safetensors"), recursive=True))
checks = {
    "smoke run succeeded": smoke_rc == 0,
    "oom run exits non-zero": oom_rc != 0,
    "one stderr line names out of memory and the hint": bool(hint),
    "output.json says runtime.oom true": bool(out) and out.get("runtime", {}).get("oom") is True,
    "no checkpoint claimed": bool(out) and not out.get("finetuned_ckpt") and not out.get("recommended_ckpt"),
    "no checkpoint file left": not checkpoints,
}
result = {"smoke_exit": smoke_rc, "oom_exit": oom_rc, "hint_line": hint, "rejected_output": rejected,
          "peak_gpu_mb": (out or {}).get("runtime", {}).get("peak_gpu_mb"), "checkpoints_left": checkpoints,
          "checks": checks, "verdict": "PASS" if all(checks.values()) else "FAIL"}
json.dump(result, open(result_path, "w"), indent=2)
for name, ok in checks.items():
    print(("PASS " if ok else "FAIL ") + name)
print(f"verdict: {result['verdict']}  ->  {result_path}")
PY
