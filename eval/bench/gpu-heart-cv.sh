#!/usr/bin/env bash
# The GPU acceptance benchmark of issue 5: heart-cv with the reference configuration (DESIGN.md,
# "Reference numbers") on the 16-case full-size synthetic stand-in, on one GPU.
#
#   5 folds x 20 epochs, patch 160x160x80, batch 4, 8 patches per case, label sampler 0.5/0.5,
#   TTA on the held-out cases, then the final model; targets on one H100:
#     - the whole pipeline (`pipeline run`, fixture generation excluded) < 180 s
#     - epoch wall time <= 1.25 x the pure forward+backward+optimizer-step time of the same steps
#       (trace.json's seconds vs fwd_bwd_seconds, summed over every epoch of every training stage)
#     - CV Dice (the summary's pooled mean over every held-out case, label 1) >= 0.90
#
# Usage, from anywhere (it works from the project root it lives in):
#   bash eval/bench/gpu-heart-cv.sh              the benchmark (needs a CUDA GPU)
#   bash eval/bench/gpu-heart-cv.sh --dry-run    print the commands and the configuration, run nothing
#   bash eval/bench/gpu-heart-cv.sh --rehearsal  the same script on a tiny stand-in (4 cases, 2 folds,
#                                                1 epoch, small patches), CPU allowed; no targets judged
# A GPU machine without Node.js: on the development machine, after `npm ci` and `npm run build`,
#   bash ../shared/portable/pack.sh, copy the tree with .portable/ and dist/, then run this script
#   there: it sources .portable/bootstrap.sh itself when `node` is missing.
# Environment: OUT (default $BENCH_WORK/out) gets gpu-heart-cv.json, gpu-heart-cv.log and
#   augment-cost.json (eval/bench/augment_cost.py, run after the pipeline);
#   BENCH_WORK (default /tmp/gpu-heart-cv) holds the fixture and the runs; JOBS (default: the
#   CPU count) stages at once; STAGES_PER_GPU (default: the manifest's stages_per_gpu, 6: the five
#   folds and the final model share the GPU at once) the training stages on the one device.
set -euo pipefail

mode=bench
for arg in "$@"; do
  case "$arg" in
    --dry-run) dry=1 ;;
    --rehearsal) mode=rehearsal ;;
    -h | --help)
      sed -n '2,25p' "$0"
      exit 0
      ;;
    *)
      echo "unknown argument: $arg (see --help)" >&2
      exit 2
      ;;
  esac
done
dry=${dry:-0}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
WORK=${BENCH_WORK:-/tmp/gpu-heart-cv}
OUT=${OUT:-$WORK/out}
LOG=$OUT/gpu-heart-cv.log
RESULT=$OUT/gpu-heart-cv.json

if [ "$mode" = bench ]; then
  CASES=16 SIZE=320,320,110 FOLDS=5 EPOCHS=20 PATCH='[160,160,80]'
else
  CASES=4 SIZE=48,48,24 FOLDS=2 EPOCHS=1 PATCH='[32,32,16]'
fi
DATA=$WORK/heart$CASES
RUNS=$WORK/runs
jobs_args=()
[ -n "${JOBS:-}" ] && jobs_args=(--jobs "$JOBS")
[ -n "${STAGES_PER_GPU:-}" ] && jobs_args+=(--stages-per-gpu "$STAGES_PER_GPU")

make_cmd=(node bin/pipeline.js fixtures make heart --cases "$CASES" --size "$SIZE" --out "$DATA")
run_cmd=(node bin/pipeline.js run pipelines/heart-cv.yaml
  --set "dataset=$DATA" --set "folds=$FOLDS" --set "epochs=$EPOCHS" --set "patch_size=$PATCH"
  --runs-dir "$RUNS" "${jobs_args[@]}")

if [ "$dry" = 1 ]; then
  echo "mode: $mode (cases $CASES, size $SIZE, folds $FOLDS, epochs $EPOCHS, patch $PATCH;"
  echo "      batch 4, 8 samples per case and TTA are the plan's defaults, checked after the run)"
  echo "cd $ROOT"
  [ -x "$(command -v node || true)" ] || echo "source .portable/bootstrap.sh"
  echo "rm -rf $DATA $RUNS"
  printf '%q ' "${make_cmd[@]}"
  echo
  printf '%q ' "${run_cmd[@]}"
  echo
  echo "# then: trace.json of every training stage, the summary's CV Dice, nvidia-smi -> $RESULT, log -> $LOG"
  exit 0
