#!/usr/bin/env bash
# bench/ab.sh - two builds of warren against each other on the wall clock.
#
# "Within 3 % of today's" is a claim about two builds, and on a shared
# 2-core machine one run of each says nothing: throughput wanders by 10 %
# from run to run.  This script alternates the two binaries (A, B, A, B,
# ...), a fresh broker and data directory per run, and reports for each
# the median throughput and the median CPU time the broker spent per
# message (user + system, from /proc), which wanders less than throughput
# because it does not count the time the broker waited for the core that
# the load generator held.  Both builds use the same warren-perf (A's).
#
#   bench/ab.sh OLD/warren NEW/warren
#   RUNS=20 PERF_ARGS="--auto-ack -z 8" bench/ab.sh OLD/warren NEW/warren
#   PERF_ARGS="$(bench/ab.sh --scenario 2)" bench/ab.sh OLD/warren NEW/warren
#
# Environment (all optional):
#   RUNS       runs of each build (default 12)
#   PERF_ARGS  warren-perf options (default scenario 1: "--auto-ack -z 8")
#   PERF_BIN   load generator (default: next to the first binary)
# Prints one line per run and then, per build, the medians, and B/A.
set -u

PY=/usr/bin/python3
if [ "${1:-}" = "--scenario" ]; then
    case "${2:-}" in
    1) echo "--auto-ack -z 8" ;;
    2) echo "--size 16 --durable --persistent --confirm 1000 --multi-ack 100 --prefetch 1000 -z 8" ;;
    *) echo "ab: scenarios 1 and 2 only" >&2; exit 2 ;;
    esac
    exit 0
fi
[ $# -eq 2 ] || { echo "usage: bench/ab.sh A/warren B/warren" >&2; exit 2; }
A=$1
B=$2
RUNS=${RUNS:-12}
PERF_ARGS=${PERF_ARGS:---auto-ack -z 8}
PERF_BIN=${PERF_BIN:-$(dirname "$A")/warren-perf}
for f in "$A" "$B" "$PERF_BIN"; do
    [ -x "$f" ] || { echo "ab: no executable $f" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/warren-ab.XXXXXX) || exit 1
PID=
cleanup() {
    if [ -n "$PID" ]; then
        kill -TERM "$PID" 2>/dev/null
        wait "$PID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

CLK=$(getconf CLK_TCK)
# utime + stime of a process, in clock ticks.
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# run BIN LABEL: one broker, one warren-perf run; appends to $TMP/LABEL.
run() {
    local bin=$1 label=$2 port data out c0 c1 rate recv
    port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    data=$TMP/data.$label
    rm -rf "$data"
    "$bin" --listen "127.0.0.1:$port" --data-dir "$data" \
        --set log.console.level=warning >"$TMP/log.$label" 2>&1 &
    PID=$!
    for _ in $(seq 1 200); do
        "$PY" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' \
            "$port" 2>/dev/null && break
        sleep 0.05
    done
    c0=$(cpu_ticks "$PID")
    # shellcheck disable=SC2086 # PERF_ARGS is a list of options
    out=$("$PERF_BIN" -h "amqp://guest:guest@127.0.0.1:$port/" $PERF_ARGS 2>/dev/null)
    c1=$(cpu_ticks "$PID")
    kill -TERM "$PID" 2>/dev/null
    wait "$PID" 2>/dev/null
    PID=
    rate=$(sed -n 's/.*recv_rate=\([0-9.]*\).*/\1/p' <<<"$out")
    recv=$(sed -n 's/.*recv=\([0-9]*\).*/\1/p' <<<"$out")
    if [ -z "$rate" ] || [ -z "$recv" ] || [ "$recv" = 0 ]; then
        echo "ab: run of $label failed: $out" >&2
        return
    fi
    local ns
    ns=$(awk -v c=$((c1 - c0)) -v k="$CLK" -v n="$recv" 'BEGIN { printf "%.1f", c / k * 1e9 / n }')
    echo "$rate $ns" >>"$TMP/$label"
    printf '%s run: %s msg/s, broker %s ns CPU/msg\n' "$label" "$rate" "$ns"
}

for i in $(seq 1 "$RUNS"); do
    # Alternate which goes first, so neither always follows the other.
    if [ $((i % 2)) -eq 1 ]; then
        run "$A" A
        run "$B" B
    else
        run "$B" B
        run "$A" A
    fi
done

"$PY" - "$TMP/A" "$TMP/B" <<'EOF'
import statistics, sys
med = []
for label, path in zip("AB", sys.argv[1:]):
    try:
        rows = [tuple(map(float, l.split())) for l in open(path) if l.strip()]
    except FileNotFoundError:
        rows = []
    if not rows:
        sys.exit(f"ab: no successful run of {label}")
    rate = statistics.median(r[0] for r in rows)
    ns = statistics.median(r[1] for r in rows)
    med.append((rate, ns))
    print(f"{label}: {len(rows)} runs, median {rate:,.0f} msg/s "
          f"(min {min(r[0] for r in rows):,.0f}, max {max(r[0] for r in rows):,.0f}), "
          f"median {ns:.1f} ns broker CPU/msg")
(ra, na), (rb, nb) = med
print(f"B/A: throughput {rb / ra:.3f} ({(rb / ra - 1) * 100:+.1f} %), "
      f"CPU per message {nb / na:.3f} ({(nb / na - 1) * 100:+.1f} %)")
EOF
