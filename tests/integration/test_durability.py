"""Durability: what survives a restart (clean SIGTERM and kill -9) and what
does not, with RabbitMQ's semantics (warren only: needs restarts).

- durable exchanges, queues and bindings survive; transient ones do not
- persistent messages in durable queues survive, in order, byte-exact;
  transient messages and messages in non-durable queues do not
- delivered-but-unacked messages come back redelivered; acked ones never do
- exclusive queues are gone after a restart (their connection is)
"""
import datetime
import decimal
import os

import pika
import pytest

from conftest import start_warren
from helpers import uid


@pytest.fixture
def restartable(broker):
    if broker.external:
        pytest.skip("needs to restart the broker")
    started = []

    def _start(data_dir=None):
        b = start_warren(data_dir=data_dir)
        started.append(b)
        return b

    yield _start
    for b in started:
        b.stop()


def restart(b, how, start):
    if how == "kill":
        b.kill()
    else:
        b.stop()
    return start(data_dir=b.data_dir)


def publish(ch, q, body, persistent=True, **props):
    ch.basic_publish("", q, body, pika.BasicProperties(
        delivery_mode=2 if persistent else 1, **props))


def drain(ch, q):
    out = []
    while True:
        m, p, body = ch.basic_get(q, auto_ack=True)
        if m is None:
            return out
        out.append((m, p, body))


@pytest.mark.parametrize("how", ["term", "kill"])
def test_persistent_messages_survive_in_order(restartable, how):
    b = restartable()
    ch = b.connect().channel()
    ch.confirm_delivery()
    q = uid("dur")
    ch.queue_declare(q, durable=True)
    for i in range(200):
        publish(ch, q, b"p%d" % i, persistent=(i % 2 == 0))
    b = restart(b, how, restartable)
    ch = b.connect().channel()
    got = [body for _m, _p, body in drain(ch, q)]
    assert got == [b"p%d" % i for i in range(0, 200, 2)]


@pytest.mark.parametrize("how", ["term", "kill"])
def test_properties_and_headers_survive_byte_exact(restartable, how):
    b = restartable()
    ch = b.connect().channel()
    ch.confirm_delivery()
    q = uid("props")
    ch.queue_declare(q, durable=True)
    headers = {"x-retry-count": 7, "nested": {"a": [1, "two", True]},
               "when": datetime.datetime(2024, 1, 2, 3, 4, 5),
               "price": decimal.Decimal("12.34"), "blob": b"\x00\xff"}
    props = dict(content_type="application/json", content_encoding="gzip",
                 headers=headers, priority=3, correlation_id="c-1", reply_to="r",
                 message_id="m-1", timestamp=1700000000, type="t", app_id="a")
    body = os.urandom(5000)
    publish(ch, q, body, **props)
    b = restart(b, how, restartable)
    ch = b.connect().channel()
    [(m, p, got)] = drain(ch, q)
    assert got == body
    assert p.delivery_mode == 2
    for k, v in props.items():
        assert getattr(p, k) == v, k


@pytest.mark.parametrize("how", ["term", "kill"])
def test_topology_survives_and_transient_does_not(restartable, how):
    b = restartable()
    ch = b.connect().channel()
    dx, tx = uid("dx"), uid("tx")
    dq, tq, eq = uid("dq"), uid("tq"), uid("eq")
    ch.exchange_declare(dx, "topic", durable=True)
    ch.exchange_declare(tx, "fanout", durable=False)
    ch.queue_declare(dq, durable=True)
    ch.queue_declare(tq, durable=False)
    ch.queue_declare(eq, durable=True, exclusive=True)
    ch.queue_bind(dq, dx, "a.#")
    ch.queue_bind(dq, "amq.direct", "k")
    ch.confirm_delivery()
    publish(ch, tq, b"in-transient-queue")
    b = restart(b, how, restartable)
    c = b.connect()
    ch = c.channel()
    ch.exchange_declare(dx, "topic", durable=True, passive=True)
    ch.queue_declare(dq, durable=True, passive=True)
    for kind, name in (("exchange", tx), ("queue", tq), ("queue", eq)):
        ch2 = c.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            if kind == "exchange":
                ch2.exchange_declare(name, passive=True)
            else:
                ch2.queue_declare(name, passive=True)
        assert e.value.reply_code == 404
    ch.confirm_delivery()
    publish(ch, "", "x", persistent=True) if False else None
    ch.basic_publish(dx, "a.b.c", b"via-topic", pika.BasicProperties(delivery_mode=2))
    ch.basic_publish("amq.direct", "k", b"via-amq-direct",
                     pika.BasicProperties(delivery_mode=2))
    assert [body for _m, _p, body in drain(ch, dq)] == [b"via-topic", b"via-amq-direct"]


