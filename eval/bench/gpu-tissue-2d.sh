#!/usr/bin/env bash
# The GPU acceptance of issue 9: pipelines/tissue-2d.yaml, the 2D tissue reference recipe, on a
# generated 2D stand-in, on one CUDA GPU.
#
#   334 synthetic T1w slices of 256x256 (train/ 200, val/ 67, test/ 67), the manifest's recipe
#   unchanged (BasicUNet 32-512, 0.8 Dice + 0.2 CE, Adam 1e-3, 200x200 crops, validation every 10
#   epochs, early stopping after 20 validations without a new best, at most 700 epochs); target:
#     - mean foreground Dice >= 0.90 on the validation slices: the mean over CSF, grey and white
#       matter of the per-slice Dice of the selected model on val/ (cv-train's held-out scores,
#       `performance.mean[k].dice`; MONAI DiceMetric's mean over slices and classes)
#   recorded too: the training-time validation Dice of the selected epoch (pooled over the
#   slices), where early stopping stopped, the test stage's mean foreground Dice on test/, times.
#
# Usage, from anywhere (it works from the project root it lives in):
#   bash eval/bench/gpu-tissue-2d.sh              the benchmark (needs a CUDA GPU)
#   bash eval/bench/gpu-tissue-2d.sh --dry-run    print the commands and the configuration, run nothing
#   bash eval/bench/gpu-tissue-2d.sh --rehearsal  the same script on a tiny stand-in (20 slices of
#                                                 64x64, 4 epochs, 40x40 crops), CPU allowed; no
#                                                 target judged
# Environment: OUT (default $BENCH_WORK/out) gets gpu-tissue-2d.json and gpu-tissue-2d.log;
#   BENCH_WORK (default /tmp/gpu-tissue-2d) holds the stand-in and the runs. CASES, SIZE, EPOCHS,
#   PATCH, VAL_EVERY, PATIENCE override the mode's values (a reduced run; the target is then not
#   judged: the verdict says REDUCED). TIME_LIMIT (seconds, default none) is cv-train's
#   time_limit_s, a wall-clock budget for training: the recipe is unchanged, training stops after
#   the first epoch that ends past it (validated), like early stopping, and the JSON records it.
#   eval/bench/gpu-all.sh sets it from what is left of its call.
# A GPU machine without Node.js: as eval/bench/gpu-heart-cv.sh (.portable/bootstrap.sh).
set -euo pipefail

mode=bench
dry=0
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry=1 ;;
    --rehearsal) mode=rehearsal ;;
    -h | --help)
      sed -n '2,29p' "$0"
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
WORK=${BENCH_WORK:-/tmp/gpu-tissue-2d}
OUT=${OUT:-$WORK/out}
LOG=$OUT/gpu-tissue-2d.log
RESULT=$OUT/gpu-tissue-2d.json

if [ "$mode" = bench ]; then
  d_cases=334 d_size=256,256 d_epochs=700 d_patch='[200,200]' d_val=10 d_patience=20
else
  d_cases=20 d_size=64,64 d_epochs=4 d_patch='[40,40]' d_val=2 d_patience=2
fi
reduced=0
for v in CASES SIZE EPOCHS PATCH VAL_EVERY PATIENCE; do [ -n "${!v:-}" ] && reduced=1; done
CASES=${CASES:-$d_cases} SIZE=${SIZE:-$d_size} EPOCHS=${EPOCHS:-$d_epochs} PATCH=${PATCH:-$d_patch}
VAL_EVERY=${VAL_EVERY:-$d_val} PATIENCE=${PATIENCE:-$d_patience}
[ "$mode" = bench ] && [ "$reduced" = 1 ] && mode=reduced
DATA=$WORK/tissue$CASES
RUNS=$WORK/runs

make_cmd=(node bin/pipeline.js fixtures make tissue2d --cases "$CASES" --size "$SIZE" --seed 9 --out "$DATA")
run_cmd=(node bin/pipeline.js run pipelines/tissue-2d.yaml
  --set "dataset=$DATA" --set "epochs=$EPOCHS" --set "patch_size=$PATCH"
  --set "val_every=$VAL_EVERY" --set "patience=$PATIENCE" --runs-dir "$RUNS")
[ -n "${TIME_LIMIT:-}" ] && run_cmd+=(--set "time_limit_s=$TIME_LIMIT")

if [ "$dry" = 1 ]; then
  echo "mode: $mode (slices $CASES of $SIZE: 60/20/20 into train/ val/ test/; epochs <= $EPOCHS, crops $PATCH,"
  echo "      validation every $VAL_EVERY epochs, patience $PATIENCE validations, training budget ${TIME_LIMIT:-none} s;"
  echo "      the rest is the manifest's recipe)"
  echo "cd $ROOT"
  [ -x "$(command -v node || true)" ] || echo "source .portable/bootstrap.sh"
  echo "rm -rf $DATA $RUNS"
  printf '%q ' "${make_cmd[@]}"
  echo
  printf '%q ' "${run_cmd[@]}"
  echo
  echo "# then: the train and test stages' output.json and trace.json, nvidia-smi -> $RESULT, log -> $LOG"
  exit 0
fi