fi

mkdir -p "$OUT" "$WORK"
: >"$LOG"
log() { echo "$*" | tee -a "$LOG"; }

# Node.js (from .portable/ on a GPU machine without it) and the built dist/.
# shellcheck source=eval/bench/gpu-env.sh
source eval/bench/gpu-env.sh

log "== gpu-heart-cv ($mode) $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
smi=$OUT/nvidia-smi.txt
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit,pstate,temperature.gpu \
    --format=csv >"$smi" 2>&1 || true
  nvidia-smi >>"$smi" 2>&1 || true
else
  echo "nvidia-smi: not found" >"$smi"
fi
tee -a "$LOG" <"$smi"
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")' 2>&1 | tee -a "$LOG" || true

rm -rf "$DATA" "$RUNS"
log "\$ ${make_cmd[*]}"
t0=$(date +%s.%N)
"${make_cmd[@]}" 2>&1 | tee -a "$LOG"
t1=$(date +%s.%N)
log "\$ ${run_cmd[*]}"
set +e
"${run_cmd[@]}" >"$WORK/run.stdout" 2> >(tee -a "$LOG" >&2)
rc=$?
set -e
t2=$(date +%s.%N)
cat "$WORK/run.stdout" >>"$LOG"
run_dir=$(tail -n 1 "$WORK/run.stdout" || true)
log "pipeline exit $rc, run folder $run_dir"

# The data side of one batch beside its forward+backward, transform by transform, after the
# pipeline's clock stopped (eval/bench/augment_cost.py; the reference batch on this device).
cost_args=()
[ "$mode" = rehearsal ] && cost_args=(--patch 32,32,16 --repeats 3)
log "\$ $PY eval/bench/augment_cost.py ${cost_args[*]}"
cost_rc=0
"$PY" eval/bench/augment_cost.py "${cost_args[@]}" >"$OUT/augment-cost.json" 2> >(tee -a "$LOG" >&2) || cost_rc=$?
if [ "$cost_rc" -ne 0 ]; then
  log "augment_cost.py failed (the pipeline's figures below do not depend on it)"
  # The rehearsal is where a broken script must show, before a GPU call is spent on it.
  [ "$mode" = rehearsal ] && exit 1
fi

# The figures, the checks and the verdict (python3, standard library only).
python3 - "$mode" "$rc" "$run_dir" "$t0" "$t1" "$t2" "$smi" "$RESULT" "$FOLDS" "$EPOCHS" "$PATCH" "$CASES" "$SIZE" \
  "${run_cmd[*]}" "${make_cmd[*]}" <<'PY' 2>&1 | tee -a "$LOG"
import json, os, statistics, sys

(mode, rc, run_dir, t0, t1, t2, smi, result_path, folds, epochs, patch, cases, size,
 run_cmd, make_cmd) = sys.argv[1:]
rc, folds, epochs = int(rc), int(folds), int(epochs)
fixture_s, pipeline_s = float(t1) - float(t0), float(t2) - float(t1)
out = {"mode": mode, "commands": {"fixture": make_cmd, "pipeline": run_cmd}, "pipeline_exit": rc,
       "run_dir": run_dir, "fixture_seconds": fixture_s, "pipeline_seconds": pipeline_s,
       "nvidia_smi": open(smi).read().splitlines()[:2]}
problems = []

def load(rel):
    with open(os.path.join(run_dir, rel)) as f:
        return json.load(f)

