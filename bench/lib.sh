# bench/lib.sh - what bench/run.sh and bench/persist.sh share; sourced, not
# run.  Set BENCH_NAME (the prefix of messages, of the temporary directory
# and of RabbitMQ node names; default "bench") before sourcing, then call
# bench_init.
#
# Brokers: new_instance BROKER NAME makes a fresh instance (its own port,
# data directory and, for RabbitMQ, node name, distribution port, log and
# config files, no plugins) under the temporary directory; start_broker
# starts it and waits for its AMQP port (launch starts it without waiting);
# stop_broker stops it by its pid (SIGTERM, then SIGKILL after a limit).  An
# instance keeps its data across stops and starts.  warren runs as the
# caller; RabbitMQ as the rabbitmq user (so root or rabbitmq is needed).
# On exit, whatever happens, the running warren-perf and broker are stopped
# by their pid and the temporary directory is removed (KEEP_TMP=1 keeps it);
# nothing outside it is touched (an epmd that Erlang starts is left running,
# as it may serve other nodes).
#
# Measuring: perf_run runs warren-perf once; perf_runs runs it RUNS times
# and takes the medians; part_backlog is scenario 7 (a backlog of N
# persistent messages: memory, optional restart, drain).  Results go to R
# (an associative array) and, when RESULTS names a file, to a CSV
# (scenario,broker,run,metric,value).
# shellcheck shell=bash

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_NAME=${BENCH_NAME:-bench}
WARREN_BIN=${WARREN_BIN:-$ROOT/build/warren}
if [ -z "${PERF_BIN:-}" ]; then
    PERF_BIN=$(dirname "$WARREN_BIN")/warren-perf
    [ -x "$PERF_BIN" ] || PERF_BIN=$ROOT/build/warren-perf
fi
RABBITMQ_SERVER=${RABBITMQ_SERVER:-/usr/lib/rabbitmq/bin/rabbitmq-server}
RABBIT_MAX_N=${RABBIT_MAX_N:-1000000}
RABBIT_LARGE_LIMIT=${RABBIT_LARGE_LIMIT:-600}
PY=/usr/bin/python3
# Scenario 2: 16-byte persistent messages to a durable queue, confirms (<=
# 1000 in flight), 1 producer, 1 consumer with prefetch 1000 acking every
# 100 with multiple.  The backlog of scenario 7 has the same shape.
# shellcheck disable=SC2034 # used by the scripts that source this file
TPUT_ARGS="--producers 1 --consumers 1 --size 16 --durable --persistent --confirm 1000 --multi-ack 100 --prefetch 1000"
DRAIN_ARGS="--producers 0 --consumers 1 --predeclared --multi-ack 100 --prefetch 1000"
BACKLOG_QUEUE=bench-backlog

BROKER_PID=
BROKER_NAME=
BROKER_DIR=
PERF_PID=
declare -A R # results: R[broker.key] or R[broker.N.key] = value

die() {
    echo "$BENCH_NAME: $*" >&2
    exit 1
}
note() {
    echo "$BENCH_NAME: $*" >&2
}

# bench_init: the temporary directory TMP and the exit trap.
bench_init() {
    [ -x "$PERF_BIN" ] || die "no warren-perf at $PERF_BIN (make warren-perf, or set PERF_BIN)"
    TMP=$(mktemp -d "/tmp/warren-$BENCH_NAME.XXXXXX") || die "mktemp failed"
    # The rabbitmq user must reach its directories below this one.
    chmod 755 "$TMP"
    trap cleanup EXIT
    # A self-signed certificate for the AMQPS listeners of both brokers
    # (the load generator does not verify it).
    mkdir -p "$TMP/tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
        -keyout "$TMP/tls/key.pem" -out "$TMP/tls/cert.pem" >/dev/null 2>&1 ||
        die "openssl could not make the benchmark's TLS certificate"
    chmod 644 "$TMP/tls/key.pem" "$TMP/tls/cert.pem"
    trap 'exit 130' INT TERM
}