mkdir -p "$OUT" "$WORK"
: >"$LOG"
log() { echo "$*" | tee -a "$LOG"; }

# Node.js (from .portable/ on a GPU machine without it) and the built dist/.
# shellcheck source=eval/bench/gpu-env.sh
source eval/bench/gpu-env.sh

log "== gpu-tissue-2d ($mode) $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
smi=$OUT/nvidia-smi.txt
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >"$smi" 2>&1 || true
else
  echo "nvidia-smi: not found" >"$smi"
fi
tee -a "$LOG" <"$smi"
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2>&1 | tee -a "$LOG" || true

rm -rf "$DATA" "$RUNS"
log "\$ ${make_cmd[*]}"
t0=$(date +%s.%N)
"${make_cmd[@]}" 2>&1 | tail -n 1 | tee -a "$LOG"
t1=$(date +%s.%N)
log "\$ ${run_cmd[*]}"
set +e
"${run_cmd[@]}" >"$WORK/run.stdout" 2> >(grep --line-buffered -v ' case id=\| case case=\|analyze: case' | tee -a "$LOG" >&2)
rc=$?
set -e
t2=$(date +%s.%N)
run_dir=$(tail -n 1 "$WORK/run.stdout" || true)
log "pipeline exit $rc, run folder $run_dir"

python3 - "$mode" "$rc" "$run_dir" "$t0" "$t1" "$t2" "$smi" "$RESULT" "${make_cmd[*]}" "${run_cmd[*]}" <<'PY' 2>&1 | tee -a "$LOG"
import json, os, sys

mode, rc, run_dir, t0, t1, t2, smi, result_path, make_cmd, run_cmd = sys.argv[1:]
rc = int(rc)
out = {"mode": mode, "commands": {"fixture": make_cmd, "pipeline": run_cmd}, "pipeline_exit": rc,
       "run_dir": run_dir, "fixture_seconds": float(t1) - float(t0), "pipeline_seconds": float(t2) - float(t1),
       "nvidia_smi": open(smi).read().splitlines()[:2]}
problems = []

def load(rel):
    with open(os.path.join(run_dir, rel)) as f:
        return json.load(f)

def mean(xs):
    return sum(xs) / len(xs) if xs else None

try:
    plan, train, trace = load("stages/plan/plan.json"), load("stages/train/output.json"), load("stages/train/trace.json")
    test = load("stages/test/output.json")
    fg = [k for k in plan["dataset"]["labels"] if k != "0"]
    out["split"] = {"train": len(plan["split"]["folds"][0]["train"]), "val": len(plan["split"]["folds"][0]["val"]),
                    "test": len(plan["split"].get("test_cases", []))}
    out["config"] = {k: plan[k] for k in ("patch_size", "epochs", "val_every", "early_stopping", "batch_size", "ema")}
    out["device"] = train["device"]
    val = {k: train["performance"]["mean"][k]["dice"] for k in fg}
    out["val_dice"] = {"per_class": val, "mean_foreground": mean(list(val.values())),
                       "training_selected": train["best"], "validations": len(trace["validations"])}
    out["early_stopping"] = train["early_stopping"]
    out["time_limit"] = train.get("time_limit")
    out["epochs_run"] = len(trace["epochs"])
    out["epoch_seconds_median"] = sorted(e["seconds"] for e in trace["epochs"])[len(trace["epochs"]) // 2]
    out["test_dice"] = {"per_class": {c["label"]: c["dice"] for c in test["per_class"]},
                        "mean_foreground": test["mean_foreground_dice"]}
    out["timings"] = train["timings"]
    if mode == "bench" and not str(train["device"]).startswith("cuda"):
        problems.append(f"trained on {train['device']}, not a GPU")
except (OSError, KeyError, ValueError, IndexError, TypeError) as e:
    problems.append(f"could not read the run's figures: {type(e).__name__}: {e}")
if rc != 0:
    problems.append(f"the pipeline exited {rc}")

dice = (out.get("val_dice") or {}).get("mean_foreground")
ok = dice is not None and dice >= 0.90 and not problems
out["target"] = {"target": "mean foreground Dice on val/ >= 0.90",
                 "measured": dice, "verdict": ("PASS" if ok else "FAIL") if mode == "bench" else "not judged"}
out["problems"] = problems
out["verdict"] = out["target"]["verdict"] if mode == "bench" else f"{mode.upper()} (target not judged)"
with open(result_path, "w") as f:
    json.dump(out, f, indent=2)
    f.write("\n")
print(f"fixture {out['fixture_seconds']:.1f} s; pipeline {out['pipeline_seconds']:.1f} s; run {run_dir}")
if dice is not None:
    es, tl = out["early_stopping"], out["time_limit"]
    print(f"val/ mean foreground Dice {dice:.4f} {out['val_dice']['per_class']}; test/ "
          f"{out['test_dice']['mean_foreground']}; {out['epochs_run']} epochs (stopped early: {es and es['stopped_early']}; "
          f"time budget: {tl and str(tl['seconds']) + ' s, reached ' + str(tl['reached'])})")
for p in problems:
    print(f"problem: {p}")
print(f"verdict: {out['verdict']}  ->  {result_path}")
sys.exit(0 if ok or (mode != "bench" and rc == 0 and not problems) else 1)
PY
