#!/usr/bin/env bash
# bench/quorum_cluster.sh - quorum queues (x-queue-type: quorum) in a 3-node
# cluster: a warren cluster beside a cluster of Debian's RabbitMQ on the same
# workload, on this machine (all six nodes on 127.0.0.1; one cluster at a
# time, never both at once):
#
#   sudo bench/quorum_cluster.sh                     ~15-25 min, both brokers
#   sudo RUNS=1 DURATION=3 RSS_N=100000 bench/quorum_cluster.sh   a quick check
#   BROKERS=warren bench/quorum_cluster.sh           warren only (no root needed)
#
# A cluster is three nodes, each with its own AMQP and cluster (Erlang
# distribution) port on 127.0.0.1, data directory and log under the
# temporary directory.  warren (WARREN_BIN): the cluster.* keys of
# docs/clustering.md (cluster.listener, cluster.secret_file,
# cluster_formation.classic_config.nodes.1..3) in a configuration file per
# node.  RabbitMQ (bench/lib.sh's start code: as the rabbitmq user, its own
# node names NAME-PID-CLUSTER-nI@localhost, no plugins, distribution bound to
# 127.0.0.1): three fresh nodes, then nodes 2 and 3 join node 1 with
# rabbitmqctl stop_app / join_cluster / start_app.  Quorum queues are
# declared durable through node 1 (python3 + pika); their leader is what
# warrenctl / rabbitmqctl list_queues name leader online say, waited for
# (up to LEADER_WAIT s) until every running node agrees on it and all the
# members are online, before anything is measured.
#
#   throughput  a cluster "tput"; for each body size in SIZES (16 B and
#               1 KB): RUNS runs of DURATION seconds, each on a fresh quorum
#               queue (left in place, idle, until the cluster stops; see
#               QQ_DELETE), of warren-perf --predeclared --queue Q connected
#               to the queue's leader node: 1 producer, persistent messages,
#               publisher confirms (<= 1000 in flight), 1 consumer,
#               prefetch 1000, a multiple ack every 100.
#               Published, confirmed and delivered (end to end) msg/s,
#               medians.  broker_cpu_pct in the run lines is the three
#               nodes' CPU together (share of one core).
#   latency     the same at a fixed LAT_RATE (2,000) msg/s, 16 B, --latency:
#               publish-to-deliver p50 / p99 / p99.9, medians of RUNS runs.
#   failover    on the same cluster, FAIL_RUNS runs on a fresh quorum queue:
#               a python3 + pika producer connected to a follower publishes
#               16 B persistent messages with confirms (<= 1000 in flight)
#               at FAIL_RATE (500) msg/s; after FAIL_WARMUP (3) s of
#               confirms it kill -9s the leader node's process (warren /
#               RabbitMQ's beam.smp) itself and measures the time from the
#               kill to the first confirm of a message published after the
#               kill (bounded by FAIL_LIMIT s); also the first confirm of
#               any kind after the kill, the nacks, and the longest gap
#               between two confirms.  Then the new leader (from the
#               survivors), the killed node is started again on its data
#               and waited for until it is a member online again.
#   memory      a fresh cluster "rss": the RSS of each node (VmRSS of warren
#               / of beam.smp) with an empty quorum queue declared, then
#               after RSS_N (1,000,000) persistent RSS_SIZE (16) B messages
#               published with confirms (<= 1000 in flight) into it through
#               its leader with no consumer (bounded by RSS_LIMIT s), 2 s
#               after the last confirm: the largest and the mean of the three
#               nodes, and the publish rate.  Publishes that were nacked and
#               are not in the queue are published once more (as a client
#               does after nacks), and said under the table.
#
# A node that exits unexpectedly is reported (exit status, end of its log,
# and a line under the table); the run it hit is not counted, and a fresh
# cluster takes the place of the broken one.  QQ_DELETE=1 deletes each
# run's queue after it, as bench/quorum.sh does; it is off because deleting
# a quorum queue that has taken a few hundred thousand messages made warren
# nodes crash (SIGSEGV, libuv's uv__finish_close assertion) when this was
# written.
#
# Then a table: metric, warren, RabbitMQ, ratio warren / RabbitMQ.  Servers
# are stopped by their pid (SIGTERM, SIGKILL after a limit; the failover
# kill is by pid too); each cluster's data directories are removed when it
# stops, the temporary directory at the end (KEEP_TMP=1 keeps both).
#
# Environment (all optional): WARREN_BIN, PERF_BIN, RABBITMQ_SERVER (as
# bench/run.sh), WARRENCTL (warrenctl next to WARREN_BIN), RABBITMQCTL
# (rabbitmqctl next to RABBITMQ_SERVER), BROKERS ("warren rabbitmq"), RUNS
# (3), DURATION (8), SIZES ("16 1024"), LAT_RATE (2000), FAIL_RUNS (1),
# FAIL_RATE (500), FAIL_WARMUP (3), FAIL_LIMIT (60), RSS_N (1000000),
# RSS_SIZE (16), RSS_LIMIT (300), LEADER_WAIT (60), QQ_DELETE (0), RESULTS
# (a CSV file, none by default), KEEP_TMP.
set -u

