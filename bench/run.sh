#!/usr/bin/env bash
# bench/run.sh - warren against RabbitMQ, side by side, on this machine.
#
# Starts warren (a fresh data directory, a free port) and Debian's
# rabbitmq-server (its own node name, ports, data and log directories, run
# as the rabbitmq user), then runs warren-perf against each RUNS times and
# prints every run's summary line, the median end-to-end rate of each
# broker and the ratio warren / RabbitMQ.  Both brokers are stopped by
# their pid at the end, whatever happens; nothing outside the temporary
# directory is touched (an epmd that Erlang starts for the RabbitMQ node is
# left running, as it may serve other nodes).
#
# Scenario 1 (the default): 16-byte transient messages, 1 producer -> 1
# queue -> 1 auto-ack consumer, no rate limit.  PERF_ARGS replaces it.
#
# Environment (all optional):
#   WARREN_BIN   warren binary (default build/warren)
#   PERF_BIN     warren-perf binary (default: next to WARREN_BIN, else build/)
#   RUNS         runs per broker (default 3)
#   DURATION     seconds per run (default 10)
#   BROKERS      which brokers, in order (default "warren rabbitmq")
#   PERF_ARGS    warren-perf options for the scenario (default: scenario 1)
#   RABBITMQ_SERVER  rabbitmq-server script (default /usr/lib/rabbitmq/bin/rabbitmq-server)
#   KEEP_TMP=1   keep the temporary directory (logs) for inspection
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WARREN_BIN=${WARREN_BIN:-$ROOT/build/warren}
if [ -z "${PERF_BIN:-}" ]; then
    PERF_BIN=$(dirname "$WARREN_BIN")/warren-perf
    [ -x "$PERF_BIN" ] || PERF_BIN=$ROOT/build/warren-perf
fi
RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
BROKERS=${BROKERS:-warren rabbitmq}
PERF_ARGS=${PERF_ARGS:---producers 1 --consumers 1 --size 16 --auto-ack --rate 0}
RABBITMQ_SERVER=${RABBITMQ_SERVER:-/usr/lib/rabbitmq/bin/rabbitmq-server}
PY=/usr/bin/python3

die() {
    echo "bench: $*" >&2
    exit 1
}

[ -x "$PERF_BIN" ] || die "no warren-perf at $PERF_BIN (make warren-perf, or set PERF_BIN)"

TMP=$(mktemp -d /tmp/warren-bench.XXXXXX) || die "mktemp failed"
# The rabbitmq user must reach its directories below this one.
chmod 755 "$TMP"
BROKER_PID=
BROKER_NAME=

stop_broker() {
    [ -n "$BROKER_PID" ] || return 0
    kill -TERM "$BROKER_PID" 2>/dev/null
    # RabbitMQ shuts down in a few seconds; do not wait forever.
    for _ in $(seq 1 300); do
        kill -0 "$BROKER_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$BROKER_PID" 2>/dev/null; then
        echo "bench: $BROKER_NAME (pid $BROKER_PID) ignored SIGTERM; sending SIGKILL" >&2
        kill -KILL "$BROKER_PID" 2>/dev/null
    fi
    wait "$BROKER_PID" 2>/dev/null
    BROKER_PID=
}

cleanup() {
    stop_broker
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        echo "bench: logs kept in $TMP" >&2
    else
        rm -rf "$TMP"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT SECONDS: until something accepts on 127.0.0.1:PORT, as
# long as the broker is still alive.
wait_port() {
    local deadline=$((SECONDS + $2))
    while [ $SECONDS -lt "$deadline" ]; do
        kill -0 "$BROKER_PID" 2>/dev/null || return 1
        if "$PY" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' \
            "$1" 2>/dev/null; then
            return 0
        fi
        sleep 0.2
    done
    return 1
}

start_warren() {
    [ -x "$WARREN_BIN" ] || die "no warren at $WARREN_BIN (build it, or set WARREN_BIN)"
    local port
    port=$(free_port)
    mkdir -p "$TMP/warren/data"
    "$WARREN_BIN" --listen "127.0.0.1:$port" --data-dir "$TMP/warren/data" \
        >"$TMP/warren/warren.log" 2>&1 &
    BROKER_PID=$!
    BROKER_NAME=warren
    wait_port "$port" 20 || die "warren did not start; see $TMP/warren/warren.log"
    URI="amqp://guest:guest@127.0.0.1:$port/"
}

start_rabbitmq() {
    [ -x "$RABBITMQ_SERVER" ] || die "no rabbitmq-server at $RABBITMQ_SERVER"
    local port dist dir=$TMP/rabbitmq
    port=$(free_port)
    dist=$(free_port)
    mkdir -p "$dir/mnesia" "$dir/log"
    cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$port
loopback_users.guest = true
EOF
    echo '[].' >"$dir/enabled_plugins"
    # setpriv and env exec, so $! is the rabbitmq-server script itself: it
    # runs the Erlang VM as its child and turns SIGTERM into an orderly stop.
    local as_rabbitmq=()
    if [ "$(id -u)" = 0 ]; then
        chown -R rabbitmq:rabbitmq "$dir"
        as_rabbitmq=(setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups)
    elif [ "$(id -un)" != rabbitmq ]; then
        die "RabbitMQ must run as the rabbitmq user: run this script as root or rabbitmq"
    fi
    "${as_rabbitmq[@]}" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        HOME=/var/lib/rabbitmq \
        RABBITMQ_NODENAME="bench-$$@localhost" \
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT="$port" \
        RABBITMQ_DIST_PORT="$dist" \
        RABBITMQ_MNESIA_BASE="$dir/mnesia" \
        RABBITMQ_LOG_BASE="$dir/log" \
        RABBITMQ_CONFIG_FILE="$dir/rabbitmq.conf" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" \
        "$RABBITMQ_SERVER" >"$dir/stdout.log" 2>&1 &
    BROKER_PID=$!
    BROKER_NAME=rabbitmq
    wait_port "$port" 90 || die "RabbitMQ did not start; see $dir/stdout.log and $dir/log"
    URI="amqp://guest:guest@127.0.0.1:$port/"
}

# CPU seconds (user + system) the broker has used so far: the process and
# its children (RabbitMQ's Erlang VM is a child of the start script).
broker_cpu_s() {
    local pids=("/proc/$BROKER_PID/stat")
    for c in $(pgrep -P "$BROKER_PID"); do
        pids+=("/proc/$c/stat")
    done
    # The command name in field 2 has no spaces for either broker.
    cat "${pids[@]}" 2>/dev/null | awk -v hz="$(getconf CLK_TCK)" '{ t += $14 + $15 }
        END { print t / hz }'
}

median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2];
        else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "bench: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); warren-perf $PERF_ARGS" \
    "--duration $DURATION, $RUNS runs per broker"
