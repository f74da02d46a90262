"""The Prometheus exporter (prometheus.tcp.port): RabbitMQ's endpoints,
names, labels and content type; values after real traffic; Debian's
promtool on every registry; and a real Prometheus server scraping warren
(warren only: it starts its own brokers)."""
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse

import pika
import pytest

from conftest import free_port, start_warren
from helpers import uid

CONTENT_TYPE = "text/plain; version=0.0.4"


@pytest.fixture(scope="module")
def prom(broker):
    if broker.external:
        pytest.skip("warren's Prometheus listener")
    port, mport = free_port(), free_port()
    b = start_warren(**{"prometheus.tcp.port": port, "management.tcp.port": mport})
    b.prom_port = port
    b.mgmt_port = mport
    yield b
    b.stop()


def fetch(b, path, method="GET", headers=None):
    c = http.client.HTTPConnection("127.0.0.1", b.prom_port, timeout=10)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r, body


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{name: {"type": t, "help": h, "samples": [(labels dict, value)]}}"""
    fams = {}
    order = []
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            assert name not in fams, "family %s twice" % name
            fams[name] = {"type": typ, "help": None, "samples": []}
            order.append(("TYPE", name))
        elif line.startswith("# HELP "):
            _, _, name, help_ = line.split(" ", 3)
            # TYPE comes first, as RabbitMQ writes it.
            assert order[-1] == ("TYPE", name)
            fams[name]["help"] = help_
            order.append(("HELP", name))
        elif line:
            m = SAMPLE.match(line)
            assert m, line
            name, labels, value = m.groups()
            base = re.sub(r"_(count|sum)$", "", name)
            fam = fams.get(name) or fams[base]
            ls = {k: re.sub(r'\\(.)', lambda m: "\n" if m.group(1) == "n" else m.group(1), v)
                  for k, v in LABEL.findall(labels or "")}
            fam["samples"].append((ls, float(value)))
    return fams


def value(fams, name, **labels):
    got = [v for l, v in fams[name]["samples"]
           if all(l.get(k) == w for k, w in labels.items())]
    assert len(got) == 1, (name, labels, fams[name]["samples"])
    return got[0]


def scrape(b, path="/metrics"):
    r, body = fetch(b, path)
    assert r.status == 200, body
    assert r.getheader("Content-Type") == CONTENT_TYPE
    return parse(body.decode())


def test_endpoints_content_type_and_errors(prom):
    for path in ("/metrics", "/metrics/per-object", "/metrics/detailed"):
        r, body = fetch(prom, path)
        assert r.status == 200 and r.getheader("Content-Type") == CONTENT_TYPE
        # No auth: a scraper needs none.
        assert r.getheader("WWW-Authenticate") is None
    r, body = fetch(prom, "/")
    assert r.status == 404
    assert json.loads(body) == {"error": "Object Not Found", "reason": "Not Found"}
    r, body = fetch(prom, "/metrics/nope")
    assert (r.status, body) == (404, b"Unknown Registry")
    assert r.getheader("Content-Type") == "text/plain"
    r, body = fetch(prom, "/metrics", headers={
        "Accept": "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;"
                  "encoding=delimited"})
    assert (r.status, body) == (406, b"")
    # What Prometheus itself sends is fine.
    r, _ = fetch(prom, "/metrics", headers={
        "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,"
                  "*/*;q=0.1"})
    assert r.status == 200
    r, body = fetch(prom, "/metrics", method="HEAD")
    assert r.status == 200 and body == b""
    r, _ = fetch(prom, "/metrics", method="POST")
    assert r.status == 405
    # The management listener still serves the API, not metrics.
    c = http.client.HTTPConnection("127.0.0.1", prom.mgmt_port, timeout=5)
    c.request("GET", "/metrics")
    r = c.getresponse()
    r.read()
    assert r.status in (401, 404)


def test_families_match_rabbitmq(prom):
    """Names, types and help texts as RabbitMQ 3.10.8 writes them."""
    fams = scrape(prom)
    expect = {
        "rabbitmq_queue_messages_ready": ("gauge", "Messages ready to be delivered to consumers"),
        "rabbitmq_queue_messages_unacked":
            ("gauge", "Messages delivered to consumers but not yet acknowledged"),
        "rabbitmq_queue_messages":
            ("gauge", "Sum of ready and unacknowledged messages - total queue depth"),
        "rabbitmq_connections_opened_total": ("counter", "Total number of connections opened"),
        "rabbitmq_connections_closed_total":
            ("counter", "Total number of connections closed or terminated"),
        "rabbitmq_queues_declared_total": ("counter", "Total number of queues declared"),
        "rabbitmq_process_open_fds": ("gauge", "Open file descriptors"),
        "rabbitmq_process_resident_memory_bytes": ("gauge", "Memory used in bytes"),
        "rabbitmq_disk_space_available_bytes": ("gauge", "Disk space available in bytes"),
        "rabbitmq_resident_memory_limit_bytes": ("gauge", "Memory high watermark in bytes"),
        "rabbitmq_alarms_memory_used_watermark":
            ("untyped", "is 1 if VM memory watermark alarm is in effect"),
        "rabbitmq_build_info": ("untyped", "RabbitMQ & Erlang/OTP version info"),
        "rabbitmq_identity_info": ("untyped", "RabbitMQ node & cluster identity info"),
        "rabbitmq_global_messages_received_total":
            ("counter", "Total number of messages received from publishers"),
        "rabbitmq_global_messages_routed_total":
            ("counter", "Total number of messages routed to queues or streams"),
        "rabbitmq_connection_incoming_bytes_total":
            ("counter", "Total number of bytes received on a connection"),
        "rabbitmq_queues": ("gauge", "Queues available"),
        "process_start_time_seconds":
            ("gauge", "Start time of the process since unix epoch in seconds."),
    }
    for name, (typ, help_) in expect.items():
        assert (fams[name]["type"], fams[name]["help"]) == (typ, help_), name
    # Every family warren writes is one RabbitMQ writes, with its type.
    ref = "/tmp/rmqref/mgmt/prom_raw_metrics.prom"
    if os.path.exists(ref):
        rfams = parse(open(ref).read())
        for name, f in fams.items():
            assert name in rfams, name
            assert (f["type"], f["help"]) == (rfams[name]["type"], rfams[name]["help"]), name
            # Label names: the same as RabbitMQ's in the aggregated registry.
            rl = {tuple(sorted(l)) for l, _ in rfams[name]["samples"]}
            for l, _ in f["samples"]:
                if name.startswith("telemetry_"):
                    continue
                if name == "rabbitmq_build_info":  # no Erlang here
                    assert set(l) <= set(next(iter(rl)))
                    continue
                if name == "rabbitmq_identity_info":  # no permanent cluster id
                    assert set(l) == {"rabbitmq_node", "rabbitmq_cluster"}
                    continue
                # (RabbitMQ writes some families without samples.)
                assert not rl or tuple(sorted(l)) in rl, (name, l)
    ident = fams["rabbitmq_identity_info"]["samples"][0][0]
    assert ident["rabbitmq_node"].startswith("warren@")
    assert time.time() - 3600 < value(fams, "process_start_time_seconds") <= time.time()


def test_values_after_traffic(prom):
    before = scrape(prom)
    c = prom.connect()
    ch = c.channel()
    ch.confirm_delivery()
    q, dq = uid("prom"), uid("prom-ttl")
    ch.queue_declare(q)
    ch.queue_declare(q, passive=True)  # passive: no declare counted
    ch.queue_declare(dq, arguments={"x-message-ttl": 1})
    for i in range(7):
        ch.basic_publish("", q, b"x" * 10)
    ch.basic_publish("", dq, b"gone")
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish("amq.direct", "nowhere", b"r", mandatory=True)
    got = ch.basic_get(q, auto_ack=False)
    assert got[0] is not None
    ch.basic_get(q, auto_ack=True)
    ch2 = c.channel()
    ch2.basic_qos(prefetch_count=3)
    ch2.basic_consume(q, lambda *a: None, consumer_tag="prom-consumer")
    c.process_data_events(0.3)
    time.sleep(0.3)
    c.process_data_events(0.1)

    fams = scrape(prom, "/metrics/per-object")
    assert value(fams, "rabbitmq_queue_messages_ready", vhost="/", queue=q) == 2
    assert value(fams, "rabbitmq_queue_messages_unacked", vhost="/", queue=q) == 4
    assert value(fams, "rabbitmq_queue_messages", vhost="/", queue=q) == 6
    assert value(fams, "rabbitmq_queue_consumers", vhost="/", queue=q) == 1
    assert value(fams, "rabbitmq_queue_messages_ready_bytes", vhost="/", queue=q) == 20
    assert value(fams, "rabbitmq_queue_messages_unacked_bytes", vhost="/", queue=q) == 40
    assert value(fams, "rabbitmq_queue_messages_published_total", queue_vhost="/", queue=q) == 7
    # Channel labels are the channels' pids, connection labels the
    # connection's (RabbitMQ names that label "channel" too).
    pubs = [(l, v) for l, v in fams["rabbitmq_channel_messages_published_total"]["samples"]]
    assert any(v == 9 and l["vhost"] == "/" and l["channel"].startswith("<") for l, v in pubs)
    prefetch = [v for l, v in fams["rabbitmq_consumer_prefetch"]["samples"]]
    assert 3 in prefetch
    conns = fams["rabbitmq_connection_channels"]["samples"]
    assert any(v == 2 for _, v in conns)
    assert all(set(l) == {"channel"} for l, _ in conns)
    inb = fams["rabbitmq_connection_incoming_bytes_total"]["samples"]
    assert any(v > 100 for _, v in inb)

    now = scrape(prom)

    def delta(name, **labels):
        return value(now, name, **labels) - value(before, name, **labels)

    assert delta("rabbitmq_connections_opened_total") == 1
    assert delta("rabbitmq_channels_opened_total") == 2
    assert delta("rabbitmq_queues_declared_total") == 2
    assert delta("rabbitmq_queues_created_total") == 2
    assert delta("rabbitmq_global_messages_received_total", protocol="amqp091") == 9
    assert delta("rabbitmq_global_messages_received_confirm_total", protocol="amqp091") == 9
    assert delta("rabbitmq_global_messages_confirmed_total", protocol="amqp091") == 9
    assert delta("rabbitmq_global_messages_routed_total", protocol="amqp091") == 8
    assert delta("rabbitmq_global_messages_unroutable_returned_total", protocol="amqp091") == 1
    cq = {"protocol": "amqp091", "queue_type": "rabbit_classic_queue"}
    assert delta("rabbitmq_global_messages_delivered_get_manual_ack_total", **cq) == 1
    assert delta("rabbitmq_global_messages_delivered_get_auto_ack_total", **cq) == 1
    assert delta("rabbitmq_global_messages_delivered_consume_manual_ack_total", **cq) == 3
    assert delta("rabbitmq_global_messages_delivered_total", **cq) == 5
    assert delta("rabbitmq_auth_attempts_succeeded_total", protocol="amqp091") == 1
    # The TTL queue's message expired with no dead-letter exchange.
    assert delta("rabbitmq_global_messages_dead_lettered_expired_total",
                 queue_type="rabbit_classic_queue", dead_letter_strategy="disabled") == 1
    assert value(now, "rabbitmq_connections") >= 1
    assert value(now, "rabbitmq_consumers") >= 1

    ch.queue_delete(dq)
    c.close()
    # A failed login counts too.
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        prom.connect(credentials=pika.PlainCredentials("guest", "wrong"))
    time.sleep(0.2)
    after = scrape(prom)
    assert value(after, "rabbitmq_connections_closed_total") - \
        value(before, "rabbitmq_connections_closed_total") == 1
    assert value(after, "rabbitmq_channels_closed_total") - \
        value(before, "rabbitmq_channels_closed_total") == 2
    # The deleted queue, and the consumer's q stays (not exclusive).
    assert value(after, "rabbitmq_queues_deleted_total") - \
        value(before, "rabbitmq_queues_deleted_total") == 1
    assert value(after, "rabbitmq_auth_attempts_failed_total", protocol="amqp091") - \
        value(before, "rabbitmq_auth_attempts_failed_total", protocol="amqp091") == 1
    c = prom.connect()
    c.channel().queue_delete(q)
    c.close()


def test_detailed_families_and_vhost_filter(prom):
    assert prom.ctl("add_vhost", "prom-v1")["ok"]
    assert prom.ctl("set_permissions", "guest", ".*", ".*", ".*", vhost="prom-v1")["ok"]
    c = pika.BlockingConnection(prom.params(virtual_host="prom-v1"))
    ch = c.channel()
    ch.queue_declare("dq1")
    ch.basic_publish("", "dq1", b"a")
    time.sleep(0.1)
    fams = scrape(prom, "/metrics/detailed")
    # No family asked for: the identity alone (and telemetry).
    assert {n for n in fams if not n.startswith("telemetry_")} == \
        {"rabbitmq_build_info", "rabbitmq_identity_info"}
    fams = scrape(prom, "/metrics/detailed?family=queue_coarse_metrics&family=queue_metrics"
                        "&vhost=prom-v1")
    assert value(fams, "rabbitmq_detailed_queue_messages_ready", vhost="prom-v1",
                 queue="dq1") == 1
    assert all(l["vhost"] == "prom-v1"
               for l, _ in fams["rabbitmq_detailed_queue_messages"]["samples"])
    assert "rabbitmq_detailed_queue_consumers" in fams
    assert "rabbitmq_detailed_channel_consumers" not in fams
    assert "rabbitmq_queue_messages" not in fams
    fams = scrape(prom, "/metrics/detailed?family=exchange_names&family=vhost_status"
                        "&family=exchange_bindings&family=connection_churn_metrics"
                        "&vhost=" + urllib.parse.quote("/", safe=""))
    assert value(fams, "rabbitmq_cluster_vhost_status", vhost="/") == 1
    assert value(fams, "rabbitmq_cluster_exchange_name", vhost="/", exchange="amq.topic",
                 type="topic") == 1
    assert "rabbitmq_detailed_connections_opened_total" in fams
    assert all(l["vhost"] == "/" for l, _ in fams["rabbitmq_cluster_exchange_bindings"]["samples"])
    c.close()


def test_promtool_check_metrics(prom):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    c = prom.connect()
    ch = c.channel()
    q = uid('prom "odd"\\name')  # label values need escaping
    ch.queue_declare(q, exclusive=True)
    ch.basic_publish("", q, b"x")
    for path in ("/metrics", "/metrics/per-object",
                 "/metrics/detailed?family=queue_coarse_metrics&family=queue_metrics"
                 "&family=channel_metrics&family=exchange_names&family=auth_attempt_metrics"):
        r, body = fetch(prom, path)
        p = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                           timeout=30)
        assert p.returncode == 0, (path, p.stdout, p.stderr)
    fams = scrape(prom, "/metrics/per-object")
    assert value(fams, "rabbitmq_queue_messages_ready", queue=q) == 1
    c.close()


def test_a_real_prometheus_scrapes_warren(broker, tmp_path):
    if broker.external:
        pytest.skip("warren's Prometheus listener")
    exe = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not os.access(exe, os.X_OK):
        pytest.skip("prometheus not installed (Debian package prometheus)")
    pport, wport = free_port(), free_port()
    b = start_warren(**{"prometheus.tcp.port": pport})
    proc = None
    try:
        c = b.connect()
        ch = c.channel()
        q = uid("scraped")
        ch.queue_declare(q)
        for _ in range(13):
            ch.basic_publish("", q, b"m")
        ch.queue_declare(q, passive=True)
        cfg = tmp_path / "prometheus.yml"
        cfg.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n"
            "  - job_name: warren\n"
            "    static_configs:\n      - targets: ['127.0.0.1:%d']\n"
            "  - job_name: warren-per-object\n"
            "    metrics_path: /metrics/per-object\n"
            "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % (pport, pport))
        log = open(tmp_path / "prometheus.log", "wb")
        proc = subprocess.Popen(
            [exe, "--config.file=%s" % cfg, "--storage.tsdb.path=%s" % (tmp_path / "tsdb"),
             "--web.listen-address=127.0.0.1:%d" % wport],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()

        def query(expr):
            try:
                conn = http.client.HTTPConnection("127.0.0.1", wport, timeout=5)
                conn.request("GET", "/api/v1/query?query=" + urllib.parse.quote(expr))
                r = conn.getresponse()
                data = json.loads(r.read())
                conn.close()
                return data["data"]["result"] if data.get("status") == "success" else None
            except (OSError, ValueError, KeyError):
                return None

        deadline = time.monotonic() + 60
        agg = per = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()
            agg = query('rabbitmq_queue_messages_ready{job="warren"}')
            per = query('rabbitmq_queue_messages_ready{job="warren-per-object",queue="%s"}' % q)
            if agg and per:
                break
            time.sleep(0.5)
        assert agg and per, (agg, per, (tmp_path / "prometheus.log").read_text()[-2000:])
        assert float(agg[0]["value"][1]) == 13
        assert float(per[0]["value"][1]) == 13 and per[0]["metric"]["vhost"] == "/"
        up = query('up{job="warren"}')
        assert up and float(up[0]["value"][1]) == 1
        ch.queue_delete(q)
        c.close()
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        b.stop()
