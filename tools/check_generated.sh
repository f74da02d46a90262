#!/bin/sh
# check_generated.sh - fail (exit 1) if the committed generated protocol code
# (src/proto/spec_gen.[ch]) differs from what tools/gen_spec.py produces from
# the vendored spec.  CI runs this so that nobody edits generated files by
# hand or changes the generator without committing its output.
set -eu
cd "$(dirname "$0")/.."
exec python3 tools/gen_spec.py --check
