#!/usr/bin/env bash
# bench.sh - installs what the benchmark needs (Debian's rabbitmq-server
# among it), builds warren and warren-perf, runs every scenario against
# warren and RabbitMQ side by side (bench/run.sh) and draws the plot.
#
#   scripts/bench.sh                      all eight scenarios, 3 runs each
#   SCENARIOS="1 2" RUNS=5 scripts/bench.sh
#
# Environment: everything bench/run.sh takes (SCENARIOS defaults to "all"
# here), and PLOT, the PNG to draw (default docs/bench-results.png).
# RabbitMQ runs as the rabbitmq user, so this needs root: it re-runs
# itself through sudo when started by another user.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
    exec sudo --preserve-env=SCENARIOS,RUNS,DURATION,BROKERS,RESULTS,PLOT,BACKLOG_N "$0" "$@"
fi
scripts/deps.sh bench
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-bench --target warren warren-perf -j"$(nproc)"
export SCENARIOS=${SCENARIOS:-all}
export RESULTS=${RESULTS:-/tmp/warren-bench-results.csv}
WARREN_BIN=$PWD/build-bench/warren bench/run.sh
/usr/bin/python3 bench/plot.py "$RESULTS" "${PLOT:-docs/bench-results.png}"
