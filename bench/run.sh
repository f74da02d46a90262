#!/usr/bin/env bash
# bench/run.sh - warren against RabbitMQ, side by side, on this machine:
# every scenario of PRODUCT.md's "Speed and size" (issue 5) from one command,
#
#   sudo SCENARIOS=all bench/run.sh
#
# For each broker in turn it starts a fresh instance (bench/lib.sh: warren
# on a free port with a temporary data directory; Debian's rabbitmq-server
# as the rabbitmq user with its own node name, ports, data, log and config
# files, no plugins), runs the chosen scenarios against it, RUNS runs each,
# and stops it by its pid; scenario 7 gets fresh instances of its own.
# Every run's figures are printed as they come, each broker's medians after
# its runs, and at the end a summary table: scenario, warren, RabbitMQ,
# ratio warren / RabbitMQ.  Every figure (each run and the medians) is also
# written to RESULTS as CSV (scenario,broker,run,metric,value), for
# bench/plot.py.  Both brokers are stopped by their pid at the end,
# whatever happens; nothing outside the temporary directory is touched (an
# epmd that Erlang starts for the RabbitMQ node is left running, as it may
# serve other nodes).
#
# Scenarios (SCENARIOS; "all" = "6 1 2 3 4 5 8 9 7": 6 first, on the fresh
# broker):
#   1   16-byte transient, 1 producer -> 1 queue -> 1 auto-ack consumer,
#       unlimited (warren-perf PERF_ARGS)
#   2   16-byte persistent, durable queue, confirms (<= 1000 in flight), 1
#       consumer with prefetch 1000 and a multiple ack every 100 (as
#       bench/persist.sh's throughput part); end-to-end and confirm rates
#   3   1 KB and 64 KB transient messages, 1 -> 1, auto-ack (3a, 3b)
#   4   fanout 1 -> 10 queues, 10 auto-ack consumers (warren-perf --fanout):
#       publish rate and delivery rate over all 10 consumers
#   5   latency at a fixed 10,000 and 100,000 msg/s: p50/p99/p99.9 (5a, 5b)
#   6   broker RSS idle, with 1,000 idle connections, then with 10,000
#       non-durable queues (python3 + pika); one run
#   7   a backlog of BACKLOG_N 16-byte persistent messages published with
#       confirms into a durable queue with no consumer, on a fresh instance:
#       RSS beyond the idle RSS per message, then the drain rate with one
#       consumer (bench/persist.sh's backlog part, without its restart
#       unless BACKLOG_RESTART=1).  With RabbitMQ among BROKERS and
#       BACKLOG_N above RABBIT_MAX_N, both brokers first run N=RABBIT_MAX_N
#       (a size RabbitMQ finishes); RabbitMQ then gets BACKLOG_N only if its
#       rate at RABBIT_MAX_N predicts less than twice RABBIT_LARGE_LIMIT
#       seconds, and its publish is cut off at RABBIT_LARGE_LIMIT.  One run
#   8   topic exchange with 10,000 bindings: routing rate (python3 raw-socket
#       publisher; the queue is counted with a passive queue.declare)
#   9   scenario 1 over AMQPS: both brokers' TLS listeners with the same
#       self-signed certificate, warren-perf over TLS 1.3 (OpenSSL)
#
# Environment (all optional):
#   WARREN_BIN   warren binary (default build/warren)
#   PERF_BIN     warren-perf binary (default: next to WARREN_BIN, else build/)
#   SCENARIOS    scenarios to run (default "1"; "all" = "6 1 2 3 4 5 8 9 7")
#   RUNS         runs per scenario and broker (default 3)
#   DURATION     seconds per run (default 10)
#   BROKERS      which brokers, in order (default "warren rabbitmq")
#   PERF_ARGS    warren-perf options of scenario 1 (default: as above)
#   RESULTS      CSV of the results (default /tmp/warren-bench-results.csv)
#   MEM_CONNS, MEM_QUEUES  scenario 6 sizes (default 1000, 10000)
#   BACKLOG_N    scenario 7 backlog (default 10000000)
#   BACKLOG_RESTART=1  scenario 7 also restarts the broker before the drain
#                and times it until the N messages are back
#   RABBIT_MAX_N, RABBIT_LARGE_LIMIT  scenario 7 bounds for RabbitMQ (1000000, 600)
#   TOPIC_BINDINGS, TOPIC_MAX  scenario 8: bindings (10000), cap on messages
#                per run (3000000)
#   PERF_RECORD=1  perf record warren (-g) during its last run of each
#                warren-perf scenario and print the top symbols
#   RABBITMQ_SERVER  rabbitmq-server script (default /usr/lib/rabbitmq/bin/rabbitmq-server)
#   KEEP_TMP=1   keep the temporary directory (logs) for inspection
set -u

BENCH_NAME=bench
# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"

