#!/usr/bin/env bash
# Builds the GPU bundle (make gpu-bundle): what a GPU machine needs to run the device checks, in
# one folder small enough to send there.
#   bash bench/gpu/make_bundle.sh [DEST [WHEEL_DIR [LIMIT_MIB]]]   (build/gpu-bundle dist 64)
# DEST gets the cp312 wheel of WHEEL_DIR (exactly one), gpu_check.sh / gpu_check.py with gpu/,
# the model zoo in zoo/ when it still fits under LIMIT_MIB, and README.txt. Fails when there is not
# exactly one cp312 wheel, or when the bundle is over LIMIT_MIB.
set -euo pipefail
dest=${1:-build/gpu-bundle}
dist=${2:-dist}
limit_mib=${3:-64}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
limit=$((limit_mib * 1024 * 1024))

shopt -s nullglob
wheels=("$dist"/mserve-*-cp312-*.whl)
zoo=("$root"/tests/models/*.onnx "$root"/tests/models/*.npz)
shopt -u nullglob
if [ "${#wheels[@]}" -ne 1 ]; then
  echo "gpu-bundle: need exactly one $dist/mserve-*-cp312-*.whl (make wheel), found ${#wheels[@]}" >&2
  exit 1
fi

bytes() { du -sb "$@" | awk '{n += $1} END {print n + 0}'; }
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }

rm -rf "$dest"
mkdir -p "$dest/gpu"
cp "${wheels[0]}" "$dest/"
cp "$root/bench/gpu_check.sh" "$root/bench/gpu_check.py" "$dest/"
cp "$root"/bench/gpu/*.py "$dest/gpu/"
cp "$root/bench/gpu/README.txt" "$dest/README.txt"

# The zoo goes in when the whole still fits; without it the zoo step needs --zoo (or a checkout).
if [ "${#zoo[@]}" -gt 0 ]; then
  zoo_bytes=$(bytes "${zoo[@]}")
  if [ $(($(bytes "$dest") + zoo_bytes)) -le "$limit" ]; then
    mkdir "$dest/zoo"
    cp "${zoo[@]}" "$dest/zoo/"
  else
    echo "gpu-bundle: the model zoo ($(mib "$zoo_bytes") MiB) does not fit under $limit_mib MiB: left out" >&2
  fi
fi

total=$(bytes "$dest")
if [ "$total" -gt "$limit" ]; then
  echo "gpu-bundle: $dest is $(mib "$total") MiB, over the $limit_mib MiB a GPU machine is sent" >&2
  exit 1
fi
echo "gpu-bundle: $dest, $(mib "$total") MiB of $limit_mib MiB:"
(cd "$dest" && ls -l --block-size=K ./*.whl && find . -maxdepth 1 -mindepth 1 | sort | sed 's|^\./|  |')