BENCH_NAME=quorum_cluster
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-3}
DURATION=${DURATION:-8}
BROKERS=${BROKERS:-warren rabbitmq}
SIZES=${SIZES:-16 1024}
LAT_RATE=${LAT_RATE:-2000}
FAIL_RUNS=${FAIL_RUNS:-1}
FAIL_RATE=${FAIL_RATE:-500}
FAIL_WARMUP=${FAIL_WARMUP:-3}
FAIL_LIMIT=${FAIL_LIMIT:-60}
RSS_N=${RSS_N:-1000000}
RSS_SIZE=${RSS_SIZE:-16}
RSS_LIMIT=${RSS_LIMIT:-300}
LEADER_WAIT=${LEADER_WAIT:-60}
QQ_DELETE=${QQ_DELETE:-0}
RESULTS=${RESULTS:-}
WARRENCTL=${WARRENCTL:-$(dirname "$WARREN_BIN")/warrenctl}
RABBITMQCTL=${RABBITMQCTL:-$(dirname "$RABBITMQ_SERVER")/rabbitmqctl}
QQ_ARGS="--producers 1 --consumers 1 --persistent --confirm 1000 --prefetch 1000 --multi-ack 100"
for b in $BROKERS; do
    case $b in
    warren) [ -x "$WARRENCTL" ] || die "no warrenctl at $WARRENCTL (build it, or set WARRENCTL)" ;;
    rabbitmq) [ -x "$RABBITMQCTL" ] || die "no rabbitmqctl at $RABBITMQCTL (set RABBITMQCTL)" ;;
    *) die "unknown broker $b (known: warren rabbitmq)" ;;
    esac
done
# RabbitMQ's nodes: Erlang distribution (and an epmd they start) on
# 127.0.0.1 only, as the AMQP listeners.
RABBIT_ENV=("RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}"
    ERL_EPMD_ADDRESS=127.0.0.1)

bench_init

# ---- helpers in python3 ----------------------------------------------------

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

# failover.py URI QUEUE PID RATE WARMUP LIMIT: one producer on URI (a
# follower) publishes 16-byte persistent messages to QUEUE at RATE msg/s
# with confirms (<= 1000 in flight, no catching up when held back); once
# confirms have flowed for WARMUP s it sends SIGKILL to PID (the leader
# node) and measures, on its own monotonic clock, the time from the kill to
# the first confirm of a message published after the kill (failover_s), and
# to the first confirm of any kind (first_ack_s); it stops 1 s after that,
# or LIMIT s after the kill.  One summary line of key=value on stdout; exit
# 0 with a new confirm, 1 without, 2 when the connection failed.
cat >"$TMP/failover.py" <<'EOF'
import os, signal, sys, time, urllib.parse
import pika

uri, queue = sys.argv[1], sys.argv[2]
pid, rate, warmup, limit = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
u = urllib.parse.urlparse(uri)
params = pika.ConnectionParameters(host=u.hostname, port=u.port, heartbeat=0, connection_attempts=1,
                                   credentials=pika.PlainCredentials(u.username, u.password))
BODY, PROPS, INFLIGHT, TICK = b"f" * 16, pika.BasicProperties(delivery_mode=2), 1000, 0.005
s = dict(ch=None, seq=0, t0=None, last=None, carry=0.0, first_conf=None, kill_t=None, seq_at_kill=0,
         inflight_at_kill=0, new_t=None, any_t=None, acked=0, nacked=0, nacked_after=0,
         old_acked=0, old_nacked=0, last_conf=None, gap=0.0, stop_at=None, err=None, exit=1)
pending = {}  # seq -> True, unconfirmed


def settle(tag, multiple, ack):
    now = time.monotonic()
    tags = [t for t in pending if t <= tag] if multiple else ([tag] if tag in pending else [])
    for t in tags:
        del pending[t]
        if ack:
            s["acked"] += 1
            if s["first_conf"] is None:
                s["first_conf"] = now
        else:
            s["nacked"] += 1
        if s["kill_t"] is not None:
            if not ack:
                s["nacked_after"] += 1
            if t <= s["seq_at_kill"]:
                s["old_acked" if ack else "old_nacked"] += 1
            if ack and s["any_t"] is None:
                s["any_t"] = now
            if ack and t > s["seq_at_kill"] and s["new_t"] is None:
                s["new_t"] = now
                s["stop_at"] = now + 1.0
    if ack and tags:
        if s["last_conf"] is not None:
            s["gap"] = max(s["gap"], now - s["last_conf"])
        s["last_conf"] = now


def on_confirm(frame):
    m = frame.method
    settle(m.delivery_tag, m.multiple, isinstance(m, pika.spec.Basic.Ack))


