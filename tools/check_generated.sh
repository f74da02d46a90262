#!/bin/sh
# check_generated.sh - fail (exit 1) if a committed generated file differs
# from what its generator produces: the protocol code (src/proto/spec_gen.[ch]
# from the vendored spec, tools/gen_spec.py) and the embedded web UI
# (src/mgmt/www_gen.c from www/, tools/embed_www.py).  CI runs this so that
# nobody edits generated files by hand or changes a generator or the UI
# without committing the output.
set -eu
cd "$(dirname "$0")/.."
python3 tools/gen_spec.py --check
python3 tools/embed_www.py --check
