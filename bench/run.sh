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
# SCENARIOS picks others (PRODUCT.md's numbering; each broker is started
# once and runs every chosen scenario in turn):
#   1   16-byte transient, 1 -> 1, auto-ack, unlimited (PERF_ARGS)
#   3   1 KB and 64 KB transient messages, 1 -> 1, auto-ack (3a, 3b)
#   4   fanout 1 -> 10 queues: SKIPPED, warren-perf publishes only to the
#       default exchange (no exchange/binding options)
#   5   latency at a fixed 10,000 and 100,000 msg/s: p50/p99/p99.9 (5a, 5b)
#   6   broker RSS idle, with 1,000 idle connections, then with 10,000
#       non-durable queues (python3 + pika); run first, on the fresh broker
#   8   topic exchange with 10,000 bindings: routing rate (python3 raw-socket
#       publisher; the queue is counted with a passive queue.declare)
# "all" = "6 1 3 4 5 8".  Every figure (each run and the medians) is also
# written to RESULTS as CSV, for bench/plot.py.
#
# Environment (all optional):
#   WARREN_BIN   warren binary (default build/warren)
#   PERF_BIN     warren-perf binary (default: next to WARREN_BIN, else build/)
#   RUNS         runs per broker (default 3)
#   DURATION     seconds per run (default 10)
#   BROKERS      which brokers, in order (default "warren rabbitmq")
#   PERF_ARGS    warren-perf options for the scenario (default: scenario 1)
#   SCENARIOS    scenarios to run (default "1"; "all" = "6 1 3 4 5 8")
#   RESULTS      CSV of the results (default /tmp/warren-bench-results.csv)
#   MEM_CONNS, MEM_QUEUES  scenario 6 sizes (default 1000, 10000)
#   TOPIC_BINDINGS, TOPIC_MAX  scenario 8: bindings (10000), cap on messages
#                per run (3000000)
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
SCENARIOS=${SCENARIOS:-1}
[ "$SCENARIOS" = all ] && SCENARIOS="6 1 3 4 5 8"
RESULTS=${RESULTS:-/tmp/warren-bench-results.csv}
MEM_CONNS=${MEM_CONNS:-1000}
MEM_QUEUES=${MEM_QUEUES:-10000}
TOPIC_BINDINGS=${TOPIC_BINDINGS:-10000}
TOPIC_MAX=${TOPIC_MAX:-3000000}
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

# The process whose VmRSS is the broker's: warren itself, or RabbitMQ's
# beam.smp (a child of the start script).
rss_pid() {
    local c
    for c in $(pgrep -P "$BROKER_PID"); do
        if [ "$(cat "/proc/$c/comm" 2>/dev/null)" = beam.smp ]; then
            echo "$c"
            return
        fi
    done
    echo "$BROKER_PID"
}

# Scenario 6: RSS idle, with MEM_CONNS idle connections, with MEM_QUEUES
# queues more.  Prints one key=value line.
cat >"$TMP/mem.py" <<'EOF'
import sys, time, urllib.parse
import pika

uri, pid, nconn, nq = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
u = urllib.parse.urlparse(uri)
params = pika.ConnectionParameters(host=u.hostname, port=u.port, heartbeat=0,
                                   credentials=pika.PlainCredentials(u.username, u.password),
                                   blocked_connection_timeout=None, socket_timeout=30)

