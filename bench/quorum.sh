#!/usr/bin/env bash
# bench/quorum.sh - quorum queues (x-queue-type: quorum), warren beside
# Debian's RabbitMQ on the same workload, on this machine, single node:
#
#   sudo bench/quorum.sh                      ~5-8 min, both brokers
#   sudo RUNS=5 DURATION=10 bench/quorum.sh
#   BROKERS=warren bench/quorum.sh            warren only (no root needed)
#
# For each broker (bench/lib.sh: warren on a free 127.0.0.1 port with a
# temporary data directory; RabbitMQ as the rabbitmq user with its own node
# name, ports, data, log and config files, no plugins):
#
#   throughput  for each body size in SIZES (16 B and 1 KB): RUNS runs of
#               DURATION seconds, each on a fresh durable quorum queue
#               (declared with python3 + pika, deleted after the run), of
#               warren-perf --predeclared --queue Q: 1 producer, persistent
#               messages, publisher confirms (<= 1000 in flight), 1 consumer,
#               prefetch 1000, a multiple ack every 100.  Published,
#               confirmed and delivered (end to end) msg/s, medians.
#   latency     the same at a fixed LAT_RATE (5,000) msg/s, 16 B, --latency:
#               publish-to-deliver p50 / p99 / p99.9, medians of RUNS runs.
#   memory      RSS_RUNS runs, each on a fresh instance: the broker's RSS
#               (VmRSS of warren / of RabbitMQ's beam.smp) with an empty
#               quorum queue declared, then after RSS_N (200,000) persistent
#               RSS_SIZE (1 KB) messages published into it with confirms and
#               no consumer (bounded by RSS_LIMIT s), 2 s after the last
#               confirm; RSS per queued message beyond the empty queue.
#
# Then a table: metric, warren, RabbitMQ, ratio warren / RabbitMQ.  Servers
# are stopped by their pid; each instance's data directory is removed when
# it stops, the temporary directory at the end (KEEP_TMP=1 keeps both).
#
# Environment (all optional): WARREN_BIN, PERF_BIN, RABBITMQ_SERVER (as
# bench/run.sh), BROKERS ("warren rabbitmq"), RUNS (3), DURATION (8), SIZES
# ("16 1024"), LAT_RATE (5000), RSS_N (200000), RSS_SIZE (1024), RSS_RUNS
# (RUNS), RSS_LIMIT (180), RESULTS (a CSV file, none by default), KEEP_TMP.
set -u

BENCH_NAME=quorum
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-3}
DURATION=${DURATION:-8}
BROKERS=${BROKERS:-warren rabbitmq}
SIZES=${SIZES:-16 1024}
LAT_RATE=${LAT_RATE:-5000}
RSS_N=${RSS_N:-200000}
RSS_SIZE=${RSS_SIZE:-1024}
RSS_RUNS=${RSS_RUNS:-$RUNS}
RSS_LIMIT=${RSS_LIMIT:-180}
RESULTS=${RESULTS:-}
QQ_ARGS="--producers 1 --consumers 1 --persistent --confirm 1000 --prefetch 1000 --multi-ack 100"
for b in $BROKERS; do
    case $b in warren | rabbitmq) ;; *) die "unknown broker $b (known: warren rabbitmq)" ;; esac
done

bench_init

# qq.py URI declare|delete|count NAME: a durable quorum queue.
cat >"$TMP/qq.py" <<'EOF'
import sys, urllib.parse
import pika

uri, op, name = sys.argv[1:4]
u = urllib.parse.urlparse(uri)
conn = pika.BlockingConnection(pika.ConnectionParameters(
    host=u.hostname, port=u.port, heartbeat=0, socket_timeout=30, blocked_connection_timeout=None,
    credentials=pika.PlainCredentials(u.username, u.password)))
ch = conn.channel()
if op == "declare":
    ok = ch.queue_declare(name, durable=True, arguments={"x-queue-type": "quorum"})
    print("declared %s messages=%d" % (name, ok.method.message_count))
elif op == "delete":
    ok = ch.queue_delete(name)
    print("deleted %s messages=%d" % (name, ok.method.message_count))
elif op == "count":
    ok = ch.queue_declare(name, passive=True)
    print(ok.method.message_count)
conn.close()
EOF
qq() {
    timeout 120 "$PY" "$TMP/qq.py" "$URI" "$@" 2>>"$TMP/qq.log"
}

