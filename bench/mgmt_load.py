#!/usr/bin/python3
"""bench/mgmt_load.py - the management API benchmark's client (bench/mgmt.sh).

    mgmt_load.py declare AMQP_URL N      declares N queues bench-q-00000.. (non-durable)
    mgmt_load.py measure HTTP_BASE RUNS  times the API's listings, prints key=value lines
"""
import base64
import http.client
import statistics
import sys
import time
import urllib.parse

import pika


def declare(url, n):
    c = pika.BlockingConnection(pika.URLParameters(url))
    ch = c.channel()
    for i in range(n):
        ch.queue_declare("bench-q-%05d" % i)
    c.close()


def timed_get(base, path):
    u = urllib.parse.urlparse(base)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=300)
    auth = base64.b64encode(b"guest:guest").decode()
    t0 = time.monotonic()
    c.request("GET", path, headers={"Authorization": "Basic " + auth})
    r = c.getresponse()
    body = r.read()
    dt = time.monotonic() - t0
    c.close()
    if r.status != 200:
        raise SystemExit("GET %s: %d %s" % (path, r.status, body[:200]))
    return dt, len(body)


def measure(base, runs):
    cases = [("queues_all", "/api/queues"),
             ("queues_page", "/api/queues?page=1&page_size=100&name=&use_regex=false"
                             "&sort=name&sort_reverse=false"),
             ("queues_nostats", "/api/queues?disable_stats=true&enable_queue_totals=true"),
             ("overview", "/api/overview")]
    for key, path in cases:
        times, size = [], 0
        for _ in range(runs):
            dt, size = timed_get(base, path)
            times.append(dt)
        print("%s_ms=%.1f %s_bytes=%d" % (key, statistics.median(times) * 1000, key, size))


if __name__ == "__main__":
    if sys.argv[1] == "declare":
        declare(sys.argv[2], int(sys.argv[3]))
    else:
        measure(sys.argv[2], int(sys.argv[3]))
