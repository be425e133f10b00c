#!/usr/bin/env bash
# Compiles every CUDA source of cpp/gpu for sm_90 with ptxas's resource report and fails when a
# kernel spills registers to local memory (make test runs it wherever nvcc is).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../../.." && pwd)
nvcc=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
[ -x "$nvcc" ] || { echo "check_spills.sh: no nvcc here, nothing to check"; exit 0; }
status=0
for f in "$repo"/cpp/gpu/ops/*.cu; do
  report=$("$nvcc" -std=c++17 -arch=sm_90 -Xptxas -v -I"$repo/cpp" -c "$f" -o /dev/null 2>&1)
  kernels=$(grep -c "Compiling entry function" <<<"$report" || true)
  spills=$(grep -E "[1-9][0-9]* bytes spill (stores|loads)" <<<"$report" || true)
  if [ -n "$spills" ]; then
    echo "SPILLS in ${f#$repo/}:"; echo "$spills"; status=1
  else
    echo "no spills: ${f#$repo/} ($kernels kernels)"
  fi
done
exit $status
