#!/usr/bin/env bash
# tests/clients/run.sh [WARREN_BIN] - the client libraries' own test suites
# against warren: the tests that ship with Go's amqp091-go and
# streadway/amqp (Debian's golang-github-rabbitmq-amqp091-go-dev and
# golang-github-streadway-amqp-dev), built with their "integration" tag so
# that the tests talking to a broker run too.  They read the broker's URL
# from AMQP_URL.
#
# Without AMQP_URL a warren is started on a free 127.0.0.1 port with a
# temporary data directory and stopped by its pid at the end; with AMQP_URL
# the suites run against that broker (that is how they are run against
# RabbitMQ).  The warren it starts says product "RabbitMQ"
# (server_properties.product): three tests of each suite test nothing
# unless the server says so, and amqp091-go's, returning early, leave a
# connection open that its goroutine-leak check (goleak, in TestMain) then
# fails the whole package for.  Each suite prints "SUITE: N passed, N
# failed, N skipped" and the names of the tests that failed; a suite whose
# binary fails with no failing test (goleak, a crash) counts as a failure
# of "TestMain".  The script fails if a test fails
# that tests/clients/expected-failures.txt does not list.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-$here/../../build/warren}
gocode=/usr/share/gocode
work=$(mktemp -d)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

suites=(amqp091-go:github.com/rabbitmq/amqp091-go streadway-amqp:github.com/streadway/amqp)

for s in "${suites[@]}"; do
    name=${s%%:*} pkg=${s#*:}
    [ -d "$gocode/src/$pkg" ] || { echo "$name: $gocode/src/$pkg missing (scripts/deps.sh test)"; exit 1; }
    (cd "$gocode/src/$pkg" && GO111MODULE=off GOPATH=$gocode GOCACHE="$work/gocache" \
        go test -c -tags integration -o "$work/$name.test" .)
done

if [ -z "${AMQP_URL:-}" ]; then
    port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    mkdir -p "$work/data"
    "$bin" --listen "127.0.0.1:$port" --data-dir "$work/data" --set log.console.level=warning \
        --set server_properties.product=RabbitMQ 2>"$work/warren.log" &
    pid=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
        sleep 0.1
    done
    export AMQP_URL="amqp://guest:guest@127.0.0.1:$port/"
fi

expected=$here/expected-failures.txt
status=0
for s in "${suites[@]}"; do
    name=${s%%:*}
    log=$work/$name.log
    # The tests run in the package's directory (some read testdata there).
    rc=0
    (cd "$gocode/src/${s#*:}" && timeout 600 "$work/$name.test" -test.v -test.count=1 \
        -test.timeout 300s) >"$log" 2>&1 || rc=$?
    pass=$(grep -c '^--- PASS' "$log" || true)
    fail=$(grep -c '^--- FAIL' "$log" || true)
    if [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
        echo "--- FAIL: TestMain (exit status $rc with no failing test)" >>"$log"
        fail=1
    fi
    skip=$(grep -c '^--- SKIP' "$log" || true)
    echo "$name: $pass passed, $fail failed, $skip skipped"
    if grep -qE '^(panic:|FAIL\s.*\[build failed\])' "$log" || [ "$pass" -eq 0 ]; then
        echo "$name: the suite did not run to the end:"; tail -30 "$log"; status=1
    fi
    for t in $(grep '^--- FAIL' "$log" | awk '{print $3}'); do
        if grep -qE "^$name[[:space:]]+$t([[:space:]]|$)" "$expected" 2>/dev/null; then
            echo "  expected failure: $t"
        else
            echo "  FAILED: $t"; grep -A8 -- "--- FAIL: $t " "$log" | sed 's/^/    /'
            status=1
        fi
    done
done
if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
    echo "warren died during the suites:"; cat "$work/warren.log"; status=1
fi
exit $status
