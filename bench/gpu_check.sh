#!/usr/bin/env bash
# The device script: one command on a GPU machine (H100 / H200 with its preinstalled Python 3.12,
# no network), from the root of a checkout that carries build/gpu-bundle (make gpu-bundle).
# Each step runs under a timeout, logs to $OUT/<step>.log and prints PASS or FAIL with the log's
# tail, so one short window shows what broke; a summary table ends it.
#   bash bench/gpu_check.sh
set -uo pipefail
OUT=${OUT:-/tmp/mserve-gpu-check}
mkdir -p "$OUT"
bundle=build/gpu-bundle
py=${PYTHON:-python3}
results=()

step() {  # step NAME SECONDS COMMAND...
  local name=$1 secs=$2
  shift 2
  local t0=$SECONDS
  if timeout "$secs" "$@" >"$OUT/$name.log" 2>&1; then
    results+=("PASS $name $((SECONDS - t0))s")
    echo "PASS $name"
  else
    results+=("FAIL $name $((SECONDS - t0))s (rc $?)")
    echo "FAIL $name: last lines of $OUT/$name.log"
    tail -25 "$OUT/$name.log"
  fi
}

step preflight 60 nvidia-smi
step install 120 "$py" -m pip install --no-deps --no-index --target "$OUT/site" "$bundle"/mserve-*-cp312-*.whl
step import 60 env PYTHONPATH="$OUT/site" "$py" -c \
  "import mserve, mserve.cuda as c; print(mserve.__version__, c.cuda_available()); print(c.backend().device_count())"
step activations 300 env PYTHONPATH="$OUT/site" "$py" "$bundle"/gpu_check.py
if command -v compute-sanitizer >/dev/null; then
  step memcheck 300 env PYTHONPATH="$OUT/site" compute-sanitizer --tool memcheck "$py" "$bundle"/gpu_check.py
fi

echo "== summary"
printf '%s\n' "${results[@]}" | column -t
! printf '%s\n' "${results[@]}" | grep -q '^FAIL'
