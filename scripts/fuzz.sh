#!/usr/bin/env bash
# Builds the libFuzzer targets (preset "fuzz", clang) and, for each parser:
#   1. replays every kept input in fuzz/corpus/<name>/ (seeds and old crashers: regressions),
#   2. fuzzes for SECONDS (default 30) from those seeds in a scratch corpus.
# A crash fails the run; its input is copied into fuzz/corpus/<name>/ to be kept.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-30}"
cmake --preset fuzz >/dev/null
targets=()
for f in fuzz/*.cmake; do targets+=("$(basename "$f" .cmake)"); done
cmake --build --preset fuzz -j"$(nproc)" --target "${targets[@]/%/_fuzz}"
passed=0
failed=0
for t in "${targets[@]}"; do
  bin="build/fuzz/fuzz/${t}_fuzz"
  corpus="fuzz/corpus/$t"
  work="build/fuzz/corpus-work/$t"
  mkdir -p "$work" "$corpus"
  echo "fuzz: $t: replaying $(ls "$corpus" | wc -l) kept inputs"
  if ! "$bin" -runs=0 "$corpus" >"build/fuzz/$t.replay.log" 2>&1; then
    echo "fuzz: $t: a kept input fails:"; tail -30 "build/fuzz/$t.replay.log"
    failed=$((failed + 1)); continue
  fi
  echo "fuzz: $t: fuzzing for ${seconds}s"
  if "$bin" -max_total_time="$seconds" -artifact_prefix="build/fuzz/$t-" -print_final_stats=1 \
      "$work" "$corpus" >"build/fuzz/$t.log" 2>&1; then
    grep -E "stat::number_of_executed_units" "build/fuzz/$t.log" | sed "s/^/fuzz: $t: /" || true
    passed=$((passed + 1))
  else
    echo "fuzz: $t: FOUND A CRASH"; tail -40 "build/fuzz/$t.log"
    for a in build/fuzz/"$t"-crash-* build/fuzz/"$t"-leak-* build/fuzz/"$t"-timeout-*; do
      [ -e "$a" ] && cp "$a" "$corpus/" && echo "fuzz: kept $a in $corpus (commit it)"
    done
    failed=$((failed + 1))
  fi
done
echo "fuzz: $passed passed, $failed failed (${SECONDS}s, build included)"
[ "$failed" -eq 0 ]