def test_unacked_come_back_redelivered_and_acked_never(restartable):
    b = restartable()
    c = b.connect()
    ch = c.channel()
    ch.confirm_delivery()
    q = uid("acks")
    ch.queue_declare(q, durable=True)
    for i in range(6):
        publish(ch, q, b"m%d" % i)
    got = [ch.basic_get(q, auto_ack=False) for _ in range(4)]
    ch.basic_ack(got[0][0].delivery_tag)
    ch.basic_ack(got[2][0].delivery_tag)
    # A confirm after the acks proves they reached the disk with it.
    publish(ch, q, b"m6")
    b = restart(b, "term", restartable)
    ch = b.connect().channel()
    rest = [(p_.redelivered if False else m.redelivered, body)
            for m, p_, body in drain(ch, q)]
    assert rest == [(True, b"m1"), (True, b"m3"), (False, b"m4"), (False, b"m5"),
                    (False, b"m6")]


def test_acked_messages_do_not_return_after_kill(restartable):
    b = restartable()
    c = b.connect()
    ch = c.channel()
    ch.confirm_delivery()
    q = uid("kack")
    ch.queue_declare(q, durable=True)
    for i in range(100):
        publish(ch, q, b"%d" % i)
    for _ in range(60):
        m, _p, _b = ch.basic_get(q, auto_ack=False)
        ch.basic_ack(m.delivery_tag)
    publish(ch, q, b"marker")
    b = restart(b, "kill", restartable)
    ch = b.connect().channel()
    got = [body for _m, _p, body in drain(ch, q)]
    assert got == [b"%d" % i for i in range(60, 100)] + [b"marker"]


def test_purge_and_delete_are_durable(restartable):
    b = restartable()
    ch = b.connect().channel()
    ch.confirm_delivery()
    q1, q2 = uid("purged"), uid("deleted")
    ch.queue_declare(q1, durable=True)
    ch.queue_declare(q2, durable=True)
    for i in range(10):
        publish(ch, q1, b"x")
        publish(ch, q2, b"y")
    assert ch.queue_purge(q1).method.message_count == 10
    ch.queue_delete(q2)
    publish(ch, q1, b"after-purge")
    b = restart(b, "kill", restartable)
    c = b.connect()
    ch = c.channel()
    assert [body for _m, _p, body in drain(ch, q1)] == [b"after-purge"]
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        c.channel().queue_declare(q2, passive=True)
    assert e.value.reply_code == 404


def test_message_to_many_durable_queues_recovers_in_each(restartable):
    b = restartable()
    ch = b.connect().channel()
    ch.confirm_delivery()
    x = uid("fan")
    ch.exchange_declare(x, "fanout", durable=True)
    qs = [uid("fq") for _ in range(5)]
    for q in qs:
        ch.queue_declare(q, durable=True)
        ch.queue_bind(q, x)
    ch.basic_publish(x, "", b"one-copy", pika.BasicProperties(delivery_mode=2))
    m, _p, _b = ch.basic_get(qs[0], auto_ack=False)
    ch.basic_ack(m.delivery_tag)
    ch.basic_publish(x, "", b"second", pika.BasicProperties(delivery_mode=2))
    b = restart(b, "kill", restartable)
    ch = b.connect().channel()
    assert [body for _m, _p, body in drain(ch, qs[0])] == [b"second"]
    for q in qs[1:]:
        assert [body for _m, _p, body in drain(ch, q)] == [b"one-copy", b"second"]


