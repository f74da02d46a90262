#!/usr/bin/env bash
# seedcheck.sh WARREN_BIN - runs ../shared/seedcheck (the seed scenarios,
# with the Go clients the seeds use) against a warren started on a free
# port with a temporary data directory: the default scenarios, then
# restart-publish / restart-verify across a clean stop and a kill -9, the
# quorum scenario, and ack-timeout against a broker with consumer_timeout =
# 3000.
set -euo pipefail
bin=${1:?usage: seedcheck.sh WARREN_BIN}
here=$(cd "$(dirname "$0")" && pwd)
src=$here/../../shared/seedcheck
work=$(mktemp -d)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

(cd "$src" && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$work/gocache" \
    go build -o "$work/seedcheck" .)

free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() {
    [ -n "${port:-}" ] || port=$(free_port)
    mkdir -p "$work/data"
    "$bin" --listen "127.0.0.1:$port" --data-dir "$work/data" --set log.console.level=warning \
        "$@" 2>>"$work/warren.log" &
    pid=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "warren did not start:"; cat "$work/warren.log"; return 1
}

stop() {
    kill "$pid"; wait "$pid" || { echo "warren exited with $?"; cat "$work/warren.log"; return 1; }
    pid=""
}

start
AMQP_URL="amqp://guest:guest@127.0.0.1:$port/" "$work/seedcheck"
# Not in seedcheck's default run: seed 001's quorum queue (single node).
AMQP_URL="amqp://guest:guest@127.0.0.1:$port/" "$work/seedcheck" quorum
stop

# Durability: publish, restart (clean stop, then kill -9), verify.
for how in TERM KILL; do
    start
    AMQP_URL="amqp://guest:guest@127.0.0.1:$port/" "$work/seedcheck" restart-publish
    kill -s "$how" "$pid"; wait "$pid" 2>/dev/null || true; pid=""
    start
    AMQP_URL="amqp://guest:guest@127.0.0.1:$port/" "$work/seedcheck" restart-verify
    stop
done

start --set consumer_timeout=3000
AMQP_URL="amqp://guest:guest@127.0.0.1:$port/" "$work/seedcheck" ack-timeout
stop