def tick():
    now = time.monotonic()
    if s["stop_at"] is not None and now >= s["stop_at"]:
        s["exit"] = 0
        conn.close()
        return
    if s["kill_t"] is not None and now - s["kill_t"] > limit:
        s["err"] = "no new confirm within %gs of the kill" % limit
        conn.close()
        return
    if s["kill_t"] is None and s["t0"] is not None and now - s["t0"] > warmup + 30:
        s["err"] = "no confirm within %gs" % (warmup + 30)
        conn.close()
        return
    if s["kill_t"] is None and s["first_conf"] is not None and now - s["first_conf"] >= warmup:
        s["seq_at_kill"], s["inflight_at_kill"] = s["seq"], len(pending)
        s["rate_before"] = s["acked"] / (now - s["first_conf"])
        s["kill_t"] = time.monotonic()
        os.kill(pid, signal.SIGKILL)
    s["carry"] += rate * (now - s["last"])
    s["last"] = now
    n = int(s["carry"])
    s["carry"] -= n
    try:
        for _ in range(min(n, INFLIGHT - len(pending))):
            s["seq"] += 1
            pending[s["seq"]] = True
            s["ch"].basic_publish("", queue, BODY, PROPS)
    except Exception as e:  # the channel or connection went away
        s["err"], s["exit"] = "publish failed: %r" % (e,), 2
        if conn.is_open:
            conn.close()
        return
    conn.ioloop.call_later(TICK, tick)


def on_confirm_mode(_frame):
    s["t0"] = s["last"] = time.monotonic()
    tick()


def on_channel(ch):
    s["ch"] = ch
    ch.confirm_delivery(on_confirm, callback=on_confirm_mode)


def on_open_error(_conn, err):
    s["err"] = "connect failed: %r" % (err,)
    s["exit"] = 2
    conn.ioloop.stop()


def on_closed(_conn, reason):
    if s["exit"] != 0 and s["err"] is None:
        s["err"] = "connection closed: %r" % (reason,)
        s["exit"] = 2
    conn.ioloop.stop()


conn = pika.SelectConnection(params, on_open_callback=lambda c: c.channel(on_open_callback=on_channel),
                             on_open_error_callback=on_open_error, on_close_callback=on_closed)
def overall_limit():
    s["err"] = s["err"] or "overall time limit"
    if conn.is_open:
        conn.close()
    else:
        conn.ioloop.stop()


conn.ioloop.call_later(warmup + limit + 60, overall_limit)
conn.ioloop.start()
k = s["kill_t"]
f = lambda t: "%.3f" % (t - k) if t is not None and k is not None else "none"
print("failover_s=%s first_ack_s=%s killed=%s inflight_at_kill=%d old_acked=%d old_nacked=%d "
      "nacked_after_kill=%d sent=%d confirmed=%d nacked=%d max_confirm_gap_s=%.3f rate_before=%.0f%s"
      % (f(s["new_t"]), f(s["any_t"]), "yes" if k is not None else "no", s["inflight_at_kill"],
         s["old_acked"], s["old_nacked"], s["nacked_after"], s["seq"], s["acked"], s["nacked"], s["gap"],
         s.get("rate_before", 0), (" error=%s" % s["err"].replace(" ", "_")) if s["err"] else ""))
sys.exit(s["exit"])
EOF

# ---- clusters ---------------------------------------------------------------

# The current cluster: broker CL_B, node i in 1..3 with its directory
# NDIR, AMQP port NPORT and URI NURI, cluster (distribution) port NDIST,
# name as list_queues shows it NNAME, data directory NDATA (warren) and the
# pid of its server (or of RabbitMQ's start script) NPID, empty when down.
CL_B=
CL_NAME=
NODES="1 2 3"
declare -a NDIR NPORT NURI NDIST NNAME NDATA NPID

rctl() {
    rabbit_as
    timeout 120 "${RABBIT_AS[@]}" "$RABBITMQCTL" "$@"
}

# node_ctl I ARGS...: warrenctl / rabbitmqctl against node I.
node_ctl() {
    local i=$1
    shift
    case $CL_B in
    warren) timeout 60 "$WARRENCTL" -n "${NDATA[$i]}" "$@" ;;
    rabbitmq) rctl -n "${NNAME[$i]}" "$@" ;;
    esac
}

node_start() {
    local i=$1
    case $CL_B in
    warren)
        "$WARREN_BIN" --config "${NDIR[$i]}/warren.conf" >>"${NDIR[$i]}/warren.log" 2>&1 &
        NPID[i]=$!
        ;;
    rabbitmq)
        NODE=${NNAME[$i]} PORT=${NPORT[$i]} DIST_PORT=${NDIST[$i]} BROKER_DIR=${NDIR[$i]} start_rabbitmq
        NPID[i]=$BROKER_PID
        BROKER_PID=
        ;;
    esac
}

node_wait() {
    BROKER_PID=${NPID[$1]} wait_port "${NPORT[$1]}" 120 ||
        die "$CL_B node $1 did not start; see ${NDIR[$1]}"
}

# node_vm_pid I: the process of node I that holds its memory and that a
# crash takes down: warren, or RabbitMQ's beam.smp.
node_vm_pid() {
    BROKER_PID=${NPID[$1]} rss_pid
}

