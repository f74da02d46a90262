#!/usr/bin/env bash
# bench/persist.sh - warren against RabbitMQ on persistent messages: confirm
# throughput, memory per queued message, restart time and drain rate.
#
# Starts each broker the way bench/run.sh does (warren on a free port with
# its own data directory; Debian's rabbitmq-server as the rabbitmq user
# with its own node name, ports, data, log and config files, no plugins)
# and measures, with warren-perf:
#
#  (a) throughput: 16-byte persistent messages to a durable queue, publisher
#      confirms (<= 1000 in flight), 1 producer, 1 consumer with prefetch
#      1000 and a multiple ack every 100; RUNS runs of DURATION seconds on
#      one broker instance, median of the end-to-end rate (recv_rate).
#  (b) backlog, for each N in SIZES: on a fresh broker, publish N 16-byte
#      persistent messages with confirms into a durable queue with no
#      consumer; the broker's RSS (VmRSS of warren, or of RabbitMQ's
#      beam.smp) against its idle RSS; stop it cleanly (SIGTERM), start it
#      again on the same data directory and time it until a passive
#      queue.declare reports all N messages; RSS after the restart; drain
#      the queue with one consumer (prefetch 1000, ack every 100); the data
#      directory's size at the peak and after the drain.
#
# RabbitMQ gets the large backlog (N > RABBIT_MAX_N) only if its publish
# rate on the previous size says it will finish within RABBIT_LARGE_LIMIT
# seconds; the publish is bounded by that limit anyway.  Every broker is
# stopped by its pid, whatever happens; nothing outside the temporary
# directory is touched (an epmd that Erlang starts is left running, as it
# may serve other nodes).  Needs root (RabbitMQ runs as the rabbitmq user).
#
# Environment (all optional):
#   WARREN_BIN   warren binary (default build/warren)
#   PERF_BIN     warren-perf binary (default: next to WARREN_BIN, else build/)
#   BROKERS      which brokers, in order (default "warren rabbitmq")
#   PARTS        which parts (default "tput backlog")
#   RUNS         throughput runs per broker (default 3)
#   DURATION     seconds per throughput run (default 15)
#   SIZES        backlog sizes (default "1000000 10000000")
#   RABBIT_MAX_N       RabbitMQ runs sizes above this only if fast enough (1000000)
#   RABBIT_LARGE_LIMIT seconds allowed for RabbitMQ's large publish (600)
#   PERF_RECORD=1  perf record warren (-g) during its last throughput run and
#                  print the top symbols
#   RABBITMQ_SERVER  rabbitmq-server script (default /usr/lib/rabbitmq/bin/rabbitmq-server)
#   KEEP_TMP=1   keep the temporary directory (logs, data) for inspection
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WARREN_BIN=${WARREN_BIN:-$ROOT/build/warren}
if [ -z "${PERF_BIN:-}" ]; then
    PERF_BIN=$(dirname "$WARREN_BIN")/warren-perf
    [ -x "$PERF_BIN" ] || PERF_BIN=$ROOT/build/warren-perf
fi
BROKERS=${BROKERS:-warren rabbitmq}
PARTS=${PARTS:-tput backlog}
RUNS=${RUNS:-3}
DURATION=${DURATION:-15}
SIZES=${SIZES:-1000000 10000000}
RABBIT_MAX_N=${RABBIT_MAX_N:-1000000}
RABBIT_LARGE_LIMIT=${RABBIT_LARGE_LIMIT:-600}
RABBITMQ_SERVER=${RABBITMQ_SERVER:-/usr/lib/rabbitmq/bin/rabbitmq-server}
PY=/usr/bin/python3
QUEUE=persist-backlog
# The scenario of (a); the backlog part uses the same message shape.
TPUT_ARGS="--producers 1 --consumers 1 --size 16 --durable --persistent --confirm 1000 --multi-ack 100 --prefetch 1000"
DRAIN_ARGS="--producers 0 --consumers 1 --predeclared --multi-ack 100 --prefetch 1000"

die() {
    echo "persist: $*" >&2
    exit 1
}
note() {
    echo "persist: $*" >&2
}

[ -x "$PERF_BIN" ] || die "no warren-perf at $PERF_BIN (make warren-perf, or set PERF_BIN)"

TMP=$(mktemp -d /tmp/warren-persist.XXXXXX) || die "mktemp failed"
# The rabbitmq user must reach its directories below this one.
chmod 755 "$TMP"
BROKER_PID=
BROKER_NAME=
BROKER_DIR=
PERF_PID=
declare -A R # results: R[broker.key] = value

