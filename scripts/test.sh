#!/usr/bin/env bash
# test.sh - installs what the tests need, builds warren twice (normal, and
# with AddressSanitizer + UndefinedBehaviorSanitizer) and runs every tier:
#   1. C unit tests and the fuzz corpora as regression tests (ctest)
#   2. integration tests: the real binary driven by pika (pytest), against
#      the normal build and again against the sanitizer build
#   3. the crash test
#   4. cluster fault injection: 10 nemesis rounds against 3 nodes (kills,
#      pauses, partitions when root; tests/cluster/README.md)
#   5. the client libraries' own test suites (tests/clients: amqp091-go and
#      streadway/amqp against warren)
#   6. the seed scenarios with the Go clients (../shared/seedcheck, when
#      present beside the repository)
# Each tier prints its own "N passed, N failed"; the script fails on the
# first failing tier.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
scripts/deps.sh test

jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWARREN_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DWARREN_WERROR=ON -DWARREN_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"

echo "== generated code is up to date"
tools/check_generated.sh

echo "== unit tests and fuzz corpora (normal build)"
(cd build && ctest --output-on-failure)
echo "== unit tests and fuzz corpora (sanitizer build)"
(cd build-asan && ctest --output-on-failure)

echo "== integration tests (normal build)"
WARREN_BIN="$root/build/warren" /usr/bin/python3 -m pytest -q tests/integration
echo "== integration tests (sanitizer build)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 WARREN_BIN="$root/build-asan/warren" \
    /usr/bin/python3 -m pytest -q -x tests/integration

echo "== crash test"
WARREN_BIN="$root/build/warren" /usr/bin/python3 tests/crash/crash_test.py

echo "== cluster fault injection (tests/cluster/nemesis.py, 10 rounds)"
WARREN_BIN="$root/build/warren" /usr/bin/python3 tests/cluster/nemesis.py --rounds 10

echo "== client libraries' own test suites (tests/clients)"
tests/clients/run.sh "$root/build/warren"

if [ -d ../shared/seedcheck ]; then
    echo "== seed scenarios (../shared/seedcheck)"
    tests/seedcheck.sh "$root/build/warren"
fi
