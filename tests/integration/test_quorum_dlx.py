"""At-least-once dead-lettering of quorum queues (x-dead-letter-strategy
at-least-once, with a dead-letter exchange and x-overflow reject-publish, as
RabbitMQ 3.10+ has it).  The oracle is RabbitMQ 3.10.8, run with these tests
(see README.md: AMQP_DLX_RETRY_URL):

- a dead-lettered message reaches its targets, and leaves the source once
  they have it
- one that routes nowhere (no such exchange, no binding) is kept in the
  source queue (neither ready nor unacknowledged) and delivered once a route
  exists; at-most-once (the default, or at-least-once without
  reject-publish) loses it
- kept messages count towards x-max-length for reject-publish
- a policy (dead-letter-strategy) switches the strategy of a queue

Tests that wait for a retry need a broker whose retry interval is short
(dead_letter_worker_publisher_confirm_timeout; RabbitMQ's default is 3
min): warren is started with 500 ms; against RabbitMQ they run only if
AMQP_DLX_RETRY_URL names one with advanced.config
[{rabbit, [{dead_letter_worker_publisher_confirm_timeout, 1000}]}].
"""
import os
import time

import pika
import pytest

from conftest import start_warren
from helpers import uid, wait_until

QQ = {"x-queue-type": "quorum"}


def alo_args(dlx, **extra):
    a = dict(QQ)
    a.update({"x-dead-letter-exchange": dlx,
              "x-dead-letter-strategy": "at-least-once",
              "x-overflow": "reject-publish"})
    for k, v in extra.items():
        a["x-" + k.replace("_", "-")] = v
    return a


@pytest.fixture(scope="module")
def retry_url(broker):
    """A broker whose dead-letter worker retries within about a second."""
    if broker.external:
        url = os.environ.get("AMQP_DLX_RETRY_URL")
        if not url:
            pytest.skip("set AMQP_DLX_RETRY_URL (a broker with a short "
                        "dead_letter_worker_publisher_confirm_timeout)")
        yield url
        return
    b = start_warren(dead_letter_worker_publisher_confirm_timeout=500)
    try:
        yield b.url
    finally:
        b.stop()


@pytest.fixture
def rch(retry_url):
    conn = pika.BlockingConnection(pika.URLParameters(retry_url))
    yield conn.channel()
    if conn.is_open:
        conn.close()


def reject_one(ch, q, body):
    """Publishes body to q (confirmed) and rejects it without requeue."""
    ch.basic_publish("", q, body, pika.BasicProperties(delivery_mode=2))
    m = None
    deadline = time.monotonic() + 5
    while m is None and time.monotonic() < deadline:
        m, _p, _b = ch.basic_get(q)
    assert m is not None
    ch.basic_reject(m.delivery_tag, requeue=False)


def gets(ch, q, want, timeout):
    got = []

    def more():
        while True:
            m, p, body = ch.basic_get(q, auto_ack=True)
            if m is None:
                return len(got) >= want
            got.append((m, p, body))
    wait_until(more, timeout)
    return got


def test_at_least_once_reaches_targets(connect):
    ch = connect().channel()
    ch.confirm_delivery()
    dlx, dlq, dlq2 = uid("alx"), uid("alq"), uid("alq2")
    ch.exchange_declare(dlx, "fanout", auto_delete=True)
    ch.queue_declare(dlq, durable=True)
    ch.queue_declare(dlq2, durable=True, arguments=QQ)
    ch.queue_bind(dlq, dlx)
    ch.queue_bind(dlq2, dlx)
    q = uid("alo")
    ch.queue_declare(q, durable=True, arguments=alo_args(dlx))
    for i in range(5):
        reject_one(ch, q, b"r%d" % i)
    for target in (dlq, dlq2):
        got = gets(ch, target, 5, 10)
        assert sorted(b for _m, _p, b in got) == [b"r%d" % i for i in range(5)]
        m, p, _b = got[0]
        [death] = p.headers["x-death"]
        assert death["reason"] == "rejected" and death["queue"] == q
        assert m.exchange == dlx
    assert ch.queue_declare(q, passive=True).method.message_count == 0
    for x in (q, dlq, dlq2):
        ch.queue_delete(x)