node_rss_kb() {
    [ -n "${NPID[$1]:-}" ] && BROKER_PID=${NPID[$1]} status_kb VmRSS
}

# node_stop I [SECONDS]: SIGTERM, SIGKILL after SECONDS (60).
node_stop() {
    [ -n "${NPID[$1]:-}" ] || return 0
    BROKER_PID=${NPID[$1]} BROKER_NAME="$CL_B node $1" stop_broker "${2:-60}"
    NPID[$1]=
}

# running_nodes I: how many nodes node I sees running (cluster_status).
running_nodes() {
    node_ctl "$1" cluster_status --formatter json 2>/dev/null |
        "$PY" -c 'import json, sys; print(len(json.load(sys.stdin).get("running_nodes", [])))' 2>/dev/null
}

# cluster_start BROKER NAME: three fresh nodes, started together and
# formed into a cluster; waits until every node sees three running.
cluster_start() {
    local b=$1 cl=$2 i t0=$SECONDS deadline
    CL_B=$b
    CL_NAME=$cl
    for i in $NODES; do
        new_instance "$b" "$cl-n$i"
        NDIR[i]=$BROKER_DIR
        NPORT[i]=$PORT
        NURI[i]=$URI
        NDIST[i]=$DIST_PORT
        NDATA[i]=$DATA_DIR
        case $b in
        warren) NNAME[i]=warren@127.0.0.1:$DIST_PORT ;;
        rabbitmq) NNAME[i]=$NODE ;;
        esac
    done
    if [ "$b" = warren ]; then
        head -c 32 /dev/urandom | base64 >"$TMP/$b-$cl.secret"
        chmod 600 "$TMP/$b-$cl.secret"
        for i in $NODES; do
            {
                echo "listeners.tcp.default = 127.0.0.1:${NPORT[$i]}"
                echo "cluster.listener = 127.0.0.1:${NDIST[$i]}"
                echo "cluster.secret_file = $TMP/$b-$cl.secret"
                echo "cluster_formation.peer_discovery_backend = classic_config"
                for j in $NODES; do echo "cluster_formation.classic_config.nodes.$j = ${NNAME[$j]}"; done
                echo "data_dir = ${NDATA[$i]}"
            } >"${NDIR[$i]}/warren.conf"
        done
    fi
    BROKER_NAME=$b
    for i in $NODES; do node_start "$i"; done
    for i in $NODES; do node_wait "$i"; done
    if [ "$b" = rabbitmq ]; then
        for i in 2 3; do
            { rctl -n "${NNAME[$i]}" stop_app &&
                rctl -n "${NNAME[$i]}" join_cluster "${NNAME[1]}" &&
                rctl -n "${NNAME[$i]}" start_app; } >>"$TMP/rabbitmqctl.log" 2>&1 ||
                die "rabbitmq node $i could not join node 1; see $TMP/rabbitmqctl.log"
        done
    fi
    deadline=$((SECONDS + 120))
    for i in $NODES; do
        until [ "$(running_nodes "$i")" = 3 ]; do
            [ $SECONDS -lt $deadline ] || die "$b: node $i does not see 3 running nodes after 120 s"
            sleep 0.5
        done
    done
    note "$b cluster $cl formed in $((SECONDS - t0)) s: ${NNAME[*]} (AMQP ports ${NPORT[*]})"
}

# cluster_stop: every node, SIGTERM together (SIGKILL after 120 s), then
# log_check; a node that does not exit with status 0 is reported (and
# added to CRASHES); the data directories go (unless KEEP_TMP=1).
cluster_stop() {
    local i rc
    [ -n "$CL_B" ] || return 0
    for i in $NODES; do [ -z "${NPID[$i]:-}" ] || kill -TERM "${NPID[$i]}" 2>/dev/null; done
    for i in $NODES; do
        [ -n "${NPID[$i]:-}" ] || continue
        if ! wait_gone "${NPID[$i]}" 120; then
            note "$CL_B node $i (pid ${NPID[$i]}) did not stop within 120s of SIGTERM; sending SIGKILL"
            kill -KILL "${NPID[$i]}" 2>/dev/null
        fi
        wait "${NPID[$i]}" 2>/dev/null
        rc=$?
        NPID[i]=
        [ $rc = 0 ] && continue
        [ $rc -gt 128 ] && rc="signal $((rc - 128))"
        note "$CL_B node $i exited with $rc on its stop (SIGTERM)"
        CRASHES[$CL_B]+="node $i ($rc) on its stop; "
    done
    for i in $NODES; do BROKER_DIR=${NDIR[$i]} BROKER_NAME="$CL_B node $i" log_check; done
    [ "${KEEP_TMP:-0}" = 1 ] || for i in $NODES; do rm -rf "${NDIR[$i]}"; done
    CL_B=
}

