"""x-expires: a queue that is unused (no consumers, no basic.get, not
declared again, even passively) for that long is deleted; a consumer keeps
it alive.  (warren checks once a second, so deletion may come up to a
second after the deadline.)"""
import time

import pika

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
    time.sleep(2.0)  # a passive declare would count as use: look once
    assert not exists(connect, q)


def test_queue_with_consumer_does_not_expire(connect):
    c = connect()
    ch = c.channel()
    q = uid("exp")
    ch.queue_declare(q, arguments={"x-expires": 400})
    tag = ch.basic_consume(q, lambda *a: None)  # noqa: F841 (cancelled below)
    c.process_data_events(1.5)
    assert exists(connect, q)
    ch.basic_cancel(tag)
    ch.queue_delete(q)