def test_unroutable_kept_until_a_route_exists(rch):
    ch = rch
    ch.confirm_delivery()
    dlx = uid("alx")  # not declared yet
    q, q_amo = uid("alo"), uid("amo")
    ch.queue_declare(q, durable=True, arguments=alo_args(dlx))
    # at-least-once without reject-publish is at-most-once
    amo = alo_args(dlx)
    del amo["x-overflow"]
    ch.queue_declare(q_amo, durable=True, arguments=amo)
    for i in range(3):
        reject_one(ch, q, b"k%d" % i)
    reject_one(ch, q_amo, b"lost")
    time.sleep(1.5)  # a retry or two with no route
    assert ch.basic_get(q) == (None, None, None)
    assert ch.queue_declare(q, passive=True).method.message_count == 0
    dlq = uid("alq")
    ch.exchange_declare(dlx, "fanout", auto_delete=True)
    ch.queue_declare(dlq, durable=True)
    ch.queue_bind(dlq, dlx)
    got = gets(ch, dlq, 3, 15)
    assert sorted(b for _m, _p, b in got) == [b"k0", b"k1", b"k2"]
    time.sleep(1.5)
    assert [b for _m, _p, b in gets(ch, dlq, 0, 0.5)] == []  # nothing more
    for x in (q, q_amo, dlq):
        ch.queue_delete(x)


def test_kept_messages_count_towards_max_length(rch):
    ch = rch
    ch.confirm_delivery()
    dlx = uid("alx")  # never declared: what is rejected stays
    q = uid("alo")
    ch.queue_declare(q, durable=True, arguments=alo_args(dlx, max_length=1))
    reject_one(ch, q, b"kept")
    # one kept: one more fits (RabbitMQ takes the message that reaches the
    # limit), the next is refused
    ch.basic_publish("", q, b"a", pika.BasicProperties(delivery_mode=2))
    with pytest.raises(pika.exceptions.NackError):
        ch.basic_publish("", q, b"b", pika.BasicProperties(delivery_mode=2))
    ch.queue_delete(q)


def test_warren_reports_kept_messages(warren_only_broker):
    b = warren_only_broker
    conn = pika.BlockingConnection(pika.URLParameters(b.url))
    ch = conn.channel()
    ch.confirm_delivery()
    q = uid("alo")
    ch.queue_declare(q, durable=True, arguments=alo_args(uid("none")))
    reject_one(ch, q, b"kept!")
    ch.basic_publish("", q, b"ready", pika.BasicProperties(delivery_mode=2))

    def row():
        out = b.ctl("list_queues", "name", "messages", "messages_ready",
                    "messages_unacknowledged", "messages_dlx", "message_bytes_dlx")
        return [r[1:] for r in out["rows"] if r[0] == q][0]
    assert wait_until(lambda: row() == [2, 1, 0, 1, 5], 5), row()
    conn.close()


def test_policy_switches_strategy(warren_only_broker):
    """dead-letter-strategy from a policy; switching back to at-most-once
    drops what is kept (RabbitMQ's documented behaviour)."""
    b = warren_only_broker
    conn = pika.BlockingConnection(pika.URLParameters(b.url))
    ch = conn.channel()
    ch.confirm_delivery()
    dlx, q = uid("alx"), uid("pol")
    args = dict(QQ)
    args.update({"x-dead-letter-exchange": dlx, "x-overflow": "reject-publish"})
    ch.queue_declare(q, durable=True, arguments=args)
    b.admin("set_policy", "--apply-to", "queues", "alo-" + q, "^%s$" % q,
            '{"dead-letter-strategy": "at-least-once"}')

    def kept():
        out = b.ctl("list_queues", "name", "messages_dlx")
        return [r[1] for r in out["rows"] if r[0] == q][0]
    reject_one(ch, q, b"one")
    assert wait_until(lambda: kept() == 1, 5)
    b.admin("set_policy", "--apply-to", "queues", "alo-" + q, "^%s$" % q,
            '{"dead-letter-strategy": "at-most-once"}')
    assert wait_until(lambda: kept() == 0, 5)
    b.admin("clear_policy", "alo-" + q)
    ch.queue_delete(q)
    conn.close()


def test_policy_validation(warren_only_broker):
    r = warren_only_broker.ctl("set_policy", "bad", "^x", '{"dead-letter-strategy": "sometimes"}')
    assert "not a valid dead-letter-strategy" in str(r), r


@pytest.fixture(scope="module")
def warren_only_broker(broker):
    if broker.external:
        pytest.skip("warren only (warrenctl)")
    return broker
