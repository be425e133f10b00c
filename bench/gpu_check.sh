#!/usr/bin/env bash
# mserve's GPU device checks in one command: preflight, every CUDA kernel against the CPU,
# compute-sanitizer, the model zoo, latency against PyTorch, roofline; one summary table at the end.
# On a GPU machine (Python 3.12 with PyTorch, no network), inside the bundle `make gpu-bundle`
# writes (build/gpu-bundle), or from bench/ of a checkout:
#   bash gpu_check.sh [--quick] [--steps ops,zoo] [--seed N] [--device mock]
# Logs and summary.json go to $OUT when set, else ./gpu-check-out. PYTHON picks the interpreter
# (default python3: the one that holds PyTorch). bench/gpu_check.py has the details.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
py=${PYTHON:-python3}
out=${OUT:-$PWD/gpu-check-out}
# The driver keeps its steps inside --budget (440 s); this limit only stops a driver that hangs,
# so that the whole run stays under 8 minutes.
limit=${GPU_CHECK_LIMIT:-470}

if ! command -v "$py" >/dev/null 2>&1; then
  echo "gpu_check: no '$py' found; set PYTHON to the interpreter that holds PyTorch" >&2
  exit 2
fi
mkdir -p "$out"
timeout --foreground -k 15 "$limit" "$py" -u "$here/gpu_check.py" --out "$out" "$@"
rc=$?
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
  echo "gpu_check: stopped after $limit s; the logs so far are in $out" >&2
fi
exit "$rc"
