#!/usr/bin/env bash
# Every GPU acceptance benchmark in one call, for a lent GPU machine (15 minutes of device time a
# session, the machine's start included; 10 a command: one call, one start). In order of weight:
# issue 5 (gpu-heart-cv.sh), issue 7's OOM case (gpu-finetune-oom.sh), issue 9 (gpu-tissue-2d.sh).
# Each writes its .json and .log into $OUT as it goes, so what finished survives a call cut
# short; the verdict lines of all three are printed last.
#
# Usage, from the project root (after npm ci, npm run build and ../shared/portable/pack.sh here;
# carry .portable and dist):
#   OUT=$OUT bash eval/bench/gpu-all.sh              the benchmarks (needs a CUDA GPU)
#   bash eval/bench/gpu-all.sh --dry-run             each script's commands, nothing run
#   bash eval/bench/gpu-all.sh --rehearsal           heart-cv and tissue-2d on their tiny stand-ins
#                                                    (CPU allowed; the OOM case needs CUDA: skipped)
# Environment: OUT (default /tmp/gpu-all/out); ONLY, a space-separated subset of
#   "heart-cv finetune-oom tissue-2d"; CALL_BUDGET (seconds, e.g. 570 for a 600 s command): the
#   tissue-2d training gets what is left of it after the others, less TISSUE_RESERVE (default
#   150 s: its stand-in, preprocessing, held-out scoring, the ONNX predict and test stages and
#   verify), as its time budget (TIME_LIMIT, cv-train's time_limit_s), or is skipped when under
#   60 s are left; an explicit TIME_LIMIT wins.
set -uo pipefail

mode=bench
for arg in "$@"; do
  case "$arg" in
    --dry-run) mode=dry ;;
    --rehearsal) mode=rehearsal ;;
    -h | --help)
      sed -n '2,19p' "$0"
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
OUT=${OUT:-/tmp/gpu-all/out}
mkdir -p "$OUT"
benches=${ONLY:-heart-cv finetune-oom tissue-2d}
summary=()
failed=0
call_start=$SECONDS
for b in $benches; do
  script=eval/bench/gpu-$b.sh
  [ -f "$script" ] || {
    echo "unknown benchmark in ONLY: $b (one of: heart-cv finetune-oom tissue-2d)" >&2
    exit 2
  }
  args=()
  case "$mode" in
    dry) args=(--dry-run) ;;
    rehearsal)
      if [ "$b" = finetune-oom ]; then
        summary+=("$b: skipped (needs CUDA)")
        continue
      fi
      args=(--rehearsal)
      ;;
  esac
  budget=()
  if [ "$b" = tissue-2d ] && [ "$mode" != rehearsal ] && [ -n "${CALL_BUDGET:-}" ] && [ -z "${TIME_LIMIT:-}" ]; then
    left=$((CALL_BUDGET - (SECONDS - call_start) - ${TISSUE_RESERVE:-150}))
    if [ "$left" -lt 60 ]; then
      summary+=("$b: skipped (${left} s of training time left in CALL_BUDGET=$CALL_BUDGET)")
      failed=1
      continue
    fi
    budget=("TIME_LIMIT=$left")
  fi
  echo "=== $b ($(date -u +%H:%M:%S)) ${budget[*]}"
  start=$SECONDS
  env OUT="$OUT" BENCH_WORK="/tmp/gpu-all/$b" "${budget[@]}" bash "$script" "${args[@]}" 2>&1 | tee "$OUT/gpu-all-$b.txt"
  rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || failed=1
  verdict=$(grep -E '^verdict:' "$OUT/gpu-all-$b.txt" | tail -1)
  summary+=("$b: exit $rc in $((SECONDS - start)) s; ${verdict:-no verdict line}")
done
echo
echo "=== summary ($mode)"
printf '%s\n' "${summary[@]}"
exit "$failed"
