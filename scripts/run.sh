#!/usr/bin/env bash
# run.sh - installs the build dependencies, builds warren and starts it on
# 127.0.0.1:5672 with its default data directory.  Extra arguments go to
# warren (e.g. --config FILE, --listen HOST:PORT, --data-dir DIR).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target warren -j"$(nproc)"
exec build/warren "$@"