stages = [f"cv[fold={k}]" for k in range(folds)] + ["final"]
try:
    plan = load("stages/plan/plan.json")
    out["config"] = {"cases": int(cases), "size": size, "folds": len(plan["split"]["folds"]),
                     "epochs": plan["epochs"], "patch_size": plan["patch_size"],
                     "batch_size": plan["batch_size"], "samples_per_volume": plan["samples_per_volume"],
                     "sampler": plan["sampler"], "tta": plan["inference"]["tta"],
                     "overlap": plan["inference"]["overlap"], "mode": plan["inference"]["mode"],
                     "validate_on": plan.get("validate_on", "patches")}
    want = {"folds": folds, "epochs": epochs, "patch_size": json.loads(patch)}
    if mode == "bench":
        want.update({"batch_size": 4, "samples_per_volume": 8, "tta": True, "validate_on": "patches"})
    for k, v in want.items():
        if out["config"][k] != v:
            problems.append(f"config {k} is {out['config'][k]}, the reference needs {v}")
    out["gpus"] = load("run.json").get("gpus")  # the devices and how many stages shared one
    evidence = load("evidence.json")["stages"]
    out["stage_wall_s"] = {k: v.get("wall_s") for k, v in evidence.items()}
    rows, per_stage = [], {}
    for s in stages:
        o, tr = load(f"stages/{s}/output.json"), load(f"stages/{s}/trace.json")
        eps = tr["epochs"]
        wall = sum(e["seconds"] for e in eps)
        comp = sum(e["fwd_bwd_seconds"] for e in eps)
        per_stage[s] = {"device": o["device"], "data_device": o.get("data_device"),
                        "epochs": [{k: e[k] for k in ("epoch", "seconds", "fwd_bwd_seconds", "data_seconds")}
                                   for e in eps],
                        "epoch_wall_s": wall, "fwd_bwd_s": comp, "ratio": wall / comp if comp else None,
                        "timings": o.get("timings"), "peak_gpu_mb": (o.get("peak_memory") or {}).get("train_gpu_mb")}
        rows += [(e["seconds"], e["fwd_bwd_seconds"]) for e in eps]
        if not str(o["device"]).startswith("cuda") and mode == "bench":
            problems.append(f"{s} trained on {o['device']}, not a GPU")
    out["stages"] = per_stage
    wall, comp = sum(r[0] for r in rows), sum(r[1] for r in rows)
    ratios = [w / c for w, c in rows if c > 0]
    out["epochs"] = {"count": len(rows), "wall_s": wall, "fwd_bwd_s": comp,
                     "epoch_over_compute": wall / comp if comp else None,
                     "median_epoch_s": statistics.median(r[0] for r in rows),
                     "median_fwd_bwd_s": statistics.median(r[1] for r in rows),
                     "per_epoch_ratio_median": statistics.median(ratios) if ratios else None,
                     "per_epoch_ratio_max": max(ratios) if ratios else None}
    summ = load("stages/summary/output.json")
    lab = summ["summary"][0]
    out["cv_dice"] = {"label": lab["label"], "mean": lab["metrics"]["dice"]["mean"],
                      "std": lab["metrics"]["dice"]["std"], "n": lab["metrics"]["dice"]["n"],
                      "per_fold": {str(f["fold"]): f["mean"][str(lab["label"])]["dice"] for f in summ["folds"]}}
except (OSError, KeyError, ValueError, IndexError, TypeError) as e:
    problems.append(f"could not read the run's figures: {type(e).__name__}: {e}")

def verdict(ok):
    return "PASS" if ok else "FAIL"

targets = []
if rc != 0:
    problems.append(f"the pipeline exited {rc}")
e = out.get("epochs") or {}
cv = (out.get("cv_dice") or {}).get("mean")
targets.append(("whole pipeline < 180 s", f"{pipeline_s:.1f} s", rc == 0 and pipeline_s < 180))
ratio = e.get("epoch_over_compute")
targets.append(("epoch wall <= 1.25 x fwd+bwd", "n/a" if ratio is None else
                f"{ratio:.3f} (median epoch {e['median_epoch_s']:.2f} s vs {e['median_fwd_bwd_s']:.2f} s; "
                f"worst epoch {e['per_epoch_ratio_max']:.3f})", ratio is not None and ratio <= 1.25))
targets.append(("CV Dice >= 0.90", "n/a" if cv is None else f"{cv:.4f}", cv is not None and cv >= 0.90))
out["targets"] = [{"target": t, "measured": m, "verdict": verdict(ok)} for t, m, ok in targets]
out["problems"] = problems
passed = not problems and all(ok for _, _, ok in targets)
out["verdict"] = ("PASS" if passed else "FAIL") if mode == "bench" else "REHEARSAL (targets not judged)"
with open(result_path, "w") as f:
    json.dump(out, f, indent=2)
    f.write("\n")
print(f"fixture {fixture_s:.1f} s; pipeline {pipeline_s:.1f} s; run {run_dir}")
for t, m, ok in targets:
    print(f"{verdict(ok) if mode == 'bench' else '-':4}  {t:32} {m}")
for p in problems:
    print(f"problem: {p}")
print(f"verdict: {out['verdict']}  ->  {result_path}")
sys.exit(0 if passed or (mode != "bench" and rc == 0 and not problems) else 1)
PY
