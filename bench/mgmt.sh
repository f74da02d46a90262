#!/usr/bin/env bash
# bench/mgmt.sh - the management API with many queues, warren beside RabbitMQ
# (issue 11): the latency of GET /api/queues (all of them, one page of 100,
# without statistics) and /api/overview, and the broker's RSS before and
# after, with QUEUES queues; for warren also the statistics tick's cost.
#
#   sudo bench/mgmt.sh                 10,000 queues, 5 requests each (median)
#   QUEUES=1000 RUNS=3 sudo bench/mgmt.sh
#   BROKERS=warren bench/mgmt.sh       warren only (no root needed)
#
# RabbitMQ runs with its management plugin (collect_statistics_interval as
# configured by default, 5 s) as the rabbitmq user, like bench/run.sh.
set -u
BENCH_NAME=mgmt
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
QUEUES=${QUEUES:-10000}
RUNS=${RUNS:-5}
BROKERS=${BROKERS:-warren rabbitmq}

start_warren() {
    "$WARREN_BIN" --listen "127.0.0.1:$PORT" --data-dir "$DATA_DIR" \
        --set "management.tcp.port=$HTTP_PORT" >>"$BROKER_DIR/warren.log" 2>&1 &
    BROKER_PID=$!
}

bench_init
for b in $BROKERS; do
    new_instance "$b" 1
    HTTP_PORT=$(free_port)
    if [ "$b" = rabbitmq ]; then
        echo "management.tcp.port = $HTTP_PORT" >>"$BROKER_DIR/rabbitmq.conf"
        echo "management.tcp.ip = 127.0.0.1" >>"$BROKER_DIR/rabbitmq.conf"
        echo "loopback_users = none" >>"$BROKER_DIR/rabbitmq.conf"
        echo '[rabbitmq_management].' >"$BROKER_DIR/enabled_plugins"
        [ "$(id -u)" = 0 ] && chown -R rabbitmq:rabbitmq "$BROKER_DIR"
    fi
    start_broker
    wait_port "$HTTP_PORT" 120 || die "$b: no HTTP listener on $HTTP_PORT"
    rss0=$(rss_line)
    t0=$(date +%s.%N)
    $PY "$ROOT/bench/mgmt_load.py" declare "$URI" "$QUEUES" || die "$b: declaring queues failed"
    declare_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    sleep 6 # two statistics intervals
    rss1=$(rss_line)
    out=$($PY "$ROOT/bench/mgmt_load.py" measure "http://127.0.0.1:$HTTP_PORT" "$RUNS") ||
        die "$b: measuring failed"
    rss2=$(rss_line)
    tick=""
    if [ "$b" = warren ]; then
        tick=$(curl -s -u guest:guest "http://127.0.0.1:$HTTP_PORT/api/nodes" |
            $PY -c 'import json,sys; print("stats_tick_us=%.0f" % json.load(sys.stdin)[0]["stats_tick_us"])')
    fi
    echo "$b queues=$QUEUES declare_s=$declare_s $out $tick"
    echo "$b rss_empty: $rss0"
    echo "$b rss_with_queues: $rss1"
    echo "$b rss_after_api: $rss2"
    for k in queues_all_ms queues_page_ms queues_nostats_ms overview_ms; do
        R[$b.$k]=$(grep -o "$k=[0-9.]*" <<<"$out" | cut -d= -f2)
    done
    stop_broker 120
done
if [[ " $BROKERS " == *" rabbitmq "* && " $BROKERS " == *" warren "* ]]; then
    for k in queues_all_ms queues_page_ms queues_nostats_ms overview_ms; do
        awk -v k="$k" -v w="${R[warren.$k]}" -v r="${R[rabbitmq.$k]}" \
            'BEGIN { printf "%-18s warren %8.1f ms  rabbitmq %8.1f ms  ratio %.1fx\n", k, w, r, r / w }'
    done
fi