# cluster_check WHEN [keep]: fails, and says so, when a node that should
# run has exited: its exit status and the end of its log go to stderr and
# to CRASHES (per broker); the cluster is then replaced by a fresh one, so
# that what follows runs on three nodes again (not with "keep").
declare -A CRASHES=()
cluster_check() {
    local i rc dead=
    for i in $NODES; do
        if [ -z "${NPID[$i]:-}" ] || kill -0 "${NPID[$i]}" 2>/dev/null; then continue; fi
        wait "${NPID[$i]}" 2>/dev/null
        rc=$?
        NPID[i]=
        dead+=" $i"
        [ $rc -gt 128 ] && rc="signal $((rc - 128))"
        note "$CL_B node $i exited unexpectedly ($rc) $1; the end of its log:"
        tail -5 "${NDIR[$i]}"/*.log "${NDIR[$i]}"/log/*.log 2>/dev/null | sed 's/^/    /' >&2
        CRASHES[$CL_B]+="node $i ($rc) $1; "
    done
    [ -n "$dead" ] || return 0
    [ "${2:-}" != keep ] || return 1
    local b=$CL_B
    note "$b: starting a fresh cluster in place of this one"
    cluster_stop
    CL_GEN=$((CL_GEN + 1))
    cluster_start "$b" "${CL_NAME%-r*}-r$CL_GEN"
    return 1
}
CL_GEN=0

eval "lib_cleanup() $(declare -f cleanup | tail -n +2)"
cleanup() {
    cluster_stop
    lib_cleanup
}

# broker_cpu_s as bench/lib.sh's, for the three nodes together.
eval "lib_broker_cpu_s() $(declare -f broker_cpu_s | tail -n +2)"
broker_cpu_s() {
    local i t=0
    for i in $NODES; do
        [ -z "${NPID[$i]:-}" ] || t=$(awk -v a="$t" -v b="$(BROKER_PID=${NPID[$i]} lib_broker_cpu_s)" \
            'BEGIN { print a + b }')
    done
    echo "$t"
}

# log_check as bench/lib.sh's, but without what a RabbitMQ cluster logs as
# expected: its quorum queue recovery ("0 servers failed to start: []") on
# every boot, and the tracked connection tables a node cannot make while it
# joins (an error of two lines).
log_check() {
    local lines
    lines=$(grep -hiE 'error|warn|corrupt|fail' "$BROKER_DIR"/*.log "$BROKER_DIR"/log/*.log 2>/dev/null |
        grep -vE 'NOT_FOUND|rebuilding indices from scratch|unexpectedly closed TCP|closing AMQP connection|\] <[0-9.]+> *$|0 servers failed to start: \[\]|tracked connection table|\[error\] <[0-9.]+> +'"'[^']+'}"'$')
    [ -n "$lines" ] || return 0
    head -3 <<<"$lines" | sed "s/^/$BENCH_NAME: $BROKER_NAME log: /" >&2
    note "$BROKER_NAME log: $(wc -l <<<"$lines") such lines in all (KEEP_TMP=1 keeps the logs)"
}

# ---- quorum queues ----------------------------------------------------------

qq() {
    timeout 120 "$PY" "$TMP/qq.py" "${NURI[1]}" "$@" 2>>"$TMP/qq.log"
}

# node_index NAME: the node I whose name NAME is (nothing if none).
node_index() {
    local i
    for i in $NODES; do [ "${NNAME[$i]}" != "$1" ] || echo "$i"; done
}

# leader_view I QUEUE: "LEADER ONLINE" as node I lists QUEUE: the leader's
# node index (0 when none or unknown) and how many members are online.
leader_view() {
    local line leader online
    line=$(node_ctl "$1" list_queues -q --no-table-headers name leader online 2>/dev/null |
        awk -F'\t' -v q="$2" '$1 == q')
    leader=$(cut -f2 <<<"$line")
    online=$(cut -f3 <<<"$line" | tr -cd ',' | wc -c)
    [ -n "$(cut -f3 <<<"$line" | tr -d '[] ')" ] && online=$((online + 1))
    echo "$(node_index "$leader" | grep . || echo 0) $online"
}

# qq_leader QUEUE [EXCLUDE]: waits up to LEADER_WAIT s until every running
# node (warren: each has its own view) or the first running node
# (RabbitMQ: one metadata store) names the same running node, not EXCLUDE,
# as QUEUE's leader and lists as many members online as nodes run; prints
# its index, or fails.
qq_leader() {
    local q=$1 ex=${2:-0} deadline=$((SECONDS + LEADER_WAIT)) i v l up want
    while [ $SECONDS -lt $deadline ]; do
        l=
        want=0
        for i in $NODES; do [ -z "${NPID[$i]:-}" ] || want=$((want + 1)); done
        for i in $NODES; do
            [ -n "${NPID[$i]:-}" ] || continue
            read -r v up <<<"$(leader_view "$i" "$q")"
            if [ "$v" = 0 ] || [ "$v" = "$ex" ] || [ -z "${NPID[$v]:-}" ] || [ "$up" -lt "$want" ] ||
                { [ -n "$l" ] && [ "$l" != "$v" ]; }; then
                l=
                break
            fi
            l=$v
            [ "$CL_B" = warren ] || break
        done
        if [ -n "$l" ]; then
            echo "$l"
            return 0
        fi
        sleep 0.2
    done
    return 1
}

# qq_new QUEUE: declares QUEUE through node 1 and waits for its leader:
# QQ_LEADER, and QQ_ELECT_S the seconds from the declare to that.
qq_new() {
    local t0
    t0=$(date +%s.%N)
    if ! qq declare "$1" >/dev/null; then
        note "$CL_B: declaring quorum queue $1 failed:"
        tail -3 "$TMP/qq.log" >&2
        return 1
    fi
    if ! QQ_LEADER=$(qq_leader "$1"); then
        note "$CL_B: no leader agreed on for $1 within ${LEADER_WAIT}s; views:"
        for i in $NODES; do
            [ -z "${NPID[$i]:-}" ] ||
                node_ctl "$i" list_queues -q --no-table-headers name leader members online 2>&1 |
                sed "s/^/  node $i: /" >&2
        done
        return 1
    fi
    QQ_ELECT_S=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
}

# perf_runs (bench/lib.sh) runs warren-perf through perf_run; here, while
# QQ_FRESH names a prefix, every run gets a fresh quorum queue PREFIX-N,
# declared before and deleted after the run, and warren-perf connects to
# its leader with --predeclared --queue; nacks are reported.
eval "lib_perf_run() $(declare -f perf_run | tail -n +2)"
QQ_FRESH=
QQ_SEQ=0
perf_run() {
    local log=$1 limit=$2 q rc out
    shift 2
    [ -n "$QQ_FRESH" ] || { lib_perf_run "$log" "$limit" "$@"; return; }
    QQ_SEQ=$((QQ_SEQ + 1))
    q=$QQ_FRESH-$QQ_SEQ
    cluster_check "before $q"
    if ! qq_new "$q"; then
        LINE=
        return 1
    fi
    note "$CL_B: $q: leader node $QQ_LEADER (${NNAME[$QQ_LEADER]}), agreed on ${QQ_ELECT_S}s after the declare"
    URI=${NURI[$QQ_LEADER]}
    lib_perf_run "$log" "$limit" "$@" --predeclared --queue "$q"
    rc=$?
    nack_check "$LINE"
    if ! cluster_check "during the run on $q"; then
        note "$CL_B: this run is not counted: $LINE"
        LINE=
        return 1
    fi
    if [ "$QQ_DELETE" = 1 ]; then
        out=$(qq delete "$q") || note "$CL_B: deleting quorum queue $q failed"
        echo "$out" >>"$TMP/qq.log"
        cluster_check "after deleting $q"
    fi
    return $rc
}
nack_check() {
    local n
    n=$(field nacked "$1")
    [ "${n:-0}" = 0 ] || note "$CL_B: $n publishes nacked: $1"
}

# ---- failover ---------------------------------------------------------------

# failover_part BROKER RUN: kill -9 of a fresh quorum queue's leader node
# under a producer on a follower (failover.py); the new leader; the killed
# node started again and waited for as a member online.
failover_part() {
    local b=$1 run=$2 q=bench-kill-$2 k=$1.fail.$2 old f vm line rc new t0 back
    cluster_check "before failover run $run"
    qq_new "$q" || return
    old=$QQ_LEADER
    for f in $NODES; do [ "$f" = "$old" ] || break; done
    vm=$(node_vm_pid "$old")
    note "$b failover run $run: $q leader node $old (pid $vm), producer on node $f at $FAIL_RATE msg/s (load $(loadavg))"
    line=$(timeout $((FAIL_WARMUP + FAIL_LIMIT + 90)) "$PY" "$TMP/failover.py" "${NURI[$f]}" "$q" "$vm" \
        "$FAIL_RATE" "$FAIL_WARMUP" "$FAIL_LIMIT" 2>>"$TMP/failover.log")
    rc=$?
    # The node is gone (or going): reap its server / start script.
    if ! wait_gone "${NPID[$old]}" 30; then
        note "$b node $old still runs after the kill; stopping it"
        node_stop "$old" 30
    fi
    wait "${NPID[$old]}" 2>/dev/null
    NPID[old]=
    if ! cluster_check "after the leader's kill in failover run $run"; then
        note "$b failover run $run is not counted: $line"
        return
    fi
    if new=$(qq_leader "$q" "$old"); then
        R[$k.leader]="n$old->n$new"
    else
        new='?'
        R[$k.leader]="n$old->?"
    fi
    printf '[fail] %-8s run %d: %s leader node %s -> %s (exit %s)\n' "$b" "$run" "$line" "$old" "$new" "$rc"
    if [ $rc = 0 ]; then
        R[$k.s]=$(field failover_s "$line")
        R[$k.first_ack_s]=$(field first_ack_s "$line")
        R[$k.gap_s]=$(field max_confirm_gap_s "$line")
        R[$k.nacked]=$(field nacked_after_kill "$line")
    else
        note "$b failover run $run: no new confirm (exit $rc); $(tail -2 "$TMP/failover.log" | tr '\n' ' ')"
    fi
    for m in s first_ack_s gap_s nacked; do csv fail "$b" "$run" "$m" "${R[$k.$m]:-}"; done
    t0=$SECONDS
    node_start "$old"
    node_wait "$old"
    if back=$(qq_leader "$q"); then
        note "$b failover run $run: node $old started again, back online in $q after $((SECONDS - t0)) s (leader node $back)"
    else
        note "$b failover run $run: node $old started again but not back online in $q within ${LEADER_WAIT}s"
    fi
    if [ "$QQ_DELETE" = 1 ]; then
        qq delete "$q" >>"$TMP/qq.log" || note "$b: deleting quorum queue $q failed"
        cluster_check "after deleting $q"
    fi
}

# ---- memory -----------------------------------------------------------------

# rss_stats KEY: "MAX MEAN" of the nodes' VmRSS in kB, each node's in
# R[KEY.nI]; R[KEY.max] and R[KEY.mean].
rss_stats() {
    local i v all=
    for i in $NODES; do
        v=$(node_rss_kb "$i")
        R[$1.n$i]=$v
        all+="${v:-} "
    done
    # shellcheck disable=SC2086 # a list of numbers
    read -r "R[$1.max]" "R[$1.mean]" <<<"$(printf '%s\n' $all |
        awk 'NF { n++; t += $1; if ($1 > m) m = $1 } END { if (n) printf "%d %.0f", m, t / n }')"
}

# rss_part BROKER: on a fresh cluster, every node's RSS with an empty
# quorum queue, then after RSS_N messages of RSS_SIZE bytes published with
# confirms into it through its leader (no consumer).
rss_part() {
    local b=$1 k=$1.mem q=bench-rss line rc confirmed nacked count i again=
    cluster_start "$b" rss
    qq_new "$q" || {
        cluster_stop
        return
    }
    sleep 2
    rss_stats "$k.idle"
    note "$b memory: $q leader node $QQ_LEADER; empty queue: RSS per node" \
        "$(for i in $NODES; do printf '%s ' "$(mb "${R[$k.idle.n$i]}")"; done)MB;" \
        "publishing $RSS_N x $RSS_SIZE B (load $(loadavg))"
    URI=${NURI[$QQ_LEADER]}
    perf_run "$TMP/rss-$b.log" $((RSS_LIMIT + 30)) --producers 1 --consumers 0 --size "$RSS_SIZE" \
        --persistent --confirm 1000 --predeclared --queue "$q" --pmessages "$RSS_N" --duration "$RSS_LIMIT"
    rc=$?
    line=$LINE
    nack_check "$line"
    confirmed=$(field confirmed "$line")
    sleep 2
    if ! cluster_check "during the memory run" keep; then
        R[$k.partial]="a node exited during the publish: $line"
        cluster_stop
        return
    fi
    count=$(qq count "$q")
    nacked=$(field nacked "$line")
    # A nacked publish may be in the queue or not (at least once): as a
    # client does after nacks, the missing ones are published once more.
    if [ $rc -eq 0 ] && [ "${nacked:-0}" != 0 ] && [ $((${confirmed:-0} + nacked)) = "$RSS_N" ] &&
        [[ "${count:-}" =~ ^[0-9]+$ ]] && [ "$count" -lt "$RSS_N" ]; then
        again=$((RSS_N - count))
        echo "[mem] $b publish: $line; the queue holds $count: publishing the $again missing again"
        perf_run "$TMP/rss-$b-again.log" $((RSS_LIMIT + 30)) --producers 1 --consumers 0 \
            --size "$RSS_SIZE" --persistent --confirm 1000 --predeclared --queue "$q" --pmessages "$again" \
            --duration "$RSS_LIMIT"
        nack_check "$LINE"
        echo "[mem] $b again: $LINE"
        [ "$(field confirmed "$LINE")" = "$again" ] && confirmed=$((confirmed + again))
        sleep 2
        count=$(qq count "$q")
    fi
    rss_stats "$k.full"
    printf '[mem] %-8s %s; then RSS per node %s MB, queue holds %s\n' "$b" "$line" \
        "$(for i in $NODES; do printf '%s ' "$(mb "${R[$k.full.n$i]}")"; done)" "${count:-?}"
    if [ $rc -ne 0 ] || [ "${count:-}" != "$RSS_N" ] || [ "${confirmed:-0}" -lt $((RSS_N - ${nacked:-0})) ]; then
        note "$b memory: incomplete (exit $rc): ${confirmed:-0} of $RSS_N confirmed within ${RSS_LIMIT}s," \
            "${nacked:-0} nacked, the queue holds ${count:-?}"
        tail -3 "$TMP/rss-$b.log" >&2
        R[$k.partial]="${confirmed:-0} of $RSS_N confirmed in ${RSS_LIMIT}s, ${nacked:-0} nacked, ${count:-?} queued,"
        R[$k.partial]+=" RSS max $(mb "${R[$k.full.max]}") mean $(mb "${R[$k.full.mean]}") MB"
        unset "R[$k.full.max]" "R[$k.full.mean]"
    else
        R[$k.publish]=$(field confirm_rate "$line")
        R[$k.per_msg]=$(per_msg "${R[$k.full.mean]}" "${R[$k.idle.mean]}" "$RSS_N")
        [ "${nacked:-0}" = 0 ] || R[$k.nacked]="$nacked of the $RSS_N publishes were nacked${again:+, $again published again}"
    fi
    for m in idle.max:idle_max_kb idle.mean:idle_mean_kb full.max:rss_max_kb full.mean:rss_mean_kb \
        publish:publish_rate per_msg:rss_per_msg_b; do
        csv mem "$b" 1 "${m#*:}" "${R[$k.${m%%:*}]:-}"
    done
    cluster_stop
}

# ---- run --------------------------------------------------------------------

csv_init
print_header "quorum queues, 3-node clusters; brokers: $BROKERS; $RUNS runs of ${DURATION}s per metric;" \
    "sizes $SIZES; latency at $LAT_RATE msg/s; failover: $FAIL_RUNS runs at $FAIL_RATE msg/s;" \
    "memory: $RSS_N x $RSS_SIZE B"
echo "$BENCH_NAME: warren-perf $QQ_ARGS --size S --predeclared --queue Q (a fresh quorum queue per run," \
    "the client on its leader node)"

for b in $BROKERS; do
    cluster_start "$b" tput
    note "$b: disk: $(disk_probe)"
    QQ_FRESH=bench-qq
    for s in $SIZES; do
        # shellcheck disable=SC2086 # a list of options
        perf_runs "qq-$s" "$b" $((DURATION + 90)) $QQ_ARGS --size "$s"
    done
    # shellcheck disable=SC2086
    perf_runs "qq-lat" "$b" $((DURATION + 90)) $QQ_ARGS --size 16 --latency --rate "$LAT_RATE"
    QQ_FRESH=
    for run in $(seq 1 "$FAIL_RUNS"); do
        failover_part "$b" "$run"
    done
    for m in s nacked; do
        mvals=()
        for run in $(seq 1 "$FAIL_RUNS"); do
            [ -z "${R[$b.fail.$run.$m]:-}" ] || mvals+=("${R[$b.fail.$run.$m]}")
        done
        [ ${#mvals[@]} -eq 0 ] && continue
        R[$b.fail.$m]=$(printf '%s\n' "${mvals[@]}" | median)
        csv fail "$b" median "$m" "${R[$b.fail.$m]}"
    done
    R[$b.fail.leader]=$(for run in $(seq 1 "$FAIL_RUNS"); do printf '%s ' "${R[$b.fail.$run.leader]:-}"; done)
    R[$b.fail.leader]=${R[$b.fail.leader]% }
    cluster_stop
    rss_part "$b"
done

# ---- summary ----------------------------------------------------------------

as_is() { printf '%s' "${1:-}"; }
rrow() {
    local f=${3:-as_is}
    row "$1" "$("$f" "${R[warren.$2]:-}")" "$("$f" "${R[rabbitmq.$2]:-}")"
}
size_label() { if [ "$1" -ge 1024 ] && [ $(($1 % 1024)) = 0 ]; then echo "$(($1 / 1024)) KB"; else echo "$1 B"; fi; }
echo
echo "SUMMARY quorum queues, 3-node cluster, client on the leader (medians of $RUNS runs of ${DURATION}s;" \
    "failover: $FAIL_RUNS runs; load average now $(loadavg))"
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
rrow "leader kill -9 -> first new confirm s" fail.s
rrow "leader kill -9: publishes nacked" fail.nacked
rrow "leader change (killed -> new)" fail.leader
nl=$(awk -v n="$RSS_N" 'BEGIN { printf (n % 1000 ? "%d" : "%dk"), (n % 1000 ? n : n / 1000) }')
rl=$(size_label "$RSS_SIZE")
rrow "RSS, empty quorum queue, max node MB" mem.idle.max mb
rrow "RSS, empty quorum queue, mean node MB" mem.idle.mean mb
rrow "RSS, $nl x $rl queued, max node MB" mem.full.max mb
rrow "RSS, $nl x $rl queued, mean node MB" mem.full.mean mb
rrow "RSS per queued message beyond empty B" mem.per_msg
rrow "publish $nl x $rl, no consumer: msg/s" mem.publish fmt0
for b in $BROKERS; do
    [ -z "${R[$b.mem.partial]:-}" ] || echo "  $b memory incomplete: ${R[$b.mem.partial]}"
    [ -z "${R[$b.mem.nacked]:-}" ] || echo "  $b memory: ${R[$b.mem.nacked]}"
    [ -z "${CRASHES[$b]:-}" ] || echo "  $b nodes that exited abnormally (a run during which one did is not counted): ${CRASHES[$b]%; }"
done
echo "(ratio = warren / RabbitMQ: above 1 is better for warren for rates, below 1 for latency, failover and memory)"
