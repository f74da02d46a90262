#!/usr/bin/env bash
# check_format.sh [--fix] - checks (or applies) .clang-format on every
# hand-written C file; generated files (*_gen.[ch]) are exempt.
set -euo pipefail
cd "$(dirname "$0")/.."
files=$(git ls-files '*.c' '*.h' | grep -v '_gen\.[ch]$' || true)
[ -z "$files" ] && exit 0
if [ "${1:-}" = --fix ]; then
    clang-format -i $files
    exit 0
fi
bad=0
for f in $files; do
    clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || { echo "not formatted: $f"; bad=1; }
done
[ $bad -eq 0 ] && echo "format: ok"
exit $bad
