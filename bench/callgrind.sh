#!/usr/bin/env bash
# bench/callgrind.sh - instructions per message, counted by callgrind.
#
# Wall-clock figures on a shared 2-core machine wander by 20 % from one run
# to the next; instruction counts do not.  This script runs warren under
# valgrind --tool=callgrind with instrumentation switched off, switches it on
# only while warren-perf moves N messages (so start-up, connection set-up
# and shutdown are not counted), and prints the instructions per message
# and the top functions.  Use it before and after a change to the hot path.
#
#   bench/callgrind.sh                     scenario 1: 16 B, 1 -> 1, auto-ack
#   PERF_ARGS="--size 1024" bench/callgrind.sh
#   PERF_ARGS="--fanout --consumers 10" bench/callgrind.sh
#
# Environment (all optional):
#   WARREN_BIN  warren binary (default build/warren; build RelWithDebInfo)
#   PERF_BIN    warren-perf (default: next to WARREN_BIN)
#   N           messages per producer (default 200000)
#   PERF_ARGS   extra warren-perf options (default: auto-ack)
#   OUT         callgrind output file (default /tmp/warren-callgrind.out)
#   TOP         functions to list (default 25)
#   TENANT=1    run as user "bench" on vhost "bench" with regular-expression
#               permissions (set through the control socket), not guest on /
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WARREN_BIN=${WARREN_BIN:-$ROOT/build/warren}
PERF_BIN=${PERF_BIN:-$(dirname "$WARREN_BIN")/warren-perf}
N=${N:-200000}
PERF_ARGS=${PERF_ARGS:---auto-ack}
OUT=${OUT:-/tmp/warren-callgrind.out}
TOP=${TOP:-25}
PY=/usr/bin/python3

die() {
    echo "callgrind: $*" >&2
    exit 1
}
command -v valgrind >/dev/null || die "valgrind is not installed (apt-get install -y valgrind)"
[ -x "$WARREN_BIN" ] || die "no warren at $WARREN_BIN"
[ -x "$PERF_BIN" ] || die "no warren-perf at $PERF_BIN"

TMP=$(mktemp -d /tmp/warren-callgrind.XXXXXX) || die "mktemp failed"
PID=
cleanup() {
    if [ -n "$PID" ]; then
        kill -TERM "$PID" 2>/dev/null
        wait "$PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT

PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$OUT" \
    "$WARREN_BIN" --listen "127.0.0.1:$PORT" --data-dir "$TMP" \
    --set log.console.level=warning >"$TMP/valgrind.log" 2>&1 &
PID=$!
for _ in $(seq 1 300); do
    "$PY" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' \
        "$PORT" 2>/dev/null && break
    kill -0 "$PID" 2>/dev/null || die "warren did not start: $(cat "$TMP/valgrind.log")"
    sleep 0.2
done

URI="amqp://guest:guest@127.0.0.1:$PORT/"
if [ "${TENANT:-0}" = 1 ]; then
    "$PY" - "$TMP/warren.sock" <<'PYEOF' || die "cannot set up the bench tenant"
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rwb")
for cmd, args, vhost in (("add_vhost", ["bench"], "/"), ("add_user", ["bench", "bench-pw"], "/"),
                         ("set_permissions", ["bench", "^(warren-perf|amq\\.gen).*", ".*",
                                              "^(warren-perf|amq\\.gen).*"], "bench")):
    f.write((json.dumps({"command": cmd, "args": args, "vhost": vhost}) + "\n").encode())
    f.flush()
    r = json.loads(f.readline())
    if not r["ok"]:
        sys.exit(r["error"])
PYEOF
    URI="amqp://bench:bench-pw@127.0.0.1:$PORT/bench"
fi
# Connect, declare and settle first with collection off: --await-messages
# declares nothing, so the run's own set-up is what warren-perf does
# before its first publish, a few thousand instructions at most.
callgrind_control -i on "$PID" >/dev/null || die "callgrind_control failed"
# shellcheck disable=SC2086
"$PERF_BIN" --uri "$URI" --pmessages "$N" --cmessages "$N" $PERF_ARGS >"$TMP/perf.out" 2>/dev/null ||
    die "warren-perf failed"
callgrind_control -i off "$PID" >/dev/null
kill -TERM "$PID"
wait "$PID" 2>/dev/null
PID=

echo "warren-perf: $(cat "$TMP/perf.out")"
total=$(callgrind_annotate "$OUT" 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $1); print $1; exit }')
[ -n "$total" ] || die "no totals in $OUT"
echo "instructions: $total for $N messages = $((total / N)) per message"
callgrind_annotate --inclusive=no "$OUT" 2>/dev/null |
    awk -v top="$TOP" '/%\)/ && !/PROGRAM TOTALS/ && n < top { sub(" \\[.*\\]$", ""); print; n++ }'