cleanup() {
    if [ -n "$PERF_PID" ]; then
        kill -INT "$PERF_PID" 2>/dev/null
        wait "$PERF_PID" 2>/dev/null
    fi
    stop_broker 120
    if [ "${KEEP_TMP:-0}" = 1 ]; then
        note "logs and data kept in $TMP"
    else
        rm -rf "$TMP"
    fi
}

# ---- brokers ----------------------------------------------------------------

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

# new_instance BROKER NAME: a fresh directory and ports for one broker
# instance, kept across its restarts; sets URI and DATA_DIR.
new_instance() {
    BROKER_NAME=$1
    BROKER_DIR=$TMP/$1-$2
    PORT=$(free_port)
    TLS_PORT=$(free_port)
    DIST_PORT=$(free_port)
    NODE="$BENCH_NAME-$$-$2@localhost"
    mkdir -p "$BROKER_DIR"
    URI="amqp://guest:guest@127.0.0.1:$PORT/"
    case $1 in
    warren)
        [ -x "$WARREN_BIN" ] || die "no warren at $WARREN_BIN (build it, or set WARREN_BIN)"
        DATA_DIR=$BROKER_DIR/data
        mkdir -p "$DATA_DIR"
        ;;
    rabbitmq)
        [ -x "$RABBITMQ_SERVER" ] || die "no rabbitmq-server at $RABBITMQ_SERVER"
        mkdir -p "$BROKER_DIR/mnesia" "$BROKER_DIR/log"
        cat >"$BROKER_DIR/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$PORT
listeners.ssl.default = 127.0.0.1:$TLS_PORT
ssl_options.certfile = $TMP/tls/cert.pem
ssl_options.keyfile = $TMP/tls/key.pem
loopback_users.guest = true
EOF
        echo '[].' >"$BROKER_DIR/enabled_plugins"
        if [ "$(id -u)" = 0 ]; then
            chown -R rabbitmq:rabbitmq "$BROKER_DIR"
        elif [ "$(id -un)" != rabbitmq ]; then
            die "RabbitMQ must run as the rabbitmq user: run this script as root or rabbitmq"
        fi
        DATA_DIR=$BROKER_DIR/mnesia
        ;;
    *) die "unknown broker $1" ;;
    esac
}

start_warren() {
    "$WARREN_BIN" --listen "127.0.0.1:$PORT" --data-dir "$DATA_DIR" \
        --set "listeners.ssl.default=127.0.0.1:$TLS_PORT" \
        --set "ssl_options.certfile=$TMP/tls/cert.pem" --set "ssl_options.keyfile=$TMP/tls/key.pem" \
        >>"$BROKER_DIR/warren.log" 2>&1 &
    BROKER_PID=$!
}

# rabbit_as: sets RABBIT_AS to the command prefix that runs a program as the
# rabbitmq user (setpriv when root) in a clean environment whose HOME is
# that user's (so the Erlang cookie of the server and of rabbitmqctl is the
# same); NAME=VALUE words may follow it.  setpriv and env exec, so the
# program keeps the pid of the prefix.
rabbit_as() {
    RABBIT_AS=()
    [ "$(id -u)" = 0 ] && RABBIT_AS=(setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups)
    RABBIT_AS+=(env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/var/lib/rabbitmq)
}

# RABBIT_ENV: more NAME=VALUE words for start_rabbitmq's environment (none
# by default).
RABBIT_ENV=()