def test_compaction_frees_segments_pinned_by_an_old_message(broker):
    """One old message in queue A pins the first segment while queue B moves
    lots of data; compaction copies it forward so the data directory shrinks
    back, and the message survives a kill -9 afterwards, delivered intact."""
    if broker.external:
        pytest.skip("needs warren's store")
    b = start_warren(config_text="store.segment_size = 64KB\n")
    try:
        c = b.connect()
        ch = c.channel()
        ch.confirm_delivery()
        qa, qb = uid("pinned"), uid("busy")
        ch.queue_declare(qa, durable=True)
        ch.queue_declare(qb, durable=True)
        publish(ch, qa, b"old and precious", headers={"k": 1})
        body = os.urandom(1024)
        for _ in range(600):
            publish(ch, qb, body)
        msgs = os.path.join(b.data_dir, "vhosts", "1", "msgs")
        peak = len([f for f in os.listdir(msgs) if f.endswith(".seg")])
        # The segment the old message pins, taken before compaction can run
        # (it may run as soon as the acks below are durable).
        first = sorted(f for f in os.listdir(msgs) if f.endswith(".seg"))[0]
        for _ in range(600):
            m, _p, _b = ch.basic_get(qb, auto_ack=False)
            ch.basic_ack(m.delivery_tag)
        publish(ch, qb, b"marker")  # the acks are durable with this confirm
        import time
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "compacted" not in b.stderr():
            c.process_data_events(0.2)
        segs = [f for f in os.listdir(msgs) if f.endswith(".seg")]
        assert peak >= 8, peak
        assert "compacted" in b.stderr(), b.stderr()
        assert first not in segs, "the pinned segment %s is still there" % first
        assert len(segs) <= 2, "segments left: %s (peak %d)" % (segs, peak)
        b.kill()
        b = start_warren(data_dir=b.data_dir)
        ch = b.connect().channel()
        [(m, p, got)] = drain(ch, qa)
        assert got == b"old and precious" and p.headers == {"k": 1}
        assert [x for _m, _p, x in drain(ch, qb)] == [b"marker"]
    finally:
        b.stop()


def test_compaction_relocates_unacked_deliveries(broker):
    """A delivery that is out (unacked) while its segment is compacted is
    acked afterwards: the ack must apply to the moved copy, so the message
    does not come back after a kill -9."""
    if broker.external:
        pytest.skip("needs warren's store")
    import time
    b = start_warren(config_text="store.segment_size = 64KB\n")
    try:
        c = b.connect()
        ch = c.channel()
        ch.confirm_delivery()
        qa, qb = uid("out"), uid("busy")
        ch.queue_declare(qa, durable=True)
        ch.queue_declare(qb, durable=True)
        publish(ch, qa, b"held by a consumer")
        publish(ch, qa, b"still queued")
        m_out, _p, body = ch.basic_get(qa, auto_ack=False)
        assert body == b"held by a consumer"
        payload = os.urandom(1024)
        for _ in range(600):
            publish(ch, qb, payload)
        ch.queue_purge(qb)
        publish(ch, qb, b"marker")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "compacted" not in b.stderr():
            c.process_data_events(0.2)
        assert "compacted" in b.stderr(), b.stderr()
        ch.basic_ack(m_out.delivery_tag)
        publish(ch, qb, b"marker2")  # proves the ack durable
        b.kill()
        b = start_warren(data_dir=b.data_dir)
        ch = b.connect().channel()
        assert [x for _m, _p, x in drain(ch, qa)] == [b"still queued"]
    finally:
        b.stop()