# stop_broker [SECONDS]: SIGTERM, wait up to SECONDS (default 60), then
# SIGKILL.  Sets STOP_S to the time the broker took to exit.
stop_broker() {
    local limit=${1:-60} t0=$SECONDS
    STOP_S=
    [ -n "$BROKER_PID" ] || return 0
    local s0
    s0=$(date +%s.%N)
    kill -TERM "$BROKER_PID" 2>/dev/null
    while kill -0 "$BROKER_PID" 2>/dev/null && [ $((SECONDS - t0)) -lt "$limit" ]; do
        sleep 0.05
    done
    if kill -0 "$BROKER_PID" 2>/dev/null; then
        note "$BROKER_NAME (pid $BROKER_PID) did not stop within ${limit}s of SIGTERM; sending SIGKILL"
        kill -KILL "$BROKER_PID" 2>/dev/null
    fi
    wait "$BROKER_PID" 2>/dev/null
    STOP_S=$(awk -v a="$s0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    BROKER_PID=
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

# new_instance BROKER NAME: a fresh directory and ports for one broker
# instance, kept across its restarts.
new_instance() {
    BROKER_NAME=$1
    BROKER_DIR=$TMP/$1-$2
    PORT=$(free_port)
    DIST_PORT=$(free_port)
    NODE="persist-$$-$2@localhost"
    mkdir -p "$BROKER_DIR"
    URI="amqp://guest:guest@127.0.0.1:$PORT/"
    case $1 in
    warren)
        [ -x "$WARREN_BIN" ] || die "no warren at $WARREN_BIN (build it, or set WARREN_BIN)"
        mkdir -p "$BROKER_DIR/data"
        DATA_DIR=$BROKER_DIR/data
        ;;
    rabbitmq)
        [ -x "$RABBITMQ_SERVER" ] || die "no rabbitmq-server at $RABBITMQ_SERVER"
        mkdir -p "$BROKER_DIR/mnesia" "$BROKER_DIR/log"
        cat >"$BROKER_DIR/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$PORT
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

# launch: starts the current instance (in the background, not waiting for
# it); START_T is the time just before.
launch() {
    START_T=$(date +%s.%N)
    case $BROKER_NAME in
    warren)
        "$WARREN_BIN" --listen "127.0.0.1:$PORT" --data-dir "$DATA_DIR" \
            >>"$BROKER_DIR/warren.log" 2>&1 &
        BROKER_PID=$!
        ;;
    rabbitmq)
        # setpriv and env exec, so $! is the rabbitmq-server script itself:
        # it runs the Erlang VM as its child and turns SIGTERM into an
        # orderly stop.
        local as_rabbitmq=()
        [ "$(id -u)" = 0 ] && as_rabbitmq=(setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups)
        "${as_rabbitmq[@]}" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
            HOME=/var/lib/rabbitmq \
            RABBITMQ_NODENAME="$NODE" \
            RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
            RABBITMQ_NODE_PORT="$PORT" \
            RABBITMQ_DIST_PORT="$DIST_PORT" \
            RABBITMQ_MNESIA_BASE="$BROKER_DIR/mnesia" \
            RABBITMQ_LOG_BASE="$BROKER_DIR/log" \
            RABBITMQ_CONFIG_FILE="$BROKER_DIR/rabbitmq.conf" \
            RABBITMQ_ENABLED_PLUGINS_FILE="$BROKER_DIR/enabled_plugins" \
            "$RABBITMQ_SERVER" >>"$BROKER_DIR/stdout.log" 2>&1 &
        BROKER_PID=$!
        ;;
    esac
}

start_broker() {
    launch
    wait_port "$PORT" 120 || die "$BROKER_NAME did not start; see $BROKER_DIR"
}

# The process whose memory counts: warren itself, or RabbitMQ's beam.smp
# (a descendant of the start script, found breadth first).
vm_pid() {
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
    awk -v f="$1:" '$1 == f { print $2 }' "/proc/$(vm_pid)/status" 2>/dev/null
}

# rss_line: "rss=MB anon=MB file=MB hwm=MB" of the broker's VM now.
rss_line() {
    local pid
    pid=$(vm_pid)
    awk '$1 == "VmRSS:" { r = $2 } $1 == "RssAnon:" { a = $2 } $1 == "RssFile:" { f = $2 }
        $1 == "VmHWM:" { h = $2 }
        END { printf "rss=%.1fMB anon=%.1fMB file=%.1fMB hwm=%.1fMB", r / 1024, a / 1024, f / 1024, h / 1024 }' \
        "/proc/$pid/status"
}

