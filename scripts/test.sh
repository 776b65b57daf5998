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
built=$(( $(date +%s) - start ))

results=()
run() {  # run NAME CMD...: runs a suite, remembers pass/fail, keeps going
  local name="$1"; shift
  echo; echo "=== $name"
  local t0; t0=$(date +%s)
  if "$@"; then results+=("$name ($(( $(date +%s) - t0 ))s):pass"); else results+=("$name ($(( $(date +%s) - t0 ))s):fail"); fi
}
run "unit and interop tests under ASan+UBSan (ctest)" ctest --preset asan-ubsan -j"$(nproc)"

# The end-to-end tests mostly wait (on daemons, timeouts, packets): the fuzzers are built and
# run meanwhile, at the lowest CPU priority so that the tests keep the CPU they need. Their
# output is shown, and their result counted, after the tests.
mkdir -p build
fuzz_log="$PWD/build/fuzz-run.log"
setsid nice -n 19 scripts/fuzz.sh "${CW_FUZZ_SECONDS:-10}" >"$fuzz_log" 2>&1 &
fuzz_pid=$!
trap 'kill -- "-$fuzz_pid" 2>/dev/null || true' EXIT
run "end-to-end tests (pytest, root)" /usr/bin/python3 -m pytest -v -p no:cacheprovider --durations=20 tests/e2e
fuzz_done() { echo "(the fuzzers ran alongside the end-to-end tests)"; wait "$fuzz_pid"; local rc=$?; cat "$fuzz_log"; return "$rc"; }
run "fuzz (libFuzzer; alongside the end-to-end tests, then waited for)" fuzz_done
trap - EXIT

echo; echo "=== summary ($(( $(date +%s) - start ))s; setup and builds ${built}s)"
p=0; f=0
for r in "${results[@]}"; do
  echo "  ${r%:*}: ${r##*:}"
  if [ "${r##*:}" = pass ]; then p=$((p + 1)); else f=$((f + 1)); fi
done
echo "suites: $p passed, $f failed"
echo "screenshots of the web UI's views: build/artifacts/web-ui/"
[ "$f" -eq 0 ]
