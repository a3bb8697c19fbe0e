# Sourced by the eval/bench/gpu-*.sh benchmarks from the project root, before they run anything:
# a GPU machine often has torch and CUDA but no Node.js, so Node comes from the packed
# .portable/ (../shared/portable/pack.sh, run where npm works) when none is on PATH; the
# pipeline runs from the built dist/, which must have been carried along; PY is the Python the
# pipeline trains with, found in the pipeline's own order (src/run/python.ts); and `pipeline
# doctor` must pass (Python, torch, a model.onnx export, CUDA) before any GPU time is spent.
if ! command -v node >/dev/null 2>&1; then
  [ -f .portable/bootstrap.sh ] || {
    echo "no node and no .portable/bootstrap.sh (run ../shared/portable/pack.sh where npm works)" >&2
    exit 2
  }
  set +u
  # shellcheck disable=SC1091
  source .portable/bootstrap.sh
  set -u
fi
[ -d dist ] || {
  echo "dist/ missing: run npm run build first (and carry dist/ to this machine)" >&2
  exit 2
}
PY=""
# A PIPELINE_PYTHON that is set is the only one tried, as the pipeline does.
candidates=(python3 /usr/bin/python3 python)
[ -n "${PIPELINE_PYTHON:-}" ] && candidates=("$PIPELINE_PYTHON")
for candidate in "${candidates[@]}"; do
  "$candidate" -c 'import torch, numpy' >/dev/null 2>&1 && {
    PY=$candidate
    break
  }
done
[ -n "$PY" ] || {
  echo "no Python with torch and numpy (tried: ${candidates[*]})" >&2
  exit 2
}
node bin/pipeline.js doctor || {
  echo "pipeline doctor failed (above): the benchmark would fail, so it stops here" >&2
  exit 2
}