start_rabbitmq() {
    # $! is the rabbitmq-server script itself: it runs the Erlang VM as its
    # child and turns SIGTERM into an orderly stop.
    rabbit_as
    "${RABBIT_AS[@]}" \
        RABBITMQ_NODENAME="$NODE" \
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT="$PORT" \
        RABBITMQ_DIST_PORT="$DIST_PORT" \
        RABBITMQ_MNESIA_BASE="$BROKER_DIR/mnesia" \
        RABBITMQ_LOG_BASE="$BROKER_DIR/log" \
        RABBITMQ_CONFIG_FILE="$BROKER_DIR/rabbitmq.conf" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$BROKER_DIR/enabled_plugins" \
        "${RABBIT_ENV[@]}" \
        "$RABBITMQ_SERVER" >>"$BROKER_DIR/stdout.log" 2>&1 &
    BROKER_PID=$!
}

# launch: starts the current instance in the background without waiting
# for it; START_T is the time just before.
launch() {
    START_T=$(date +%s.%N)
    "start_$BROKER_NAME"
}

start_broker() {
    launch
    wait_port "$PORT" 120 || die "$BROKER_NAME did not start; see $BROKER_DIR"
}

# wait_gone PID SECONDS: until PID has exited or SECONDS have passed; fails
# if it is still running.
wait_gone() {
    local t0=$SECONDS
    while kill -0 "$1" 2>/dev/null && [ $((SECONDS - t0)) -lt "$2" ]; do
        sleep 0.05
    done
    ! kill -0 "$1" 2>/dev/null
}

