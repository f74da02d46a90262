#!/usr/bin/env bash
# bench/persist.sh - warren against RabbitMQ on persistent messages: confirm
# throughput, memory per queued message, restart time and drain rate.
#
# Starts each broker as bench/run.sh does (bench/lib.sh: warren on a free
# port with its own data directory; Debian's rabbitmq-server as the
# rabbitmq user with its own node name, ports, data, log and config files,
# no plugins) and measures, with warren-perf:
#
#  (a) throughput (scenario 2 of bench/run.sh): 16-byte persistent messages
#      to a durable queue, publisher confirms (<= 1000 in flight), 1
#      producer, 1 consumer with prefetch 1000 and a multiple ack every 100;
#      RUNS runs of DURATION seconds on one broker instance, median of the
#      end-to-end rate (recv_rate).
#  (b) backlog (scenario 7 of bench/run.sh, with a restart), for each N in
#      SIZES: on a fresh broker, publish N 16-byte persistent messages with
#      confirms into a durable queue with no consumer; the broker's RSS
#      (VmRSS of warren, or of RabbitMQ's beam.smp) against its idle RSS;
#      stop it cleanly (SIGTERM), start it again on the same data directory
#      and time it until a passive queue.declare reports all N messages; RSS
#      after the restart; drain the queue with one consumer (prefetch 1000,
#      ack every 100); the data directory's size at the peak and after the
#      drain.
#
# RabbitMQ gets the large backlog (N > RABBIT_MAX_N) only if its publish
# rate on the previous size says it will finish within twice
# RABBIT_LARGE_LIMIT seconds; the publish is bounded by that limit anyway.
# Every broker is stopped by its pid, whatever happens; nothing outside the
# temporary directory is touched.  Needs root (RabbitMQ runs as the
# rabbitmq user).
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
#   RESULTS      also write every figure to this CSV (default: none)
#   PERF_RECORD=1  perf record warren (-g) during its last throughput run and
#                  print the top symbols
#   RABBITMQ_SERVER  rabbitmq-server script (default /usr/lib/rabbitmq/bin/rabbitmq-server)
#   KEEP_TMP=1   keep the temporary directory (logs, data) for inspection
set -u

BENCH_NAME=persist
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

BROKERS=${BROKERS:-warren rabbitmq}
PARTS=${PARTS:-tput backlog}
RUNS=${RUNS:-3}
DURATION=${DURATION:-15}
SIZES=${SIZES:-1000000 10000000}
RESULTS=${RESULTS:-}

bench_init
csv_init

# ---- (a) throughput -------------------------------------------------------

part_tput() {
    local b=$1
    new_instance "$b" tput
    start_broker
    sleep 2
    note "$b: throughput, $RUNS x ${DURATION}s, load $(loadavg); disk: $(disk_probe)"
    # shellcheck disable=SC2086 # TPUT_ARGS is a list of options
    perf_runs 2 "$b" $((DURATION + 90)) $TPUT_ARGS
    stop_broker 120
    log_check
}

# ---- main -----------------------------------------------------------------

print_header "parts: $PARTS; brokers: $BROKERS; sizes: $SIZES"

for part in $PARTS; do
    for b in $BROKERS; do
        case $part in
        tput) part_tput "$b" ;;
        backlog) for n in $SIZES; do
            part_backlog "$b" "$n"
            backlog_csv "$b" "$n"
        done ;;
        *) die "unknown part $part" ;;
        esac
    done
done

# ---- summary ----------------------------------------------------------------

echo
echo "SUMMARY (load average now $(loadavg))"
row_header metric
W=warren
Q=rabbitmq
if [[ " $PARTS " == *" tput "* ]]; then
    row "persistent+confirm end-to-end msg/s" "$(fmt0 "${R[$W.2.rate]:-}")" "$(fmt0 "${R[$Q.2.rate]:-}")"
    row "persistent+confirm confirmed msg/s" "$(fmt0 "${R[$W.2.confirm_rate]:-}")" \
        "$(fmt0 "${R[$Q.2.confirm_rate]:-}")"
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