# perf_runs (bench/lib.sh) runs warren-perf through perf_run; here, while
# QQ_FRESH names a prefix, every run gets a fresh quorum queue PREFIX-N,
# declared before and deleted after the run, and is pointed at it with
# --predeclared --queue; nacks are reported.
eval "lib_perf_run() $(declare -f perf_run | tail -n +2)"
QQ_FRESH=
QQ_SEQ=0
perf_run() {
    local log=$1 limit=$2 q rc out
    shift 2
    [ -n "$QQ_FRESH" ] || { lib_perf_run "$log" "$limit" "$@"; return; }
    QQ_SEQ=$((QQ_SEQ + 1))
    q=$QQ_FRESH-$QQ_SEQ
    if ! out=$(qq declare "$q"); then
        note "$BROKER_NAME: declaring quorum queue $q failed:"
        tail -3 "$TMP/qq.log" >&2
        LINE=
        return 1
    fi
    lib_perf_run "$log" "$limit" "$@" --predeclared --queue "$q"
    rc=$?
    nack_check "$LINE"
    out=$(qq delete "$q") || note "$BROKER_NAME: deleting quorum queue $q failed"
    echo "$out" >>"$TMP/qq.log"
    return $rc
}
nack_check() {
    local n
    n=$(field nacked "$1")
    [ "${n:-0}" = 0 ] || note "$BROKER_NAME: $n publishes nacked: $1"
}