# stop_broker [SECONDS]: SIGTERM, wait up to SECONDS (default 60), then
# SIGKILL.  Sets STOP_S to the time the broker took to exit.
stop_broker() {
    local limit=${1:-60} s0
    STOP_S=
    [ -n "$BROKER_PID" ] || return 0
    s0=$(date +%s.%N)
    kill -TERM "$BROKER_PID" 2>/dev/null
    if ! wait_gone "$BROKER_PID" "$limit"; then
        note "$BROKER_NAME (pid $BROKER_PID) did not stop within ${limit}s of SIGTERM; sending SIGKILL"
        kill -KILL "$BROKER_PID" 2>/dev/null
    fi
    wait "$BROKER_PID" 2>/dev/null
    STOP_S=$(awk -v a="$s0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    BROKER_PID=
}

# log_check: the first error-looking lines of the current instance's logs
# and how many there were, but not what is expected: 404s (warren-perf
# --await-messages polls), RabbitMQ's first boot of an empty message store,
# clients that close their socket without connection.close (scenario 8's
# publisher) and empty lines.
log_check() {
    local lines
    lines=$(grep -hiE 'error|warn|corrupt|fail' "$BROKER_DIR"/*.log "$BROKER_DIR"/log/*.log 2>/dev/null |
        grep -vE 'NOT_FOUND|rebuilding indices from scratch|unexpectedly closed TCP|closing AMQP connection|\] <[0-9.]+> *$')
    [ -n "$lines" ] || return 0
    head -3 <<<"$lines" | sed "s/^/$BENCH_NAME: $BROKER_NAME log: /" >&2
    note "$BROKER_NAME log: $(wc -l <<<"$lines") such lines in all (KEEP_TMP=1 keeps the logs)"
}

# ---- measuring --------------------------------------------------------------

# rss_pid: the process whose memory counts: warren itself, or RabbitMQ's
# beam.smp (a descendant of the start script, found breadth first).
rss_pid() {
    local todo=("$BROKER_PID") p
    while [ ${#todo[@]} -gt 0 ]; do
        p=${todo[0]}
        todo=("${todo[@]:1}")
        if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = beam.smp ]; then
            echo "$p"
            return
        fi
        # shellcheck disable=SC2207 # pids have no spaces
        todo+=($(pgrep -P "$p"))
    done
    echo "$BROKER_PID"
}

# status_kb FIELD: a /proc/PID/status field of the broker's VM, in kB.
status_kb() {
    awk -v f="$1:" '$1 == f { print $2 }' "/proc/$(rss_pid)/status" 2>/dev/null
}

# rss_line: "rss=MB anon=MB file=MB hwm=MB" of the broker's VM now.
rss_line() {
    awk '$1 == "VmRSS:" { r = $2 } $1 == "RssAnon:" { a = $2 } $1 == "RssFile:" { f = $2 }
        $1 == "VmHWM:" { h = $2 }
        END { printf "rss=%.1fMB anon=%.1fMB file=%.1fMB hwm=%.1fMB", r / 1024, a / 1024, f / 1024, h / 1024 }' \
        "/proc/$(rss_pid)/status"
}

dir_mb() {
    du -sk "$DATA_DIR" 2>/dev/null | awk '{ printf "%.1f", $1 / 1024 }'
}

# CPU seconds (user + system) the broker has used so far: the process and
# its descendants (RabbitMQ's Erlang VM is a child of the start script).
broker_cpu_s() {
    local pids=("/proc/$BROKER_PID/stat") c g
    for c in $(pgrep -P "$BROKER_PID"); do
        pids+=("/proc/$c/stat")
        for g in $(pgrep -P "$c"); do pids+=("/proc/$g/stat"); done
    done
    # The command name in field 2 has no spaces for either broker.
    cat "${pids[@]}" 2>/dev/null | awk -v hz="$(getconf CLK_TCK)" '{ t += $14 + $15 }
        END { print t / hz }'
}

median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2];
        else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# field KEY LINE: the value of KEY=... in a warren-perf summary line.
field() {
    awk -v k="$1" '{ for (i = 1; i <= NF; i++) if (index($i, k "=") == 1) {
        print substr($i, length(k) + 2); exit } }' <<<"$2"
}

loadavg() {
    cut -d' ' -f1-3 /proc/loadavg
}

# The first lines of a script's output: the machine, the binaries.
print_header() {
    echo "$BENCH_NAME: $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.1f GB", $2 / 1048576 }' /proc/meminfo)," \
        "load average $(loadavg); $*"
    echo "$BENCH_NAME: $("$WARREN_BIN" --version 2>&1 | head -1) ($WARREN_BIN;" \
        "bench tree $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown));" \
        "rabbitmq-server $(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null || echo '?')," \
        "erlang $(dpkg-query -W -f '${Version}' erlang-base 2>/dev/null || echo '?')"
    awk -v n="$BENCH_NAME" '$1 > 0.5 { print n ": warning: the machine is already busy (load " $1 "); numbers will be low" }' \
        /proc/loadavg >&2
}

# disk_probe: the latency of fdatasync after a 46,000-byte append (1000
# of warren's 16-byte message records) in the temporary directory, the
# floor under any persistent+confirm figure: with 1000 confirms in flight a
# broker cannot confirm more than 1000 messages per sync.
disk_probe() {
    "$PY" - "$TMP/fsync-probe" <<'EOF'
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
buf, lat, t = b"x" * 46000, [], time.perf_counter()
while len(lat) < 1000 and time.perf_counter() - t < 5:
    os.write(fd, buf)
    t0 = time.perf_counter()
    os.fdatasync(fd)
    lat.append(time.perf_counter() - t0)
os.close(fd)
os.unlink(sys.argv[1])
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3
print("fdatasync_p50_ms=%.3f fdatasync_p99_ms=%.3f n=%d" % (q(0.5), q(0.99), len(lat)))
EOF
}

# ---- results ----------------------------------------------------------------

# csv_init: a new RESULTS file with its header (nothing without RESULTS).
csv_init() {
    [ -z "${RESULTS:-}" ] || echo "scenario,broker,run,metric,value" >"$RESULTS"
}
# csv SCENARIO BROKER RUN METRIC VALUE: one row (nothing without RESULTS
# or without a value).
csv() {
    [ -n "${RESULTS:-}" ] && [ -n "${5:-}" ] || return 0
    echo "$1,$2,$3,$4,$5" >>"$RESULTS"
}

# row LABEL WARREN RABBITMQ: one table row with the ratio warren / RabbitMQ.
row() {
    awk -v l="$1" -v w="$2" -v r="$3" 'BEGIN {
        ratio = (w ~ /^[0-9.]+$/ && r ~ /^[0-9.]+$/ && r > 0) ? sprintf("%.3g", w / r) : "-"
        printf "%-44s %14s %14s %10s\n", l, (w == "" ? "-" : w), (r == "" ? "-" : r), ratio }'
}
row_header() {
    printf '%-44s %14s %14s %10s\n' "${1:-metric}" warren rabbitmq warren/rmq
}
mb() { [ -n "${1:-}" ] && awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
per_msg() {
    [ -n "${1:-}" ] && [ -n "${2:-}" ] && awk -v a="$1" -v i="$2" -v n="$3" \
        'BEGIN { printf "%.1f", (a - i) * 1024 / n }'
}
fmt0() { [ -n "${1:-}" ] && printf '%.0f' "$1"; }

# ---- warren-perf ------------------------------------------------------------

# perf_run LOG TIMEOUT ARGS...: runs warren-perf against the current
# broker with its progress in LOG and its summary line in LINE; returns
# its exit status.  PERF_T0 is the time just before it started.
perf_run() {
    local log=$1 limit=$2 rc
    shift 2
    PERF_T0=$(date +%s.%N)
    "$PERF_BIN" --uri "$URI" "$@" >"$log.out" 2>"$log" &
    PERF_PID=$!
    if ! wait_gone "$PERF_PID" "$limit"; then
        note "warren-perf still running after ${limit}s; interrupting it"
        kill -INT "$PERF_PID" 2>/dev/null
        sleep 5
        kill -KILL "$PERF_PID" 2>/dev/null
    fi
    wait "$PERF_PID"
    rc=$?
    PERF_PID=
    LINE=$(tail -1 "$log.out")
    return $rc
}

# The summary fields perf_runs keeps per run, with their medians; "rate" is
# the scenario's figure: recv_rate (deliveries per second at the
# consumers, end to end), or send_rate when nothing was received.
PERF_KEYS="rate send_rate confirm_rate p50_us p99_us p999_us"

# perf_runs LABEL BROKER TIMEOUT ARGS...: RUNS runs of warren-perf ARGS
# --duration DURATION against the current broker.  Prints each run's
# summary line (with the broker's CPU use, as a share of one core, and the
# load average before it) and the medians; keeps the medians in
# R[BROKER.LABEL.KEY] and every figure in the CSV.  PERF_RECORD=1 profiles
# warren (perf record -g) during its last run and prints the top symbols.
perf_runs() {
    local sc=$1 b=$2 limit=$3 run rc la cpu0 cpu1 t0 t1 line bcpu k v perfrec
    shift 3
    local -A vals=()
    for run in $(seq 1 "$RUNS"); do
        perfrec=
        if [ "${PERF_RECORD:-0}" = 1 ] && [ "$b" = warren ] && [ "$run" = "$RUNS" ]; then
            perf record -F 999 -g -p "$(rss_pid)" -o "$TMP/warren-$sc.perf.data" -- \
                sleep $((DURATION > 4 ? DURATION - 2 : DURATION)) >"$TMP/perf-record.log" 2>&1 &
            perfrec=$!
        fi
        la=$(loadavg)
        cpu0=$(broker_cpu_s)
        t0=$(date +%s.%N)
        perf_run "$TMP/perf-$sc-$b-$run.log" "$limit" "$@" --duration "$DURATION"
        rc=$?
        line=$LINE
        cpu1=$(broker_cpu_s)
        t1=$(date +%s.%N)
        [ -z "$perfrec" ] || wait "$perfrec"
        if [ $rc -ne 0 ] || [ -z "$line" ]; then
            note "[$sc] $b run $run failed (exit $rc):"
            tail -5 "$TMP/perf-$sc-$b-$run.log" >&2
            continue
        fi
        bcpu=$(awk -v a="$cpu0" -v b="$cpu1" -v s="$t0" -v e="$t1" \
            'BEGIN { printf "%.0f", 100 * (b - a) / (e - s) }')
        printf '[%s] %-8s run %d: %s broker_cpu_pct=%s load=%s\n' "$sc" "$b" "$run" "$line" "$bcpu" "$la"
        csv "$sc" "$b" "$run" broker_cpu_pct "$bcpu"
        for k in $PERF_KEYS; do
            v=$(field "$k" "$line")
            if [ "$k" = rate ]; then
                v=$(field recv_rate "$line")
                [ "$(field recv "$line")" != 0 ] || v=$(field send_rate "$line")
            fi
            [ -n "$v" ] || continue
            vals[$k]+="$v "
            csv "$sc" "$b" "$run" "$k" "$v"
        done
    done
    if [ -z "${vals[rate]:-}" ]; then
        note "[$sc] every $b run failed"
        return 1
    fi
    for k in $PERF_KEYS; do
        [ -n "${vals[$k]:-}" ] || continue
        # shellcheck disable=SC2086 # a list of numbers
        R[$b.$sc.$k]=$(printf '%s\n' ${vals[$k]} | median)
        csv "$sc" "$b" median "$k" "${R[$b.$sc.$k]}"
    done
    printf '[%s] %-8s median: %.0f msg/s (runs: %s)' "$sc" "$b" "${R[$b.$sc.rate]}" "${vals[rate]% }"
    [ -z "${R[$b.$sc.send_rate]:-}" ] || printf ', published %.0f msg/s' "${R[$b.$sc.send_rate]}"
    [ -z "${R[$b.$sc.confirm_rate]:-}" ] || printf ', confirmed %.0f msg/s' "${R[$b.$sc.confirm_rate]}"
    [ -z "${R[$b.$sc.p99_us]:-}" ] ||
        printf '; latency p50 %s us, p99 %s us, p99.9 %s us' "${R[$b.$sc.p50_us]}" \
            "${R[$b.$sc.p99_us]}" "${R[$b.$sc.p999_us]}"
    echo
    if [ -s "$TMP/warren-$sc.perf.data" ] && [ "$b" = warren ]; then
        echo "[$sc] warren   perf record (last run), top symbols (self):"
        perf report -i "$TMP/warren-$sc.perf.data" --no-children --stdio --sort symbol \
            --percent-limit 0.7 2>/dev/null | grep -E '^ +[0-9.]+%' | head -30
        echo "[$sc] warren   perf record, by shared object:"
        perf report -i "$TMP/warren-$sc.perf.data" --no-children --stdio --sort dso \
            2>/dev/null | grep -E '^ +[0-9.]+%' | head -8
    fi
}

# ---- scenario 7: a backlog of persistent messages ---------------------------

# backlog_sizes SIZES: the sizes each broker gets in scenario 7, in order:
# with RabbitMQ among BROKERS and a size above RABBIT_MAX_N, RABBIT_MAX_N
# first, so that RabbitMQ has a figure it can finish and a rate to predict
# the large size from (see part_backlog).
backlog_sizes() {
    local n small=
    if [[ " $BROKERS " == *" rabbitmq "* ]]; then
        for n in "$@"; do [ "$n" -le "$RABBIT_MAX_N" ] || small=$RABBIT_MAX_N; done
        for n in "$@"; do [ "$n" != "$RABBIT_MAX_N" ] || small=; done
    fi
    echo ${small:+"$small"} "$@"
}

# part_backlog BROKER N [RESTART]: on a fresh instance, publish N 16-byte
# persistent messages with confirms into a durable queue with no consumer;
# the broker's RSS against its idle RSS; with RESTART=1 (the default) stop
# it cleanly (SIGTERM), start it again on the same data directory and time
# it until a passive queue.declare reports all N messages, RSS after the
# restart; drain the queue with one consumer (prefetch 1000, ack every
# 100); the data directory's size at the peak and after the drain.
# Results in R[BROKER.N.*]; R[BROKER.N.skipped] says why it did not finish.
#
# RabbitMQ gets N > RABBIT_MAX_N only if its publish rate at RABBIT_MAX_N
# says it will finish within twice RABBIT_LARGE_LIMIT seconds; the publish
# is cut off at that limit anyway.
part_backlog() {
    local b=$1 n=$2 restart=${3:-1}
    local k=$b.$n
    if [ "$b" = rabbitmq ] && [ "$n" -gt "$RABBIT_MAX_N" ]; then
        local prev=${R[rabbitmq.$RABBIT_MAX_N.publish]:-}
        if [ -z "$prev" ]; then
            R[$k.skipped]="no run at N=$RABBIT_MAX_N to predict from"
            note "rabbitmq: skipping N=$n: ${R[$k.skipped]}"
            return
        fi
        local eta
        eta=$(awk -v n="$n" -v r="$prev" 'BEGIN { printf "%.0f", (r > 0 ? n / r : 1e9) }')
        # Hopeless cases are skipped; borderline ones are tried, bounded.
        if [ "$eta" -gt $((2 * RABBIT_LARGE_LIMIT)) ]; then
            R[$k.skipped]="publishing at $prev msg/s (N=$RABBIT_MAX_N) would take ~${eta}s > ${RABBIT_LARGE_LIMIT}s"
            note "rabbitmq: skipping N=$n: ${R[$k.skipped]}"
            return
        fi
    fi
    local limit=$((n / 5000 + 120))
    [ "$b" = rabbitmq ] && [ "$n" -gt "$RABBIT_MAX_N" ] && limit=$RABBIT_LARGE_LIMIT
    new_instance "$b" "backlog-$n"
    start_broker
    sleep 3
    R[$k.idle_kb]=$(status_kb VmRSS)
    R[$k.idle_dir]=$(dir_mb)
    note "$b N=$n: idle $(rss_line), data dir ${R[$k.idle_dir]} MB; publishing (load $(loadavg); disk: $(disk_probe))"

    local line rc
    perf_run "$TMP/backlog-$b-$n-publish.log" $((limit + 30)) --producers 1 --consumers 0 \
        --size 16 --durable --persistent --confirm 1000 --queue "$BACKLOG_QUEUE" --pmessages "$n" \
        --duration "$limit"
    rc=$?
    line=$LINE
    echo "$b N=$n publish: $line"
    local confirmed
    confirmed=$(field confirmed "$line")
    if [ $rc -ne 0 ] || [ "${confirmed:-0}" != "$n" ]; then
        local rss
        rss=$(status_kb VmRSS)
        R[$k.confirmed]=${confirmed:-0}
        R[$k.partial_rss_kb]=$rss
        R[$k.skipped]="publish incomplete after ${limit}s: ${confirmed:-0} of $n confirmed (exit $rc) at $(field confirm_rate "$line") msg/s; then $(rss_line)"
        if [ "${confirmed:-0}" -gt 0 ]; then
            R[$k.partial_per_msg]=$(per_msg "$rss" "${R[$k.idle_kb]}" "$confirmed")
            R[$k.skipped]+=", ${R[$k.partial_per_msg]} B per confirmed message beyond idle, data dir $(dir_mb) MB"
        fi
        note "$b: ${R[$k.skipped]}"
        tail -3 "$TMP/backlog-$b-$n-publish.log" >&2
        stop_broker 600
        return
    fi
    R[$k.publish]=$(field confirm_rate "$line")
    R[$k.publish_s]=$(field confirm_s "$line")
    sleep 2
    R[$k.rss_kb]=$(status_kb VmRSS)
    R[$k.anon_kb]=$(status_kb RssAnon)
    R[$k.hwm_kb]=$(status_kb VmHWM)
    R[$k.peak_dir]=$(dir_mb)
    echo "$b N=$n after publish: $(rss_line), data dir ${R[$k.peak_dir]} MB"

    if [ "$restart" = 1 ]; then
        # A clean stop, then time from exec to all N messages visible.
        stop_broker 900
        R[$k.stop_s]=$STOP_S
        launch
        perf_run "$TMP/backlog-$b-$n-await.log" 960 --queue "$BACKLOG_QUEUE" --await-messages "$n" \
            --duration 900
        rc=$?
        line=$LINE
        # From exec of the broker to the await tool's success, on the tool's
        # clock; and to the first accepted AMQP connection.
        R[$k.restart_s]=$(awk -v a="$START_T" -v b="$PERF_T0" -v d="$(field await_s "$line")" \
            'BEGIN { printf "%.2f", b - a + d }')
        R[$k.connect_s]=$(awk -v a="$START_T" -v b="$PERF_T0" -v d="$(field connect_s "$line")" \
            'BEGIN { printf "%.2f", b - a + d }')
        echo "$b N=$n restart: stop took ${STOP_S}s; start to first connection ${R[$k.connect_s]}s," \
            "to $n messages visible ${R[$k.restart_s]}s ($line)"
        if [ $rc -ne 0 ]; then
            R[$k.restart_s]="failed"
            note "$b: the queue did not come back with $n messages"
        fi
        sleep 1
        R[$k.restart_rss_kb]=$(status_kb VmRSS)
        echo "$b N=$n after restart: $(rss_line)"
    fi

    # shellcheck disable=SC2086 # DRAIN_ARGS is a list of options
    perf_run "$TMP/backlog-$b-$n-drain.log" $((n / 2000 + 120)) $DRAIN_ARGS --queue "$BACKLOG_QUEUE" \
        --cmessages "$n" --duration $((n / 2000 + 60))
    rc=$?
    line=$LINE
    echo "$b N=$n drain: $line"
    [ $rc -eq 0 ] && [ "$(field recv "$line")" = "$n" ] && R[$k.drain]=$(field recv_rate "$line")
    perf_run "$TMP/backlog-$b-$n-empty.log" 40 --queue "$BACKLOG_QUEUE" --await-messages 0 --duration 30
    line=$LINE
    echo "$b N=$n after drain: $line"
    # Give the store a moment to drop acked segments, then look.
    sleep 5
    R[$k.drained_kb]=$(status_kb VmRSS)
    R[$k.drained_dir]=$(dir_mb)
    echo "$b N=$n after drain: $(rss_line), data dir ${R[$k.drained_dir]} MB"
    if [ "$b" = warren ]; then
        # shellcheck disable=SC2012 # for people, not parsed
        ls -l "$DATA_DIR/msgs" | tail -n +2 | sed "s/^/$b N=$n msgs after drain: /"
    fi
    stop_broker 300
    log_check
}

# backlog_csv BROKER N: part_backlog's figures as CSV rows of scenario 7,
# with N in the run column; RSS per message beyond idle is computed here.
backlog_csv() {
    local b=$1 n=$2 m
    R[$b.$n.rss_per_msg_b]=$(per_msg "${R[$b.$n.rss_kb]:-}" "${R[$b.$n.idle_kb]:-}" "$n")
    for m in idle_kb publish:publish_rate publish_s rss_kb hwm_kb rss_per_msg_b stop_s connect_s \
        restart_s restart_rss_kb drain:drain_rate drained_kb idle_dir:idle_dir_mb \
        peak_dir:peak_dir_mb drained_dir:drained_dir_mb confirmed partial_rss_kb \
        partial_per_msg:partial_rss_per_msg_b; do
        csv 7 "$b" "$n" "${m#*:}" "${R[$b.$n.${m%%:*}]:-}"
    done
}