RUNS=${RUNS:-3}
DURATION=${DURATION:-10}
BROKERS=${BROKERS:-warren rabbitmq}
PERF_ARGS=${PERF_ARGS:---producers 1 --consumers 1 --size 16 --auto-ack --rate 0}
SCENARIOS=${SCENARIOS:-1}
[ "$SCENARIOS" = all ] && SCENARIOS="6 1 2 3 4 5 8 9 7"
RESULTS=${RESULTS:-/tmp/warren-bench-results.csv}
MEM_CONNS=${MEM_CONNS:-1000}
MEM_QUEUES=${MEM_QUEUES:-10000}
BACKLOG_N=${BACKLOG_N:-10000000}
BACKLOG_RESTART=${BACKLOG_RESTART:-0}
TOPIC_BINDINGS=${TOPIC_BINDINGS:-10000}
TOPIC_MAX=${TOPIC_MAX:-3000000}

# The scenarios run by warren-perf: label and options.
declare -A SC_ARGS=(
    [1]="$PERF_ARGS"
    [2]="$TPUT_ARGS"
    [3a]="--producers 1 --consumers 1 --size 1024 --auto-ack --rate 0"
    [3b]="--producers 1 --consumers 1 --size 65536 --auto-ack --rate 0"
    [4]="--producers 1 --consumers 10 --size 16 --fanout --auto-ack --rate 0"
    [5a]="--producers 1 --consumers 1 --size 16 --auto-ack --latency --rate 10000"
    [5b]="--producers 1 --consumers 1 --size 16 --auto-ack --latency --rate 100000"
    [9]="$PERF_ARGS"
)
LABELS=()
BACKLOG=0
for sc in $SCENARIOS; do
    case $sc in
    1 | 2 | 4 | 6 | 8 | 9) LABELS+=("$sc") ;;
    3) LABELS+=(3a 3b) ;;
    5) LABELS+=(5a 5b) ;;
    7) BACKLOG=1 ;;
    *) die "unknown scenario $sc (known: 1 to 9, or all)" ;;
    esac
done
for b in $BROKERS; do
    case $b in warren | rabbitmq) ;; *) die "unknown broker $b (known: warren rabbitmq)" ;; esac
done
BACKLOG_SIZES=
[ $BACKLOG = 0 ] || BACKLOG_SIZES=$(backlog_sizes "$BACKLOG_N")

bench_init

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

csv_init
chosen="${LABELS[*]}"
[ -z "$BACKLOG_SIZES" ] || chosen+="${chosen:+ }7 (N = $BACKLOG_SIZES)"
print_header "scenarios $chosen; --duration $DURATION, $RUNS runs per scenario and broker;" \
    "brokers: $BROKERS"
[[ " ${LABELS[*]} " != *" 1 "* ]] || echo "$BENCH_NAME: scenario 1 is warren-perf $PERF_ARGS"
csv all all - loadavg_start "$(cut -d' ' -f1 /proc/loadavg)"

