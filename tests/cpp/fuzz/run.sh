#!/usr/bin/env bash
# Runs every libFuzzer target of build/fuzz for SECONDS each (default 60): first the saved
# regression inputs (each must pass), then a fuzzing run seeded from corpus/<target>, with a fixed
# random seed (FUZZ_SEED, default 1) so that a run is repeatable: a slower machine explores a
# prefix of what a faster one does. FUZZ_SEED=0 picks a new seed each run. New corpus entries go
# to a scratch folder, not into the repository. Prints executions, corpus size and
# crashes per target; exits non-zero when a target crashes, leaks or times out.
set -u
seconds=${1:-60}
here=$(cd "$(dirname "$0")" && pwd)
bin=${FUZZ_BUILD:-$here/../../../build/fuzz}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
printf '%-20s %10s %8s %8s %s\n' target execs corpus crashes result
for f in "$bin"/fuzz_*; do
  name=$(basename "$f")
  mkdir -p "$work/$name/corpus" "$work/$name/artifacts"
  if [ -d "$here/regressions/$name" ] && ls "$here/regressions/$name"/* >/dev/null 2>&1; then
    if ! "$f" -runs=1 "$here/regressions/$name"/* >"$work/$name/regress.log" 2>&1; then
      echo "$name: a saved regression input fails again:"; tail -30 "$work/$name/regress.log"; failed=1
    fi
  fi
  "$f" -seed="${FUZZ_SEED:-1}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="$work/$name/artifacts/" "$work/$name/corpus" "$here/corpus/$name" >"$work/$name/log" 2>&1
  rc=$?
  execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$work/$name/log" | grep -oE '[0-9]+$' || echo 0)
  corpus=$(( $(ls "$work/$name/corpus" | wc -l) + $(ls "$here/corpus/$name" | wc -l) ))
  crashes=$(ls "$work/$name/artifacts" | wc -l)
  result=ok
  if [ $rc -ne 0 ] || [ "$crashes" -ne 0 ]; then
    result=FAILED; failed=1
    tail -40 "$work/$name/log"
    mkdir -p "$here/found/$name" && cp "$work/$name/artifacts"/* "$here/found/$name/" 2>/dev/null
  fi
  printf '%-20s %10s %8s %8s %s\n' "$name" "${execs:-0}" "$corpus" "$crashes" "$result"
done
[ $failed -eq 0 ] || echo "crash inputs copied to tests/cpp/fuzz/found/ (add them to regressions/ once fixed)"
exit $failed