def rss():
    with open("/proc/%s/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

time.sleep(2)
idle = rss()
t0 = time.time()
conns = [pika.BlockingConnection(params) for _ in range(nconn)]
tc = time.time() - t0
time.sleep(2)
with_conns = rss()
qc = pika.BlockingConnection(params)
chans = [qc.channel() for _ in range(4)]
t0 = time.time()
for i in range(nq):
    chans[i % 4].queue_declare("bench-mem-%d" % i, durable=False, exclusive=True)
tq = time.time() - t0
time.sleep(2)
with_queues = rss()
print("idle_kb=%d conns_kb=%d queues_kb=%d per_conn_b=%.0f per_queue_b=%.0f connect_s=%.1f declare_s=%.1f"
      % (idle, with_conns, with_queues, (with_conns - idle) * 1024.0 / nconn,
         (with_queues - with_conns) * 1024.0 / nq, tc, tq))
qc.close()
for c in conns:
    c.close()
EOF

# Scenario 8: a topic exchange with N bindings (patterns t<i%100>.k<i>.*, all
# to one queue); a raw-socket publisher sends 16-byte messages whose keys
# each match exactly one binding (1,000 distinct keys) for DURATION seconds
# or up to TOPIC_MAX messages, then a passive queue.declare on the same
# channel (answered after every publish before it was routed) gives the
# routed count; rate = routed / (time until that answer).  Prints one line
# per run.
cat >"$TMP/topic.py" <<'EOF'
import socket, struct, sys, time, urllib.parse
import pika

uri, nbind, dur, cap, runs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
u = urllib.parse.urlparse(uri)
EX, Q = "bench-topic", "bench-topic-q"
params = pika.ConnectionParameters(host=u.hostname, port=u.port, heartbeat=0,
                                   credentials=pika.PlainCredentials(u.username, u.password))
setup = pika.BlockingConnection(params)
ch = setup.channel()
ch.exchange_declare(EX, exchange_type="topic", durable=False, auto_delete=False)
ch.queue_declare(Q, durable=False, auto_delete=False)
t0 = time.time()
for i in range(nbind):
    ch.queue_bind(Q, EX, routing_key="t%d.k%d.*" % (i % 100, i))
bind_s = time.time() - t0

def sstr(s):
    b = s.encode()
    return bytes([len(b)]) + b

def frame(t, chn, payload):
    return struct.pack(">BHI", t, chn, len(payload)) + payload + b"\xce"

def method(chn, cls, mth, args):
    return frame(1, chn, struct.pack(">HH", cls, mth) + args)

class Raw:
    def __init__(self):
        self.s = socket.create_connection((u.hostname, u.port), 10)
        self.s.settimeout(120)
        self.buf = b""
        self.s.sendall(b"AMQP\x00\x00\x09\x01")
        self.expect(10, 10)
        resp = b"\x00" + u.username.encode() + b"\x00" + u.password.encode()
        self.s.sendall(method(0, 10, 11, struct.pack(">I", 0) + sstr("PLAIN")
                              + struct.pack(">I", len(resp)) + resp + sstr("en_US")))
        a = self.expect(10, 30)
        chmax, fmax, _ = struct.unpack(">HIH", a[:8])
        self.s.sendall(method(0, 10, 31, struct.pack(">HIH", chmax, fmax, 0)))
        self.s.sendall(method(0, 10, 40, sstr("/") + sstr("") + b"\x00"))
        self.expect(10, 41)
        self.s.sendall(method(1, 20, 10, sstr("")))
        self.expect(20, 11)

    def read_frame(self):
        while True:
            if len(self.buf) >= 7:
                t, chn, n = struct.unpack(">BHI", self.buf[:7])
                if len(self.buf) >= n + 8:
                    p = self.buf[7:7 + n]
                    self.buf = self.buf[n + 8:]
                    return t, chn, p
            d = self.s.recv(65536)
            if not d:
                raise SystemExit("topic: connection closed by the broker")
            self.buf += d

    def expect(self, cls, mth):
        while True:
            t, chn, p = self.read_frame()
            if t != 1:
                continue
            c, m = struct.unpack(">HH", p[:4])
            if (c, m) == (cls, mth):
                return p[4:]
            if (c, m) in ((10, 50), (20, 40)):
                raise SystemExit("topic: broker closed: %r" % p[4:80])

body = b"x" * 16
hdr = frame(2, 1, struct.pack(">HHQH", 60, 0, len(body), 0))
bodyf = frame(3, 1, body)
chunk = b"".join(method(1, 60, 40, struct.pack(">H", 0) + sstr(EX)
                        + sstr("t%d.k%d.x" % (j % 100, j)) + b"\x00") + hdr + bodyf
                 for j in range(0, nbind, max(1, nbind // 1000)))
per_chunk = len(range(0, nbind, max(1, nbind // 1000)))
print("topic: %d bindings in %.1f s" % (nbind, bind_s), file=sys.stderr)
for run in range(runs):
    ch.queue_purge(Q)
    r = Raw()
    sent = 0
    t0 = time.time()
    while time.time() - t0 < dur and sent + per_chunk <= cap:
        r.s.sendall(chunk)
        sent += per_chunk
    ts = time.time() - t0
    r.s.sendall(method(1, 50, 10, struct.pack(">H", 0) + sstr(Q) + b"\x01" + struct.pack(">I", 0)))
    a = r.expect(50, 11)
    el = time.time() - t0
    qn = a[0]
    routed = struct.unpack(">I", a[1 + qn:5 + qn])[0]
    r.s.close()
    print("sent=%d routed=%d send_s=%.2f route_s=%.2f route_rate=%.0f msg/s bindings=%d"
          % (sent, routed, ts, el, routed / el, nbind), flush=True)
ch.queue_purge(Q)
ch.queue_delete(Q)
ch.exchange_delete(EX)
setup.close()
EOF

# The scenarios run by warren-perf: label and options.
declare -A SC_ARGS=(
    [1]="$PERF_ARGS"
    [3a]="--producers 1 --consumers 1 --size 1024 --auto-ack --rate 0"
    [3b]="--producers 1 --consumers 1 --size 65536 --auto-ack --rate 0"
    [5a]="--producers 1 --consumers 1 --size 16 --auto-ack --latency --rate 10000"
    [5b]="--producers 1 --consumers 1 --size 16 --auto-ack --latency --rate 100000"
)
LABELS=()
for sc in $SCENARIOS; do
    case $sc in
    1 | 6 | 8) LABELS+=("$sc") ;;
    3) LABELS+=(3a 3b) ;;
    5) LABELS+=(5a 5b) ;;
    4) echo "bench: scenario 4 (fanout 1 -> 10 queues) skipped: warren-perf publishes only to" \
        "the default exchange and cannot bind queues to a fanout exchange" >&2 ;;
    *) die "unknown scenario $sc (known: 1 3 4 5 6 8, or all)" ;;
    esac
done

echo "scenario,broker,run,metric,value" >"$RESULTS"
csv() { echo "$1,$2,$3,$4,$5" >>"$RESULTS"; }

# Scenario 1 alone keeps the output it always had; other labels prefix
# their lines with [label].
pfx() { [ "$1" = 1 ] || printf '[%s] ' "$1"; }

echo "bench: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); scenarios ${LABELS[*]}" \
    "(1: warren-perf $PERF_ARGS); --duration $DURATION, $RUNS runs per broker"
awk '$1 > 0.5 { print "bench: warning: the machine is already busy (load " $1 "); numbers will be low" }' \
    /proc/loadavg >&2
csv all all - loadavg_start "$(cut -d' ' -f1 /proc/loadavg)"

declare -A MEDIAN P50 P99 P999 MEM
# perf_scenario LABEL BROKER: RUNS runs of warren-perf with SC_ARGS[LABEL].
perf_scenario() {
    local sc=$1 broker=$2 run line rc rate bcpu cpu0 cpu1 t0 t1 v k
    local rates=() p50s=() p99s=() p999s=()
    for run in $(seq 1 "$RUNS"); do
        cpu0=$(broker_cpu_s)
        t0=$(date +%s.%N)
        # shellcheck disable=SC2086 # the scenario's options are a list
        line=$(timeout $((DURATION + 30)) "$PERF_BIN" --uri "$URI" ${SC_ARGS[$sc]} \
            --duration "$DURATION" 2>"$TMP/perf-$sc-$broker-$run.log")
        rc=$?
        cpu1=$(broker_cpu_s)
        t1=$(date +%s.%N)
        if [ $rc -ne 0 ] || [ -z "$line" ]; then
            echo "bench: $(pfx "$sc")$broker run $run failed (exit $rc):" >&2
            tail -5 "$TMP/perf-$sc-$broker-$run.log" >&2
            continue
        fi
        rate=$(sed -n 's/.*recv_rate=\([0-9.]*\).*/\1/p' <<<"$line")
        [ -n "$rate" ] || rate=$(sed -n 's/.*send_rate=\([0-9.]*\).*/\1/p' <<<"$line")
        bcpu=$(awk -v a="$cpu0" -v b="$cpu1" -v s="$t0" -v e="$t1" \
            'BEGIN { printf "%.0f", 100 * (b - a) / (e - s) }')
        rates+=("$rate")
        csv "$sc" "$broker" "$run" rate "$rate"
        csv "$sc" "$broker" "$run" broker_cpu_pct "$bcpu"
        for k in p50 p99 p999; do
            v=$(sed -n "s/.* ${k}_us=\\([0-9.]*\\).*/\\1/p" <<<"$line")
            [ -n "$v" ] || continue
            csv "$sc" "$broker" "$run" "${k}_us" "$v"
            case $k in p50) p50s+=("$v") ;; p99) p99s+=("$v") ;; p999) p999s+=("$v") ;; esac
        done
        printf '%s%-8s run %d: %s broker_cpu_pct=%s\n' "$(pfx "$sc")" "$broker" "$run" "$line" "$bcpu"
    done
    if [ ${#rates[@]} -eq 0 ]; then
        echo "bench: $(pfx "$sc")every $broker run failed" >&2
        return
    fi
    MEDIAN[$sc,$broker]=$(printf '%s\n' "${rates[@]}" | median)
    csv "$sc" "$broker" median rate "${MEDIAN[$sc,$broker]}"
    printf '%s%-8s median: %.0f msg/s (runs: %s)\n' "$(pfx "$sc")" "$broker" "${MEDIAN[$sc,$broker]}" "${rates[*]}"
    if [ ${#p99s[@]} -gt 0 ]; then
        P50[$sc,$broker]=$(printf '%s\n' "${p50s[@]}" | median)
        P99[$sc,$broker]=$(printf '%s\n' "${p99s[@]}" | median)
        P999[$sc,$broker]=$(printf '%s\n' "${p999s[@]}" | median)
        csv "$sc" "$broker" median p50_us "${P50[$sc,$broker]}"
        csv "$sc" "$broker" median p99_us "${P99[$sc,$broker]}"
        csv "$sc" "$broker" median p999_us "${P999[$sc,$broker]}"
        if [ "$sc" = 1 ]; then
            printf '%-8s median p99 latency: %s us (runs: %s)\n' "$broker" "${P99[$sc,$broker]}" "${p99s[*]}"
        else
            printf '[%s] %-8s median latency: p50 %s us, p99 %s us, p99.9 %s us (p99 runs: %s)\n' "$sc" \
                "$broker" "${P50[$sc,$broker]}" "${P99[$sc,$broker]}" "${P999[$sc,$broker]}" "${p99s[*]}"
        fi
    fi
}

mem_scenario() {
    local broker=$1 line k v
    line=$(timeout 600 "$PY" "$TMP/mem.py" "$URI" "$(rss_pid)" "$MEM_CONNS" "$MEM_QUEUES" \
        2>"$TMP/mem-$broker.log")
    if [ $? -ne 0 ] || [ -z "$line" ]; then
        echo "bench: [6] $broker failed:" >&2
        tail -5 "$TMP/mem-$broker.log" >&2
        return
    fi
    printf '[6] %-8s %s\n' "$broker" "$line"
    for kv in $line; do
        k=${kv%%=*}
        v=${kv#*=}
        MEM[$k,$broker]=$v
        csv 6 "$broker" 1 "$k" "$v"
    done
}

topic_scenario() {
    local broker=$1 line rates=()
    while read -r line; do
        printf '[8] %-8s run %d: %s\n' "$broker" $((${#rates[@]} + 1)) "$line"
        rates+=("$(sed -n 's/.*route_rate=\([0-9.]*\).*/\1/p' <<<"$line")")
        csv 8 "$broker" ${#rates[@]} rate "${rates[-1]}"
    done < <(timeout $((RUNS * (DURATION + 60) + 300)) "$PY" "$TMP/topic.py" "$URI" \
        "$TOPIC_BINDINGS" "$DURATION" "$TOPIC_MAX" "$RUNS" 2>"$TMP/topic-$broker.log")
    if [ ${#rates[@]} -eq 0 ]; then
        echo "bench: [8] $broker failed:" >&2
        tail -5 "$TMP/topic-$broker.log" >&2
        return
    fi
    MEDIAN[8,$broker]=$(printf '%s\n' "${rates[@]}" | median)
    csv 8 "$broker" median rate "${MEDIAN[8,$broker]}"
    printf '[8] %-8s median: %.0f msg/s routed (runs: %s; %s)\n' "$broker" "${MEDIAN[8,$broker]}" \
        "${rates[*]}" "$(head -1 "$TMP/topic-$broker.log")"
}

for broker in $BROKERS; do
    case $broker in
    warren) start_warren ;;
    rabbitmq) start_rabbitmq ;;
    *) die "unknown broker $broker" ;;
    esac
    for sc in "${LABELS[@]}"; do
        case $sc in
        6) mem_scenario "$broker" ;;
        8) topic_scenario "$broker" ;;
        *) perf_scenario "$sc" "$broker" ;;
        esac
    done
    stop_broker
done
csv all all - loadavg_end "$(cut -d' ' -f1 /proc/loadavg)"

for sc in "${LABELS[@]}"; do
    if [ "$sc" = 6 ]; then
        [ -n "${MEM[per_conn_b,warren]:-}" ] && [ -n "${MEM[per_conn_b,rabbitmq]:-}" ] || continue
        awk -v wc="${MEM[per_conn_b,warren]}" -v rc="${MEM[per_conn_b,rabbitmq]}" \
            -v wq="${MEM[per_queue_b,warren]}" -v rq="${MEM[per_queue_b,rabbitmq]}" \
            -v wi="${MEM[idle_kb,warren]}" -v ri="${MEM[idle_kb,rabbitmq]}" 'BEGIN {
            printf "RESULT 6 idle_kb warren=%d rabbitmq=%d; per idle connection warren=%.0f B rabbitmq=%.0f B ratio=%.3f;", wi, ri, wc, rc, (rc > 0 ? wc / rc : 0)
            printf " per queue warren=%.0f B rabbitmq=%.0f B ratio=%.3f\n", wq, rq, (rq > 0 ? wq / rq : 0) }'
        continue
    fi
    [ -n "${MEDIAN[$sc,warren]:-}" ] && [ -n "${MEDIAN[$sc,rabbitmq]:-}" ] || continue
    awk -v w="${MEDIAN[$sc,warren]}" -v r="${MEDIAN[$sc,rabbitmq]}" -v wl="${P99[$sc,warren]:-}" \
        -v rl="${P99[$sc,rabbitmq]:-}" -v lab="$(pfx "$sc" | sed 's/^\[\(.*\)\] $/\1 /')" \
        -v w5="${P50[$sc,warren]:-}" -v r5="${P50[$sc,rabbitmq]:-}" \
        -v w9="${P999[$sc,warren]:-}" -v r9="${P999[$sc,rabbitmq]:-}" 'BEGIN {
        printf "RESULT %swarren=%.0f msg/s rabbitmq=%.0f msg/s ratio=%.2f", lab, w, r, (r > 0 ? w / r : 0)
        if (wl != "" && rl != "" && lab != "")
            printf " warren_p50_us=%s rabbitmq_p50_us=%s", w5, r5
        if (wl != "" && rl != "")
            printf " warren_p99_us=%s rabbitmq_p99_us=%s", wl, rl
        if (wl != "" && rl != "" && lab != "")
            printf " warren_p999_us=%s rabbitmq_p999_us=%s", w9, r9
        printf "\n" }'
done
echo "bench: results in $RESULTS" >&2