# mem_scenario BROKER: scenario 6 on the current (fresh) instance.
mem_scenario() {
    local b=$1 line kv
    if ! line=$(timeout 600 "$PY" "$TMP/mem.py" "$URI" "$(rss_pid)" "$MEM_CONNS" "$MEM_QUEUES" \
        2>"$TMP/mem-$b.log") || [ -z "$line" ]; then
        note "[6] $b failed:"
        tail -5 "$TMP/mem-$b.log" >&2
        return
    fi
    printf '[6] %-8s %s\n' "$b" "$line"
    for kv in $line; do
        R[$b.6.${kv%%=*}]=${kv#*=}
        csv 6 "$b" 1 "${kv%%=*}" "${kv#*=}"
    done
}

# topic_scenario BROKER: scenario 8, RUNS runs.
topic_scenario() {
    local b=$1 line rates=()
    while read -r line; do
        printf '[8] %-8s run %d: %s\n' "$b" $((${#rates[@]} + 1)) "$line"
        rates+=("$(field route_rate "$line")")
        csv 8 "$b" ${#rates[@]} rate "${rates[-1]}"
    done < <(timeout $((RUNS * (DURATION + 60) + 300)) "$PY" "$TMP/topic.py" "$URI" \
        "$TOPIC_BINDINGS" "$DURATION" "$TOPIC_MAX" "$RUNS" 2>"$TMP/topic-$b.log")
    if [ ${#rates[@]} -eq 0 ]; then
        note "[8] $b failed:"
        tail -5 "$TMP/topic-$b.log" >&2
        return
    fi
    R[$b.8.rate]=$(printf '%s\n' "${rates[@]}" | median)
    csv 8 "$b" median rate "${R[$b.8.rate]}"
    printf '[8] %-8s median: %.0f msg/s routed (runs: %s; %s)\n' "$b" "${R[$b.8.rate]}" \
        "${rates[*]}" "$(head -1 "$TMP/topic-$b.log")"
}

for b in $BROKERS; do
    if [ ${#LABELS[@]} -gt 0 ]; then
        new_instance "$b" main
        start_broker
        for sc in "${LABELS[@]}"; do
            case $sc in
            6) mem_scenario "$b" ;;
            8) topic_scenario "$b" ;;
            9)
                # Scenario 1 over AMQPS (TLS), on the broker's TLS listener.
                plain_uri=$URI
                URI="amqps://guest:guest@127.0.0.1:$TLS_PORT/"
                # shellcheck disable=SC2086 # the scenario's options are a list
                perf_runs 9 "$b" $((DURATION + 90)) ${SC_ARGS[9]}
                URI=$plain_uri
                ;;
            *)
                [ "$sc" != 2 ] || note "[2] $b: disk: $(disk_probe)"
                # shellcheck disable=SC2086 # the scenario's options are a list
                perf_runs "$sc" "$b" $((DURATION + 90)) ${SC_ARGS[$sc]}
                ;;
            esac
        done
        stop_broker 120
        log_check
    fi
    for n in $BACKLOG_SIZES; do
        part_backlog "$b" "$n" "$BACKLOG_RESTART"
        backlog_csv "$b" "$n"
    done
done
csv all all - loadavg_end "$(cut -d' ' -f1 /proc/loadavg)"

# ---- summary ----------------------------------------------------------------

W=warren
Q=rabbitmq
# rrow LABEL KEY [FORMAT]: a summary row of R[BROKER.KEY], through fmt0 or
# mb, or as it is.
as_is() { printf '%s' "${1:-}"; }
rrow() {
    local f=${3:-as_is}
    row "$1" "$("$f" "${R[$W.$2]:-}")" "$("$f" "${R[$Q.$2]:-}")"
}
echo
echo "SUMMARY (medians of $RUNS runs of ${DURATION}s, scenarios 6 and 7 one run; load average now $(loadavg))"
row_header scenario
# In the order of the scenarios' numbers, whatever order they ran in.
for sc in 1 2 3a 3b 4 5a 5b 6 7 8 9; do
    [[ " ${LABELS[*]} " == *" $sc "* ]] || [ "$sc" = 7 ] || continue
    case $sc in
    1) rrow "1 16 B transient 1->1 msg/s" 1.rate fmt0 ;;
    2)
        rrow "2 persistent+confirm end to end msg/s" 2.rate fmt0
        rrow "2 persistent+confirm confirmed msg/s" 2.confirm_rate fmt0
        ;;
    3a) rrow "3 1 KB msg/s" 3a.rate fmt0 ;;
    3b) rrow "3 64 KB msg/s" 3b.rate fmt0 ;;
    4)
        rrow "4 fanout 1->10 published msg/s" 4.send_rate fmt0
        rrow "4 fanout 1->10 delivered msg/s (10 queues)" 4.rate fmt0
        ;;
    5a | 5b)
        r=10k
        [ "$sc" = 5a ] || r=100k
        rrow "5 at $r msg/s: delivered msg/s" "$sc.rate" fmt0
        rrow "5 at $r msg/s: p50 us" "$sc.p50_us"
        rrow "5 at $r msg/s: p99 us" "$sc.p99_us"
        rrow "5 at $r msg/s: p99.9 us" "$sc.p999_us"
        ;;
    6)
        rrow "6 idle RSS kB" 6.idle_kb
        rrow "6 RSS per idle connection B" 6.per_conn_b
        rrow "6 RSS per queue B" 6.per_queue_b
        ;;
    7)
        for n in $BACKLOG_SIZES; do
            rrow "7 N=$n publish (confirmed) msg/s" "$n.publish" fmt0
            rrow "7 N=$n RSS after publish MB" "$n.rss_kb" mb
            rrow "7 N=$n RSS per message beyond idle B" "$n.rss_per_msg_b"
            [ "$BACKLOG_RESTART" != 1 ] || rrow "7 N=$n restart until N visible s" "$n.restart_s"
            rrow "7 N=$n drain msg/s" "$n.drain" fmt0
            for b in $BROKERS; do
                [ -z "${R[$b.$n.skipped]:-}" ] || echo "  $b N=$n not (fully) run: ${R[$b.$n.skipped]}"
            done
        done
        ;;
    8) rrow "8 topic, $TOPIC_BINDINGS bindings: routed msg/s" 8.rate fmt0 ;;
    9) rrow "9 AMQPS (TLS) 16 B transient 1->1 msg/s" 9.rate fmt0 ;;
    esac
done
echo "(ratio = warren / RabbitMQ: above 1 is better for warren for rates, below 1 for latency and memory)"
echo "$BENCH_NAME: results in $RESULTS; draw them with /usr/bin/python3 bench/plot.py" >&2
