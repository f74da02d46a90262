"""x-expires: a queue that is unused (no consumers, no basic.get, not
redeclared) for that long is deleted; a consumer keeps it alive."""
import time

import pika
import pytest

from helpers import uid


def exists(connect, q):
    ch = connect().channel()
    try:
        ch.queue_declare(q, passive=True)
        return True
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code == 404
        return False


def test_unused_queue_expires(connect):
    ch = connect().channel()
    q = uid("exp")
    ch.queue_declare(q, arguments={"x-expires": 500})
    assert exists(connect, q)
    deadline = time.monotonic() + 5
    while exists(connect, q) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not exists(connect, q)


def test_queue_with_consumer_does_not_expire(connect):
    c = connect()
    ch = c.channel()
    q = uid("exp")
    ch.queue_declare(q, arguments={"x-expires": 400})
    tag = ch.basic_consume(q, lambda *a: None)
    c.process_data_events(1.5)
    assert exists(connect, q)
    ch.basic_cancel(tag)
    deadline = time.monotonic() + 5
    while exists(connect, q) and time.monotonic() < deadline:
        c.process_data_events(0.2)
    assert not exists(connect, q)
