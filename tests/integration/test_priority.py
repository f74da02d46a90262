"""Priority queues (x-max-priority): higher priority first, FIFO within a
priority, priorities above the maximum count as the maximum, no priority
property counts as 0; requeued messages keep their place; the order
survives a restart."""
import pika
import pytest

from conftest import start_warren
from helpers import uid


def publish_all(ch, q, items, persistent=False):
    for body, prio in items:
        props = pika.BasicProperties(priority=prio, delivery_mode=2 if persistent else 1)
        ch.basic_publish("", q, body, props)


def drain(ch, q):
    out = []
    while True:
        m, _p, body = ch.basic_get(q, auto_ack=True)
        if m is None:
            return out
        out.append(body)


def test_higher_priority_first_fifo_within(ch):
    q = uid("prio")
    ch.queue_declare(q, exclusive=True, arguments={"x-max-priority": 10})
    ch.confirm_delivery()
    publish_all(ch, q, [(b"a0", 0), (b"b5", 5), (b"c5", 5), (b"d9", 9), (b"e", None),
                        (b"f200", 200), (b"g1", 1)])
    # 200 counts as the maximum, 10; no priority counts as 0.
    assert drain(ch, q) == [b"f200", b"d9", b"b5", b"c5", b"g1", b"a0", b"e"]


def test_requeue_keeps_priority_place(ch):
    q = uid("prio")
    ch.queue_declare(q, exclusive=True, arguments={"x-max-priority": 5})
    ch.confirm_delivery()
    publish_all(ch, q, [(b"low", 1), (b"high1", 5), (b"high2", 5)])
    m, _p, body = ch.basic_get(q, auto_ack=False)
    assert body == b"high1"
    ch.basic_nack(m.delivery_tag, requeue=True)
    assert drain(ch, q) == [b"high1", b"high2", b"low"]


def test_consumer_gets_highest_priority_backlog_first(connect):
    c = connect()
    ch = c.channel()
    q = uid("prio")
    ch.queue_declare(q, exclusive=True, arguments={"x-max-priority": 3})
    ch.confirm_delivery()
    publish_all(ch, q, [(b"%d-%d" % (p, i), p) for i in range(3) for p in (0, 1, 2, 3)])
    got = []
    ch.basic_qos(prefetch_count=1)
    for m, _p, body in ch.consume(q, inactivity_timeout=2):
        if m is None:
            break
        got.append(body)
        ch.basic_ack(m.delivery_tag)
        if len(got) == 12:
            break
    ch.cancel()
    assert got == [b"%d-%d" % (p, i) for p in (3, 2, 1, 0) for i in range(3)]


def test_priority_order_survives_restart(broker):
    if broker.external:
        pytest.skip("needs a restart")
    b = start_warren()
    try:
        ch = b.connect().channel()
        ch.confirm_delivery()
        q = uid("pdur")
        ch.queue_declare(q, durable=True, arguments={"x-max-priority": 9})
        publish_all(ch, q, [(b"x%d" % i, i % 3) for i in range(9)], persistent=True)
        b.kill()
        b = start_warren(data_dir=b.data_dir)
        ch = b.connect().channel()
        assert drain(ch, q) == [b"x2", b"x5", b"x8", b"x1", b"x4", b"x7", b"x0", b"x3", b"x6"]
    finally:
        b.stop()
