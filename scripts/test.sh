#!/usr/bin/env bash
# Sets up, builds and runs every test: unit (ctest, under ASan+UBSan), interop
# (ovs-ofctl, tshark), end-to-end
# (real Open vSwitch, namespaces, curl/ping/tcpdump; root), and a short fuzz run.
#   scripts/test.sh            (as root on Debian 12)
# Environment: CW_FUZZ_SECONDS (per target, default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
# Unit and interop tests are built and run once, under ASan+UBSan (they catch more there than
# in an optimized build); the end-to-end tests drive an optimized build of the binaries, made
# without unit tests or benchmarks in build/ci (scripts/setup.sh builds the full release
# preset for the demo and benchmarks). This keeps the whole run within CI's 30 minutes on two
# cores.
scripts/setup.sh asan-ubsan
cmake --preset release -B build/ci -DCW_UNIT_TESTS=OFF -DCW_BENCH=OFF >/dev/null
cmake --build build/ci -j"$(nproc)"
export CW_BUILD_DIR="$PWD/build/ci"

results=()
run() {  # run NAME CMD...: runs a suite, remembers pass/fail, keeps going
  local name="$1"; shift
  echo; echo "=== $name"
  if "$@"; then results+=("$name:pass"); else results+=("$name:fail"); fi
}
run "unit and interop tests under ASan+UBSan (ctest)" ctest --preset asan-ubsan -j"$(nproc)"
run "end-to-end tests (pytest, root)" /usr/bin/python3 -m pytest -v -p no:cacheprovider --durations=20 tests/e2e
run "fuzz (libFuzzer)" scripts/fuzz.sh "${CW_FUZZ_SECONDS:-10}"

echo; echo "=== summary ($(( $(date +%s) - start ))s)"
p=0; f=0
for r in "${results[@]}"; do
  echo "  ${r%:*}: ${r##*:}"
  if [ "${r##*:}" = pass ]; then p=$((p + 1)); else f=$((f + 1)); fi
done
echo "suites: $p passed, $f failed"
echo "screenshots of the web UI's views: build/artifacts/web-ui/"
[ "$f" -eq 0 ]
