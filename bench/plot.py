#!/usr/bin/python3
"""bench/plot.py - draw bench/run.sh's results (its RESULTS CSV) as a PNG.

usage: /usr/bin/python3 bench/plot.py [RESULTS.csv] [OUT.png]
defaults: /tmp/warren-bench-results.csv, docs/bench-results.png

Left: median throughput per scenario, warren and RabbitMQ side by side, on a
log scale, with the ratio warren/RabbitMQ above each pair.  Middle: the
median latency percentiles (p50/p99/p99.9) of the fixed-rate scenarios (5a,
5b).  Right: scenario 6's memory (bytes per idle connection, per queue).
Needs python3-matplotlib.
"""
import csv
import os
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
src = sys.argv[1] if len(sys.argv) > 1 else "/tmp/warren-bench-results.csv"
out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "docs", "bench-results.png")

NAMES = {
    "1": "1: 16 B",
    "3a": "3: 1 KB",
    "3b": "3: 64 KB",
    "8": "8: topic,\n10k bindings",
}
BROKERS = ("warren", "rabbitmq")
COLORS = {"warren": "#d95f02", "rabbitmq": "#1b9e77"}

med = {}
mem = {}
load = {}
with open(src) as f:
    for row in csv.DictReader(f):
        if row["scenario"] == "all":
            load[row["metric"]] = row["value"]
        elif row["scenario"] == "6":
            mem[(row["broker"], row["metric"])] = float(row["value"])
        elif row["run"] == "median":
            med[(row["scenario"], row["broker"], row["metric"])] = float(row["value"])

fig, axes = plt.subplots(1, 3, figsize=(16, 5.5), gridspec_kw={"width_ratios": [3, 2, 1.4]})

# Throughput.
ax = axes[0]
scs = [s for s in NAMES if any((s, b, "rate") in med for b in BROKERS)]
w = 0.38
for i, b in enumerate(BROKERS):
    xs = [j + (i - 0.5) * w for j in range(len(scs))]
    ys = [med.get((s, b, "rate"), 0) for s in scs]
    bars = ax.bar(xs, ys, w, label=b, color=COLORS[b])
    for x, y in zip(xs, ys):
        if y > 0:
            ax.text(x, y * 1.08, "%.0fk" % (y / 1e3) if y < 1e6 else "%.2fM" % (y / 1e6),
                    ha="center", va="bottom", fontsize=8)
for j, s in enumerate(scs):
    wv, rv = med.get((s, "warren", "rate")), med.get((s, "rabbitmq", "rate"))
    if wv and rv:
        ax.text(j, max(wv, rv) * 2.6, "x%.1f" % (wv / rv), ha="center", fontsize=10, weight="bold")
ax.set_yscale("log")
ax.set_xticks(range(len(scs)))
ax.set_xticklabels([NAMES[s] for s in scs])
top = max([v for (s, b, m), v in med.items() if m == "rate" and s in NAMES] + [1])
bot = min([v for (s, b, m), v in med.items() if m == "rate" and s in NAMES and v > 0] + [top])
ax.set_ylim(bot * 0.3, top * 8)
ax.set_ylabel("messages/s (median of runs, log scale)")
ax.set_title("Throughput, 1 producer -> 1 consumer, auto-ack\n(ratio warren/RabbitMQ in bold)")
ax.legend(loc="lower left")
ax.grid(axis="y", which="major", alpha=0.3)

# Latency percentiles at fixed rates.
ax = axes[1]
groups = []
for s, label in (("5a", "10k msg/s"), ("5b", "100k msg/s")):
    for p, pl in (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")):
        if any((s, b, p) in med for b in BROKERS):
            groups.append((s, p, "%s\n%s" % (pl, label)))
for i, b in enumerate(BROKERS):
    xs = [j + (i - 0.5) * w for j in range(len(groups))]
    ys = [med.get((s, b, p), 0) for s, p, _ in groups]
    ax.bar(xs, ys, w, label=b, color=COLORS[b])
    for x, y in zip(xs, ys):
        if y > 0:
            ax.text(x, y * 1.08, "%.0f" % y, ha="center", va="bottom", fontsize=7)
if groups:
    ax.set_yscale("log")
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels([g[2] for g in groups], fontsize=8)
    ax.set_ylim(top=max(v for (s, b, m), v in med.items() if m.endswith("_us")) * 4)
    ax.legend(loc="upper left")
else:
    ax.text(0.5, 0.5, "not run", ha="center", transform=ax.transAxes)
ax.set_ylabel("publish -> deliver latency, us (log)")
ax.set_title("Scenario 5: latency at a fixed rate, 16 B")
ax.grid(axis="y", alpha=0.3)

# Memory.
ax = axes[2]
items = [("per_conn_b", "per idle\nconnection"), ("per_queue_b", "per queue")]
if mem:
    for i, b in enumerate(BROKERS):
        xs = [j + (i - 0.5) * w for j in range(len(items))]
        ys = [mem.get((b, k), 0) / 1024 for k, _ in items]
        ax.bar(xs, ys, w, label=b, color=COLORS[b])
        for x, y in zip(xs, ys):
            ax.text(x, max(y, 0.01) * 1.08, "%.1f" % y, ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(items)))
    ax.set_xticklabels([l for _, l in items])
    ax.set_yscale("log")
    vals = [mem.get((b, k), 0) / 1024 for b in BROKERS for k, _ in items]
    vals = [v for v in vals if v > 0] or [1]
    ax.set_ylim(min(vals) * 0.3, max(vals) * 6)
    ax.legend(loc="upper right")
else:
    ax.text(0.5, 0.5, "not run", ha="center", transform=ax.transAxes)
ax.set_ylabel("KiB of broker RSS (log)")
ax.set_title("Scenario 6: memory\n(1,000 connections, 10,000 queues)")
ax.grid(axis="y", alpha=0.3)

fig.suptitle("warren vs RabbitMQ, %d CPUs (bench/run.sh; load average %s -> %s)"
             % (os.cpu_count(), load.get("loadavg_start", "?"), load.get("loadavg_end", "?")))
fig.tight_layout()
fig.savefig(out, dpi=90)
print("plot: wrote", out)
