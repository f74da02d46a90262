"""Delayed delivery: exchange type x-delayed-message with x-delayed-type and
the x-delay header (the interface of RabbitMQ's community plugin), so a
retry with back-off needs no sleeping consumer.  Persistent delayed
messages on a durable exchange survive a kill -9 (their wait starts again
after the restart: late, never lost)."""
import time

import pika
import pytest

from conftest import start_warren
from helpers import uid


def wait_get(ch, q, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m, p, body = ch.basic_get(q, auto_ack=True)
        if m is not None:
            return m, p, body
        time.sleep(0.02)
    return None, None, None


def make_delayed(ch, kind="direct", durable=False):
    x = uid("delayed")
    ch.exchange_declare(x, "x-delayed-message", durable=durable,
                        arguments={"x-delayed-type": kind})
    q = uid("dq")
    ch.queue_declare(q, durable=durable)
    ch.queue_bind(q, x, "k" if kind == "direct" else "a.#")
    return x, q


def test_delayed_message_arrives_after_its_delay(broker, ch):
    if broker.external:
        pytest.skip("the delayed-message plugin is not in Debian's RabbitMQ")
    x, q = make_delayed(ch)
    ch.confirm_delivery()
    t0 = time.monotonic()
    ch.basic_publish(x, "k", b"later", pika.BasicProperties(headers={"x-delay": 400}))
    ch.basic_publish(x, "k", b"now", pika.BasicProperties(headers={"other": 1}))
    m, _p, body = wait_get(ch, q, 1)
    assert body == b"now"
    m, p, body = wait_get(ch, q, 3)
    waited = time.monotonic() - t0
    assert body == b"later" and 0.35 <= waited <= 1.5, waited
    assert p.headers["x-delay"] == 400
    assert m.exchange == x and m.routing_key == "k"
    ch.exchange_delete(x)
    ch.queue_delete(q)


def test_shorter_delay_first_and_topic_routing(broker, ch):
    if broker.external:
        pytest.skip("the delayed-message plugin is not in Debian's RabbitMQ")
    x, q = make_delayed(ch, "topic")
    ch.confirm_delivery()
    for body, delay in ((b"600", 600), (b"100", 100), (b"300", 300)):
        ch.basic_publish(x, "a.b", body, pika.BasicProperties(headers={"x-delay": delay}))
    got = [wait_get(ch, q, 3)[2] for _ in range(3)]
    assert got == [b"100", b"300", b"600"]
    ch.exchange_delete(x)
    ch.queue_delete(q)


def test_missing_delayed_type_is_406(ch):
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.exchange_declare(uid("bad"), "x-delayed-message")
    assert e.value.reply_code == 406


def test_persistent_delayed_message_survives_kill(broker):
    if broker.external:
        pytest.skip("needs a restart")
    b = start_warren()
    try:
        ch = b.connect().channel()
        x, q = make_delayed(ch, durable=True)
        ch.confirm_delivery()
        ch.basic_publish(x, "k", b"survivor", pika.BasicProperties(
            delivery_mode=2, headers={"x-delay": 500}))
        b.kill()
        b = start_warren(data_dir=b.data_dir)
        ch = b.connect().channel()
        assert ch.basic_get(q, auto_ack=True)[0] is None  # still waiting
        m, p, body = wait_get(ch, q, 3)
        assert body == b"survivor" and p.delivery_mode == 2
    finally:
        b.stop()