dir_mb() {
    du -sk "$DATA_DIR" 2>/dev/null | awk '{ printf "%.1f", $1 / 1024 }'
}

# CPU seconds (user + system) the broker has used so far: the process and
# its descendants.
broker_cpu_s() {
    local pids=("/proc/$BROKER_PID/stat") c g
    for c in $(pgrep -P "$BROKER_PID"); do
        pids+=("/proc/$c/stat")
        for g in $(pgrep -P "$c"); do pids+=("/proc/$g/stat"); done
    done
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

# perf_run LOG TIMEOUT ARGS...: runs warren-perf against the current
# broker with its progress in LOG and its summary line in LINE; returns
# its exit status.
perf_run() {
    local log=$1 limit=$2
    shift 2
    PERF_T0=$(date +%s.%N)
    "$PERF_BIN" --uri "$URI" "$@" >"$log.out" 2>"$log" &
    PERF_PID=$!
    local t0=$SECONDS
    while kill -0 "$PERF_PID" 2>/dev/null && [ $((SECONDS - t0)) -lt "$limit" ]; do
        sleep 0.05
    done
    if kill -0 "$PERF_PID" 2>/dev/null; then
        note "warren-perf still running after ${limit}s; interrupting it"
        kill -INT "$PERF_PID" 2>/dev/null
        sleep 5
        kill -KILL "$PERF_PID" 2>/dev/null
    fi
    wait "$PERF_PID"
    local rc=$?
    PERF_PID=
    LINE=$(tail -1 "$log.out")
    return $rc
}

# row LABEL WARREN RABBITMQ: one table row with the ratio warren / RabbitMQ.
row() {
    awk -v l="$1" -v w="$2" -v r="$3" 'BEGIN {
        ratio = (w ~ /^[0-9.]+$/ && r ~ /^[0-9.]+$/ && r > 0) ? sprintf("%.2f", w / r) : "-"
        printf "%-40s %14s %14s %10s\n", l, (w == "" ? "-" : w), (r == "" ? "-" : r), ratio }'
}
mb() { [ -n "${1:-}" ] && awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
per_msg() {
    [ -n "${1:-}" ] && [ -n "${2:-}" ] && awk -v a="$1" -v i="$2" -v n="$3" \
        'BEGIN { printf "%.1f", (a - i) * 1024 / n }'
}
fmt0() { [ -n "${1:-}" ] && printf '%.0f' "$1"; }

# ---- (a) throughput -------------------------------------------------------

part_tput() {
    local b=$1
    new_instance "$b" tput
    start_broker
    sleep 2
    note "$b: throughput, $RUNS x ${DURATION}s, load $(loadavg); disk: $(disk_probe)"
    local rates=() crates=() run
    for run in $(seq 1 "$RUNS"); do
        local perfrec=
        if [ "${PERF_RECORD:-0}" = 1 ] && [ "$b" = warren ] && [ "$run" = "$RUNS" ]; then
            perf record -F 999 -g -p "$(vm_pid)" -o "$TMP/warren.perf.data" -- \
                sleep $((DURATION > 4 ? DURATION - 2 : DURATION)) >"$TMP/perf-record.log" 2>&1 &
            perfrec=$!
        fi
        local la cpu0 cpu1 t0 t1 line bcpu
        la=$(loadavg)
        cpu0=$(broker_cpu_s)
        t0=$(date +%s.%N)
        # shellcheck disable=SC2086 # TPUT_ARGS is a list of options
        perf_run "$TMP/tput-$b-$run.log" $((DURATION + 90)) $TPUT_ARGS \
            --queue "persist-tput-$run" --duration "$DURATION"
        local rc=$?
        line=$LINE
        cpu1=$(broker_cpu_s)
        t1=$(date +%s.%N)
        [ -z "$perfrec" ] || wait "$perfrec"
        if [ $rc -ne 0 ] || [ -z "$line" ]; then
            note "$b throughput run $run failed (exit $rc):"
            tail -5 "$TMP/tput-$b-$run.log" >&2
            continue
        fi
        bcpu=$(awk -v a="$cpu0" -v b="$cpu1" -v s="$t0" -v e="$t1" \
            'BEGIN { printf "%.0f", 100 * (b - a) / (e - s) }')
        rates+=("$(field recv_rate "$line")")
        crates+=("$(field confirm_rate "$line")")
        printf '%-8s tput run %d: %s broker_cpu_pct=%s load=%s\n' "$b" "$run" "$line" "$bcpu" "$la"
    done
    R[$b.tput_rss]=$(status_kb VmRSS)
    stop_broker 120
    grep -iE 'error|warn|corrupt|fail' "$BROKER_DIR"/*.log 2>/dev/null | head -5 |
        sed "s/^/persist: $b log: /" >&2
    [ ${#rates[@]} -gt 0 ] || {
        note "every $b throughput run failed"
        return
    }
    R[$b.tput]=$(printf '%s\n' "${rates[@]}" | median)
    R[$b.tput_confirm]=$(printf '%s\n' "${crates[@]}" | median)
    R[$b.tput_runs]="${rates[*]}"
    printf '%-8s tput median: recv %.0f msg/s, confirm %.0f msg/s (recv runs: %s)\n' "$b" \
        "${R[$b.tput]}" "${R[$b.tput_confirm]}" "${rates[*]}"
    if [ -s "$TMP/warren.perf.data" ] && [ "$b" = warren ]; then
        echo "warren   perf record (last run), top symbols (self):"
        perf report -i "$TMP/warren.perf.data" --no-children --stdio --sort symbol \
            --percent-limit 0.7 2>/dev/null | grep -E '^ +[0-9.]+%' | head -30
        echo "warren   perf record, by shared object:"
        perf report -i "$TMP/warren.perf.data" --no-children --stdio --sort dso \
            2>/dev/null | grep -E '^ +[0-9.]+%' | head -8
    fi
}

# ---- (b) backlog ------------------------------------------------------------

part_backlog() {
    local b=$1 n=$2
    local k=$b.$n
    if [ "$b" = rabbitmq ] && [ "$n" -gt "$RABBIT_MAX_N" ]; then
        local prev=${R[rabbitmq.$RABBIT_MAX_N.publish]:-}
        if [ -z "$prev" ]; then
            R[$k.skipped]="no smaller run to predict from"
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
        --size 16 --durable --persistent --confirm 1000 --queue "$QUEUE" --pmessages "$n" \
        --duration "$limit"
    rc=$?
    line=$LINE
    echo "$b N=$n publish: $line"
    local confirmed
    confirmed=$(field confirmed "$line")
    if [ $rc -ne 0 ] || [ "${confirmed:-0}" != "$n" ]; then
        local rss
        rss=$(status_kb VmRSS)
        R[$k.skipped]="publish incomplete after ${limit}s: ${confirmed:-0} of $n confirmed (exit $rc) at $(field confirm_rate "$line") msg/s; then $(rss_line)"
        [ "${confirmed:-0}" -gt 0 ] && R[$k.skipped]+=", $(per_msg "$rss" "${R[$k.idle_kb]}" "$confirmed") B per confirmed message beyond idle, data dir $(dir_mb) MB"
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

    # Restart: a clean stop, then time from exec to all N messages visible.
    stop_broker 900
    R[$k.stop_s]=$STOP_S
    launch
    perf_run "$TMP/backlog-$b-$n-await.log" 960 --queue "$QUEUE" --await-messages "$n" \
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

    # shellcheck disable=SC2086 # DRAIN_ARGS is a list of options
    perf_run "$TMP/backlog-$b-$n-drain.log" $((n / 2000 + 120)) $DRAIN_ARGS --queue "$QUEUE" \
        --cmessages "$n" --duration $((n / 2000 + 60))
    rc=$?
    line=$LINE
    echo "$b N=$n drain: $line"
    [ $rc -eq 0 ] && [ "$(field recv "$line")" = "$n" ] && R[$k.drain]=$(field recv_rate "$line")
    perf_run "$TMP/backlog-$b-$n-empty.log" 40 --queue "$QUEUE" --await-messages 0 --duration 30
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
    grep -iE 'error|warn|corrupt|fail' "$BROKER_DIR"/*.log "$BROKER_DIR"/log/*.log 2>/dev/null |
        grep -v 'NOT_FOUND' | head -10 | sed "s/^/persist: $b log: /" >&2
}

# ---- main -----------------------------------------------------------------

echo "persist: $(nproc) CPUs, $(awk '/MemTotal/ { printf "%.1f GB", $2 / 1048576 }' /proc/meminfo)," \
    "load average $(loadavg); parts: $PARTS; brokers: $BROKERS; sizes: $SIZES"
echo "persist: $("$WARREN_BIN" --version 2>&1 | head -1) ($WARREN_BIN;" \
    "bench tree $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown));" \
    "rabbitmq-server $(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null || echo '?')," \
    "erlang $(dpkg-query -W -f '${Version}' erlang-base 2>/dev/null || echo '?')"
awk '$1 > 0.5 { print "persist: warning: the machine is already busy (load " $1 "); numbers will be low" }' \
    /proc/loadavg >&2

for part in $PARTS; do
    for b in $BROKERS; do
        case $part in
        tput) part_tput "$b" ;;
        backlog) for n in $SIZES; do part_backlog "$b" "$n"; done ;;
        *) die "unknown part $part" ;;
        esac
    done
done

# ---- summary ----------------------------------------------------------------


echo
echo "SUMMARY (load average now $(loadavg))"
printf '%-40s %14s %14s %10s\n' metric warren rabbitmq warren/rmq
W=warren
Q=rabbitmq
if [[ " $PARTS " == *" tput "* ]]; then
    row "persistent+confirm end-to-end msg/s" "$(fmt0 "${R[$W.tput]:-}")" "$(fmt0 "${R[$Q.tput]:-}")"
    row "persistent+confirm confirmed msg/s" "$(fmt0 "${R[$W.tput_confirm]:-}")" \
        "$(fmt0 "${R[$Q.tput_confirm]:-}")"
fi
if [[ " $PARTS " == *" backlog "* ]]; then
    for n in $SIZES; do
        row "N=$n idle RSS MB" "$(mb "${R[$W.$n.idle_kb]:-}")" "$(mb "${R[$Q.$n.idle_kb]:-}")"
        row "N=$n publish (confirmed) msg/s" "$(fmt0 "${R[$W.$n.publish]:-}")" \
            "$(fmt0 "${R[$Q.$n.publish]:-}")"
        row "N=$n RSS after publish MB" "$(mb "${R[$W.$n.rss_kb]:-}")" "$(mb "${R[$Q.$n.rss_kb]:-}")"
        row "N=$n RSS peak (VmHWM) MB" "$(mb "${R[$W.$n.hwm_kb]:-}")" "$(mb "${R[$Q.$n.hwm_kb]:-}")"
        row "N=$n RSS per message beyond idle, B" \
            "$(per_msg "${R[$W.$n.rss_kb]:-}" "${R[$W.$n.idle_kb]:-}" "$n")" \
            "$(per_msg "${R[$Q.$n.rss_kb]:-}" "${R[$Q.$n.idle_kb]:-}" "$n")"
        row "N=$n clean stop s" "${R[$W.$n.stop_s]:-}" "${R[$Q.$n.stop_s]:-}"
        row "N=$n restart until AMQP accepted s" "${R[$W.$n.connect_s]:-}" "${R[$Q.$n.connect_s]:-}"
        row "N=$n restart until N visible s" "${R[$W.$n.restart_s]:-}" "${R[$Q.$n.restart_s]:-}"
        row "N=$n RSS after restart MB" "$(mb "${R[$W.$n.restart_rss_kb]:-}")" \
            "$(mb "${R[$Q.$n.restart_rss_kb]:-}")"
        row "N=$n RSS/msg after restart, B" \
            "$(per_msg "${R[$W.$n.restart_rss_kb]:-}" "${R[$W.$n.idle_kb]:-}" "$n")" \
            "$(per_msg "${R[$Q.$n.restart_rss_kb]:-}" "${R[$Q.$n.idle_kb]:-}" "$n")"
        row "N=$n drain msg/s" "$(fmt0 "${R[$W.$n.drain]:-}")" "$(fmt0 "${R[$Q.$n.drain]:-}")"
        row "N=$n RSS after drain MB" "$(mb "${R[$W.$n.drained_kb]:-}")" \
            "$(mb "${R[$Q.$n.drained_kb]:-}")"
        row "N=$n data dir idle MB" "${R[$W.$n.idle_dir]:-}" "${R[$Q.$n.idle_dir]:-}"
        row "N=$n data dir peak MB" "${R[$W.$n.peak_dir]:-}" "${R[$Q.$n.peak_dir]:-}"
        row "N=$n data dir after drain MB" "${R[$W.$n.drained_dir]:-}" "${R[$Q.$n.drained_dir]:-}"
        for b in $BROKERS; do
            [ -z "${R[$b.$n.skipped]:-}" ] || echo "  $b N=$n not (fully) run: ${R[$b.$n.skipped]}"
        done
    done
fi
