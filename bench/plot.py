#!/usr/bin/python3
"""bench/plot.py - draw bench/run.sh's results (its RESULTS CSV) as a PNG.

usage: /usr/bin/python3 bench/plot.py [RESULTS.csv] [OUT.png]
defaults: /tmp/warren-bench-results.csv, docs/bench-results.png

Left: throughput per scenario, warren and RabbitMQ side by side, on a log
scale, with the ratio warren/RabbitMQ above each pair: the medians of
scenarios 1, 2, 3 (1 KB, 64 KB), 4 (publishes and deliveries over the 10
queues) and 8, and scenario 7's drain rate.  Middle: the median latency
percentiles (p50/p99/p99.9) at 10,000 and 100,000 msg/s (scenario 5).
Right: memory, bytes of broker RSS per idle connection and per queue
(scenario 6) and per queued message (scenario 7).  Scenarios missing from
the CSV are left out.  Needs python3-matplotlib.
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

BROKERS = ("warren", "rabbitmq")
COLORS = {"warren": "#d95f02", "rabbitmq": "#1b9e77"}
W = 0.38

# fig_v[(scenario, broker, metric)]: the medians of the warren-perf and topic
# scenarios, scenario 6's single run; scenario 7 (run = N) is in backlog.
fig_v = {}
backlog = {}
load = {}
with open(src) as f:
    for row in csv.DictReader(f):
        sc, b, run, m = row["scenario"], row["broker"], row["run"], row["metric"]
        try:
            v = float(row["value"])
        except ValueError:
            continue
        if sc == "all":
            load[m] = row["value"]
        elif sc == "7":
            backlog[(int(run), b, m)] = v
        elif sc == "6" or run == "median":
            fig_v[(sc, b, m)] = v


def backlog_n(metric):
    """The N of scenario 7 to show: the largest both brokers finished, else
    the largest one did."""
    ns = {n for (n, b, m) in backlog if m == metric}
    both = [n for n in ns if all((n, b, metric) in backlog for b in BROKERS)]
    return max(both or ns or [None], key=lambda n: n or 0)


def count(n):
    return "%dM" % (n // 1000000) if n % 1000000 == 0 else "%dk" % (n // 1000) if n % 1000 == 0 else str(n)


def human(y):
    if y >= 1e6:
        return "%.2fM" % (y / 1e6)
    if y >= 1e4:
        return "%.0fk" % (y / 1e3)
    return "%.0f" % y


def bars(ax, groups, value, label_fmt, fontsize=8):
    """Bars of both brokers for each group (value(group, broker) -> number
    or None), on a log scale; returns the values drawn."""
    drawn = []
    for i, b in enumerate(BROKERS):
        xs = [j + (i - 0.5) * W for j in range(len(groups))]
        ys = [value(g, b) or 0 for g in groups]
        ax.bar(xs, ys, W, label=b, color=COLORS[b])
        for x, y in zip(xs, ys):
            if y > 0:
                ax.text(x, y * 1.08, label_fmt(y), ha="center", va="bottom", fontsize=fontsize)
                drawn.append(y)
    ax.set_xticks(range(len(groups)))
    if drawn:
        ax.set_yscale("log")
        ax.set_ylim(min(drawn) * 0.3, max(drawn) * 8)
        ax.grid(axis="y", which="major", alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    else:
        ax.set_yticks([])
        ax.text(0.5, 0.5, "not run", ha="center", transform=ax.transAxes)
    return drawn


fig, axes = plt.subplots(1, 3, figsize=(19, 6), gridspec_kw={"width_ratios": [4, 2.4, 1.8]})

# Throughput: (label, value(broker)).
tput = [
    ("1: 16 B", "1", "rate"),
    ("2: persistent,\nconfirms", "2", "rate"),
    ("3: 1 KB", "3a", "rate"),
    ("3: 64 KB", "3b", "rate"),
    ("4: fanout\npublished", "4", "send_rate"),
    ("4: fanout\ndelivered", "4", "rate"),
    ("8: topic,\n10k bindings", "8", "rate"),
]
groups = [(l, lambda b, s=s, m=m: fig_v.get((s, b, m))) for l, s, m in tput
          if any((s, b, m) in fig_v for b in BROKERS)]
n7 = backlog_n("drain_rate")
if n7:
    groups.append(("7: drain\n%s queued" % count(n7), lambda b: backlog.get((n7, b, "drain_rate"))))
ax = axes[0]
bars(ax, groups, lambda g, b: g[1](b), human)
for j, (_, get) in enumerate(groups):
    wv, rv = get("warren"), get("rabbitmq")
    if wv and rv:
        ax.text(j, max(wv, rv) * 2.6, "x%.1f" % (wv / rv), ha="center", fontsize=10, weight="bold")
ax.set_xticklabels([g[0] for g in groups], fontsize=8)
ax.set_ylabel("messages/s (median of runs, log scale)")
ax.set_title("Throughput, 16-byte messages unless said (ratio warren/RabbitMQ in bold)")

# Latency percentiles at fixed rates (scenario 5).
groups = [(s, p, "%s\n%s" % (pl, rl)) for s, rl in (("5a", "10k msg/s"), ("5b", "100k msg/s"))
          for p, pl in (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9"))
          if any((s, b, p) in fig_v for b in BROKERS)]
ax = axes[1]
bars(ax, groups, lambda g, b: fig_v.get((g[0], b, g[1])), lambda y: "%.0f" % y, fontsize=7)
ax.set_xticklabels([g[2] for g in groups], fontsize=8)
ax.set_ylabel("publish -> deliver latency, us (log)")
ax.set_title("Scenario 5: latency at a fixed rate, 16 B")

# Memory: bytes per idle connection, per queue, per queued message.
groups = [(l, lambda b, m=m: fig_v.get(("6", b, m))) for l, m in
          (("6: per idle\nconnection", "per_conn_b"), ("6: per queue", "per_queue_b"))
          if any(("6", b, m) in fig_v for b in BROKERS)]
n7 = backlog_n("rss_per_msg_b")
if n7:
    groups.append(("7: per queued\nmessage (%s)" % count(n7),
                   lambda b: backlog.get((n7, b, "rss_per_msg_b"))))
ax = axes[2]
bars(ax, groups, lambda g, b: g[1](b), human)
ax.set_xticklabels([g[0] for g in groups], fontsize=8)
ax.set_ylabel("bytes of broker RSS (log)")
ax.set_title("Memory (scenarios 6 and 7)")

fig.suptitle("warren vs RabbitMQ, %d CPUs (bench/run.sh; load average %s -> %s)"
             % (os.cpu_count(), load.get("loadavg_start", "?"), load.get("loadavg_end", "?")))
fig.tight_layout()
fig.savefig(out, dpi=90)
print("plot: wrote", out)
