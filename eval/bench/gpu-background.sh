#!/usr/bin/env bash
# A GPU benchmark that may outlast one command of the device tool (10 minutes), run in the
# background across several calls. The device machine keeps a process that started its own
# session (setsid) until the machine goes back, and stays warm for 30 s after each call; $OUT is
# emptied before each call. So: start it in one call, then `wait` in follow-up calls made at once,
# each copying what is there into that call's $OUT.
#
# Usage, from the project root:
#   bash eval/bench/gpu-background.sh start tissue-2d [ARGS...]   starts eval/bench/gpu-tissue-2d.sh ARGS
#   bash eval/bench/gpu-background.sh wait tissue-2d [SECONDS]    waits until it ends or SECONDS pass
#                                                                 (default 540), copies its files to $OUT
# Its own files (log, exit code, the benchmark's .json and .log) live in $BG_DIR (default
# /tmp/gpu-background/NAME). `wait` exits 0 when the benchmark ended with 0, 1 when it ended
# otherwise, 3 while it still runs.
set -uo pipefail

verb=${1:-}
name=${2:-}
if [ -z "$verb" ] || [ -z "$name" ] || { [ "$verb" != start ] && [ "$verb" != wait ]; }; then
  echo "usage: gpu-background.sh start NAME [ARGS...] | wait NAME [SECONDS]" >&2
  exit 2
fi
shift 2
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
script=eval/bench/gpu-$name.sh
[ -f "$script" ] || {
  echo "no benchmark $script" >&2
  exit 2
}
dir=${BG_DIR:-/tmp/gpu-background/$name}

if [ "$verb" = start ]; then
  if [ -f "$dir/pid" ] && [ ! -f "$dir/rc" ] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
    echo "$name is already running (pid $(cat "$dir/pid"))" >&2
    exit 2
  fi
  rm -rf "$dir" && mkdir -p "$dir/out"
  # The exit code is written last: its presence means the benchmark ended.
  setsid bash -c 'OUT="$1/out" bash "$2" "${@:3}" >"$1/bench.log" 2>&1; echo $? >"$1/rc"' \
    _ "$dir" "$script" "$@" </dev/null >/dev/null 2>&1 &
  echo $! >"$dir/pid"
  echo "started $script $* in the background (pid $!); files in $dir"
  exit 0
fi

limit=${1:-540}
[ -d "$dir" ] || {
  echo "$name was not started ($dir missing)" >&2
  exit 2
}
start=$SECONDS
while [ ! -f "$dir/rc" ] && [ $((SECONDS - start)) -lt "$limit" ]; do sleep 5; done
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  cp "$dir/bench.log" "$OUT/gpu-background-$name.log" 2>/dev/null || true
  cp "$dir"/out/* "$OUT/" 2>/dev/null || true
fi
tail -n 15 "$dir/bench.log" 2>/dev/null || true
if [ -f "$dir/rc" ]; then
  rc=$(cat "$dir/rc")
  echo "$name ended with exit $rc after waiting $((SECONDS - start)) s"
  [ "$rc" = 0 ] && exit 0 || exit 1
fi
echo "$name still runs after $((SECONDS - start)) s of waiting: call wait again within 30 s"
exit 3