# log_check as bench/lib.sh's, but RabbitMQ's quorum queue recovery also
# logs "0 servers failed to start: []" at info level on every boot.
log_check() {
    local lines
    lines=$(grep -hiE 'error|warn|corrupt|fail' "$BROKER_DIR"/*.log "$BROKER_DIR"/log/*.log 2>/dev/null |
        grep -vE 'NOT_FOUND|rebuilding indices from scratch|unexpectedly closed TCP|closing AMQP connection|\] <[0-9.]+> *$|0 servers failed to start: \[\]')
    [ -n "$lines" ] || return 0
    head -3 <<<"$lines" | sed "s/^/$BENCH_NAME: $BROKER_NAME log: /" >&2
    note "$BROKER_NAME log: $(wc -l <<<"$lines") such lines in all (KEEP_TMP=1 keeps the logs)"
}

drop_instance() {
    [ "${KEEP_TMP:-0}" = 1 ] || rm -rf "$BROKER_DIR"
}

# rss_part BROKER RUN: on a fresh instance, the RSS with an empty quorum
# queue, then after RSS_N messages of RSS_SIZE bytes published with
# confirms into it (no consumer).
rss_part() {
    local b=$1 run=$2 k=$1.rss.$2 q=bench-rss line rc confirmed count
    new_instance "$b" "rss-$run"
    start_broker
    sleep 2
    if ! qq declare "$q" >/dev/null; then
        note "$b: declaring $q failed"
        stop_broker 120
        return
    fi
    sleep 2
    R[$k.idle_kb]=$(status_kb VmRSS)
    note "$b memory run $run: empty quorum queue: $(rss_line); publishing $RSS_N x $RSS_SIZE B (load $(loadavg))"
    perf_run "$TMP/rss-$b-$run.log" $((RSS_LIMIT + 30)) --producers 1 --consumers 0 --size "$RSS_SIZE" \
        --persistent --confirm 1000 --predeclared --queue "$q" --pmessages "$RSS_N" --duration "$RSS_LIMIT"
    rc=$?
    line=$LINE
    nack_check "$line"
    confirmed=$(field confirmed "$line")
    sleep 2
    R[$k.rss_kb]=$(status_kb VmRSS)
    count=$(qq count "$q")
    printf '[mem] %-8s run %d: %s; then %s, queue holds %s\n' "$b" "$run" "$line" "$(rss_line)" "${count:-?}"
    if [ $rc -ne 0 ] || [ "${confirmed:-0}" != "$RSS_N" ]; then
        note "$b memory run $run: incomplete (exit $rc): ${confirmed:-0} of $RSS_N confirmed within ${RSS_LIMIT}s"
        tail -3 "$TMP/rss-$b-$run.log" >&2
        R[$k.partial]="${confirmed:-0} of $RSS_N confirmed in ${RSS_LIMIT}s, RSS $(mb "${R[$k.rss_kb]}") MB"
        unset "R[$k.rss_kb]"
    else
        R[$k.publish]=$(field confirm_rate "$line")
        R[$k.per_msg]=$(per_msg "${R[$k.rss_kb]}" "${R[$k.idle_kb]}" "$RSS_N")
    fi
    [ "${count:-}" = "$RSS_N" ] || [ -n "${R[$k.partial]:-}" ] ||
        note "$b memory run $run: the queue holds ${count:-?} messages, not $RSS_N"
    for m in idle_kb rss_kb publish per_msg; do csv mem "$b" "$run" "$m" "${R[$k.$m]:-}"; done
    stop_broker 300
    log_check
    drop_instance
}

csv_init
print_header "quorum queues, single node; brokers: $BROKERS; $RUNS runs of ${DURATION}s per metric;" \
    "sizes $SIZES; latency at $LAT_RATE msg/s; memory: $RSS_N x $RSS_SIZE B, $RSS_RUNS runs"
echo "$BENCH_NAME: warren-perf $QQ_ARGS --size S --predeclared --queue Q (a fresh quorum queue per run)"

for b in $BROKERS; do
    new_instance "$b" tput
    start_broker
    note "$b: disk: $(disk_probe); idle $(rss_line)"
    QQ_FRESH=bench-qq
    for s in $SIZES; do
        # shellcheck disable=SC2086 # a list of options
        perf_runs "qq-$s" "$b" $((DURATION + 90)) $QQ_ARGS --size "$s"
    done
    # shellcheck disable=SC2086
    perf_runs "qq-lat" "$b" $((DURATION + 90)) $QQ_ARGS --size 16 --latency --rate "$LAT_RATE"
    QQ_FRESH=
    stop_broker 300
    log_check
    drop_instance
    for run in $(seq 1 "$RSS_RUNS"); do
        rss_part "$b" "$run"
    done
    for m in idle_kb rss_kb publish per_msg; do
        mvals=()
        for run in $(seq 1 "$RSS_RUNS"); do
            [ -z "${R[$b.rss.$run.$m]:-}" ] || mvals+=("${R[$b.rss.$run.$m]}")
        done
        [ ${#mvals[@]} -eq 0 ] && continue
        R[$b.mem.$m]=$(printf '%s\n' "${mvals[@]}" | median)
        csv mem "$b" median "$m" "${R[$b.mem.$m]}"
    done
done

# ---- summary ----------------------------------------------------------------

as_is() { printf '%s' "${1:-}"; }
rrow() {
    local f=${3:-as_is}
    row "$1" "$("$f" "${R[warren.$2]:-}")" "$("$f" "${R[rabbitmq.$2]:-}")"
}
size_label() { if [ "$1" -ge 1024 ] && [ $(($1 % 1024)) = 0 ]; then echo "$(($1 / 1024)) KB"; else echo "$1 B"; fi; }
echo
echo "SUMMARY quorum queues, single node (medians of $RUNS runs of ${DURATION}s; memory: $RSS_RUNS runs;" \
    "load average now $(loadavg))"
row_header metric
for s in $SIZES; do
    l=$(size_label "$s")
    rrow "$l persistent+confirm: published msg/s" "qq-$s.send_rate" fmt0
    rrow "$l persistent+confirm: confirmed msg/s" "qq-$s.confirm_rate" fmt0
    rrow "$l persistent+confirm: delivered msg/s" "qq-$s.rate" fmt0
done
rrow "16 B at $LAT_RATE msg/s: delivered msg/s" qq-lat.rate fmt0
rrow "16 B at $LAT_RATE msg/s: p50 us" qq-lat.p50_us
rrow "16 B at $LAT_RATE msg/s: p99 us" qq-lat.p99_us
rrow "16 B at $LAT_RATE msg/s: p99.9 us" qq-lat.p999_us
nl=$(awk -v n="$RSS_N" 'BEGIN { printf (n % 1000 ? "%d" : "%dk"), (n % 1000 ? n : n / 1000) }')
rl=$(size_label "$RSS_SIZE")
rrow "RSS, empty quorum queue MB" mem.idle_kb mb
rrow "RSS, $nl x $rl queued MB" mem.rss_kb mb
rrow "RSS per queued message beyond empty B" mem.per_msg
rrow "publish $nl x $rl, no consumer: msg/s" mem.publish fmt0
for b in $BROKERS; do
    for run in $(seq 1 "$RSS_RUNS"); do
        [ -z "${R[$b.rss.$run.partial]:-}" ] || echo "  $b memory run $run incomplete: ${R[$b.rss.$run.partial]}"
    done
done
echo "(ratio = warren / RabbitMQ: above 1 is better for warren for rates, below 1 for latency and memory)"