awk '$1 > 0.5 { print "bench: warning: the machine is already busy (load " $1 "); numbers will be low" }' \
    /proc/loadavg >&2

declare -A MEDIAN P99
for broker in $BROKERS; do
    case $broker in
    warren) start_warren ;;
    rabbitmq) start_rabbitmq ;;
    *) die "unknown broker $broker" ;;
    esac
    rates=()
    p99s=()
    for run in $(seq 1 "$RUNS"); do
        cpu0=$(broker_cpu_s)
        t0=$(date +%s.%N)
        # shellcheck disable=SC2086 # PERF_ARGS is a list of options
        line=$(timeout $((DURATION + 30)) "$PERF_BIN" --uri "$URI" $PERF_ARGS \
            --duration "$DURATION" 2>"$TMP/perf-$broker-$run.log")
        rc=$?
        cpu1=$(broker_cpu_s)
        t1=$(date +%s.%N)
        if [ $rc -ne 0 ] || [ -z "$line" ]; then
            echo "bench: $broker run $run failed (exit $rc):" >&2
            tail -5 "$TMP/perf-$broker-$run.log" >&2
            continue
        fi
        rate=$(sed -n 's/.*recv_rate=\([0-9.]*\).*/\1/p' <<<"$line")
        [ -n "$rate" ] || rate=$(sed -n 's/.*send_rate=\([0-9.]*\).*/\1/p' <<<"$line")
        bcpu=$(awk -v a="$cpu0" -v b="$cpu1" -v s="$t0" -v e="$t1" \
            'BEGIN { printf "%.0f", 100 * (b - a) / (e - s) }')
        rates+=("$rate")
        p99=$(sed -n 's/.* p99_us=\([0-9.]*\).*/\1/p' <<<"$line")
        [ -z "$p99" ] || p99s+=("$p99")
        printf '%-8s run %d: %s broker_cpu_pct=%s\n' "$broker" "$run" "$line" "$bcpu"
    done
    stop_broker
    [ ${#rates[@]} -gt 0 ] || die "every $broker run failed"
    MEDIAN[$broker]=$(printf '%s\n' "${rates[@]}" | median)
    printf '%-8s median: %.0f msg/s (runs: %s)\n' "$broker" "${MEDIAN[$broker]}" "${rates[*]}"
    if [ ${#p99s[@]} -gt 0 ]; then
        P99[$broker]=$(printf '%s\n' "${p99s[@]}" | median)
        printf '%-8s median p99 latency: %s us (runs: %s)\n' "$broker" "${P99[$broker]}" "${p99s[*]}"
    fi
done

if [ -n "${MEDIAN[warren]:-}" ] && [ -n "${MEDIAN[rabbitmq]:-}" ]; then
    awk -v w="${MEDIAN[warren]}" -v r="${MEDIAN[rabbitmq]}" -v wl="${P99[warren]:-}" \
        -v rl="${P99[rabbitmq]:-}" 'BEGIN {
        printf "RESULT warren=%.0f msg/s rabbitmq=%.0f msg/s ratio=%.2f", w, r, (r > 0 ? w / r : 0)
        if (wl != "" && rl != "")
            printf " warren_p99_us=%s rabbitmq_p99_us=%s", wl, rl
        printf "\n" }'
fi
