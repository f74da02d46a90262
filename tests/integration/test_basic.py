"""basic.*: publish flags, consumers, get, acks, requeue order, recover,
qos, and message properties round trips."""

import datetime
import decimal
import os
import struct
import time

import pika
import pika.exceptions
import pytest

import rawamqp
from rawamqp import Typed, expect_connection_close
from helpers import channel_error, get_all, pump, raw_queue, uid, wait_until


def new_queue(ch, n=0, prefix="m"):
    q = ch.queue_declare("", exclusive=True).method.queue
    for i in range(1, n + 1):
        ch.basic_publish("", q, ("%s%d" % (prefix, i)).encode())
    return q


# ---------------------------------------------------------------------------
# Publish flags
# ---------------------------------------------------------------------------

def test_mandatory_unroutable_is_returned_312(conn):
    ch = conn.channel()
    returned = []
    ch.add_on_return_callback(lambda c, m, p, b: returned.append((m, p, b)))
    x = uid("x")
    ch.exchange_declare(x, "direct", auto_delete=True)
    ch.basic_publish(x, "nowhere", b"ret", pika.BasicProperties(message_id="r1"),
                     mandatory=True)
    assert pump(conn, lambda: returned)
    m, p, b = returned[0]
    assert m.reply_code == 312
    assert m.reply_text == "NO_ROUTE"
    assert m.exchange == x and m.routing_key == "nowhere"
    assert p.message_id == "r1" and b == b"ret"
    ch.exchange_delete(x)


def test_mandatory_default_exchange_missing_queue_returned(conn):
    ch = conn.channel()
    returned = []
    ch.add_on_return_callback(lambda c, m, p, b: returned.append(m))
    ch.basic_publish("", uid("no-queue"), b"x", mandatory=True)
    assert pump(conn, lambda: returned)
    assert (returned[0].reply_code, returned[0].reply_text) == (312, "NO_ROUTE")


def test_publish_follows_queue_and_exchange_redeclared_on_same_channel(conn):
    """warren caches the exchange and the default-exchange queue a channel
    last published to; deleting and declaring them again, on the same or
    another channel, must be seen by the very next publish."""
    ch = conn.channel()
    other = conn.channel()
    ch.confirm_delivery()
    q, x = uid("cacheq"), uid("cachex")
    ch.queue_declare(q)
    ch.exchange_declare(x, "fanout")
    ch.queue_bind(q, x)
    ch.basic_publish("", q, b"1")
    ch.basic_publish(x, "", b"2")
    assert [b for _, b in get_all(ch, q, auto_ack=True)] == ["1", "2"]
    # Queue deleted and declared again by another channel: a new queue.
    other.queue_delete(q)
    other.queue_declare(q)
    ch.basic_publish("", q, b"3")
    assert [b for _, b in get_all(other, q, auto_ack=True)] == ["3"]
    # The fanout exchange lost its binding with the old queue.
    ch.basic_publish(x, "", b"4")
    assert get_all(other, q, auto_ack=True) == []
    # Exchange deleted: the next publish to it fails with 404.
    other.exchange_delete(x)
    channel_error(ch, lambda: ch.basic_publish(x, "", b"5"), 404,
                  "NOT_FOUND - no exchange '%s' in vhost '/'" % x)
    # Queue deleted: a default-exchange publish is dropped (returned).
    ch = conn.channel()
    returned = []
    ch.add_on_return_callback(lambda c, m, p, b: returned.append(b))
    ch.basic_publish("", q, b"6")
    other.queue_delete(q)
    ch.basic_publish("", q, b"7", mandatory=True)
    assert pump(conn, lambda: returned)
    assert returned == [b"7"]


def test_non_mandatory_unroutable_is_dropped_silently(conn):
    ch = conn.channel()
    returned = []
    ch.add_on_return_callback(lambda *a: returned.append(a))
    ch.confirm_delivery()
    ch.basic_publish("amq.direct", uid("nowhere"), b"x")  # acked, not returned
    conn.process_data_events(0.2)
    assert returned == []


def test_return_comes_before_confirm_ack(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    c.rpc(1, "confirm.select", False)
    q = raw_queue(c)
    c.publish(1, "amq.direct", "nowhere-" + q, b"unroutable", mandatory=True)
    c.publish(1, "", q, b"routable", mandatory=True)
    f = c.read_method()
    assert f.name == "basic.return", f
    assert f.args == [312, "NO_ROUTE", "amq.direct", "nowhere-" + q]
    h, body = c.read_content()
    assert body == b"unroutable"
    covered = set()
    while covered != {1, 2}:
        f = c.read_method()
        assert f.name == "basic.ack", f
        tag, multiple = f.args
        covered |= set(range(1, tag + 1)) if multiple else {tag}


def test_immediate_is_540_connection_error(conn):
    ch = conn.channel()
    q = new_queue(ch)
    # pika has no immediate flag on BlockingChannel.basic_publish: go raw.
    impl = ch._impl
    impl._send_method(pika.spec.Basic.Publish(exchange="", routing_key=q,
                                              immediate=True),
                      (pika.BasicProperties(), b"x"))
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as ei:
        pump(conn, lambda: False, timeout=2)
        ch.queue_declare(q, passive=True)
    assert ei.value.reply_code == 540
    assert ei.value.reply_text == "NOT_IMPLEMENTED - immediate=true"


def test_immediate_raw_close_fields(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    q = raw_queue(c)
    data = rawamqp.method_frame(1, "basic.publish", 0, "", q, False, True)
    data += rawamqp.header_frame(1, 1) + rawamqp.body_frame(1, b"x")
    c.send(data)
    expect_connection_close(c, 540, "NOT_IMPLEMENTED - immediate=true", 60, 40)


def test_publish_to_amq_default_name_is_404(raw):
    """'amq.default' is not an alias of the default exchange in RabbitMQ 3.10."""
    c = raw()
    c.handshake()
    c.open_channel(1)
    c.publish(1, "amq.default", "k", b"x")
    f = c.wait_channel_close(1)
    assert f.args == [404, "NOT_FOUND - no exchange 'amq.default' in vhost '/'",
                      60, 40]


# ---------------------------------------------------------------------------
# Consumers
# ---------------------------------------------------------------------------

def test_consume_server_generated_tag(raw):
    import re
    c = raw()
    c.handshake()
    c.open_channel(1)
    q = raw_queue(c)
    f = c.rpc(1, "basic.consume", 0, q, "", False, False, False, False, {})
    assert re.fullmatch(r"amq\.ctag-[A-Za-z0-9_\-]{22}", f.args[0]), f.args


def test_consume_client_tag_and_delivery(conn):
    ch = conn.channel()
    q = new_queue(ch, 3)
    got = []
    tag = ch.basic_consume(q, lambda c, m, p, b: got.append((m, b)),
                           consumer_tag="my-tag", auto_ack=True)
    assert tag == "my-tag"
    assert pump(conn, lambda: len(got) == 3)
    assert [b for _, b in got] == [b"m1", b"m2", b"m3"]
    assert all(m.consumer_tag == "my-tag" for m, _ in got)
    assert [m.delivery_tag for m, _ in got] == [1, 2, 3]
    assert all(not m.redelivered for m, _ in got)
    assert all(m.exchange == "" and m.routing_key == q for m, _ in got)


def test_duplicate_consumer_tag_raw_is_530_connection_error(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    q = raw_queue(c)
    c.rpc(1, "basic.consume", 0, q, "dup", False, False, False, False, {})
    c.send_method(1, "basic.consume", 0, q, "dup", False, False, False, False, {})
    expect_connection_close(c, 530, "NOT_ALLOWED - attempt to reuse consumer tag 'dup'",
                            60, 20)


def test_same_consumer_tag_on_other_channel_is_allowed(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    c.open_channel(2)
    q = raw_queue(c)
    c.rpc(1, "basic.consume", 0, q, "same", False, False, False, False, {})
    f = c.rpc(2, "basic.consume", 0, q, "same", False, False, False, False, {})
    assert f.args == ["same"]


def test_consume_missing_queue_is_404(ch):
    q = uid("missing")
    channel_error(ch, lambda: ch.basic_consume(q, lambda *a: None), 404,
                  "NOT_FOUND - no queue '%s' in vhost '/'" % q)


def test_no_ack_consumer_messages_gone(conn):
    ch = conn.channel()
    q = new_queue(ch, 2)
    got = []
    tag = ch.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=True)
    assert pump(conn, lambda: len(got) == 2)
    ch.basic_cancel(tag)
    ch.close()
    ch2 = conn.channel()
    assert ch2.queue_declare(q, passive=True).method.message_count == 0


def test_exclusive_consumer_blocks_others_403(connect):
    c = connect()
    ch = c.channel()
    q = uid("q")
    ch.queue_declare(q, auto_delete=False)
    ch.basic_consume(q, lambda *a: None, exclusive=True)
    other = connect().channel()
    channel_error(other, lambda: other.basic_consume(q, lambda *a: None), 403,
                  "ACCESS_REFUSED - queue '%s' in vhost '/' in exclusive use" % q)
    # same channel, second consumer: also refused
    channel_error(ch, lambda: ch.basic_consume(q, lambda *a: None), 403,
                  "ACCESS_REFUSED - queue '%s' in vhost '/' in exclusive use" % q)
    connect().channel().queue_delete(q)


def test_exclusive_consume_when_others_exist_403(connect):
    ch = connect().channel()
    q = uid("q")
    ch.queue_declare(q, auto_delete=False)
    ch.basic_consume(q, lambda *a: None)
    other = connect().channel()
    channel_error(other, lambda: other.basic_consume(q, lambda *a: None, exclusive=True),
                  403, "ACCESS_REFUSED - queue '%s' in vhost '/' in exclusive use" % q)
    connect().channel().queue_delete(q)


def test_exclusive_consumer_released_on_cancel(connect):
    ch = connect().channel()
    q = uid("q")
    ch.queue_declare(q, auto_delete=False)
    tag = ch.basic_consume(q, lambda *a: None, exclusive=True)
    ch.basic_cancel(tag)
    other = connect().channel()
    other.basic_consume(q, lambda *a: None)
    other.queue_delete(q)


def test_no_local_raw(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    q = raw_queue(c)
    f = c.rpc(1, "basic.consume", 0, q, "nl", True, True, False, False, {})
    assert f.args == ["nl"]
    c.publish(1, "", q, b"mine")
    f = c.expect("basic.deliver", 1)
    assert f.args[0] == "nl"
    _h, body = c.read_content()
    assert body == b"mine"


def test_consumer_priority(connect):
    """A higher-priority consumer gets every message while it has prefetch
    capacity; lower-priority consumers only get the overflow."""
    c = connect()
    q = uid("prio")
    setup = c.channel()
    setup.queue_declare(q, auto_delete=True)
    hi_ch, lo_ch = c.channel(), c.channel()
    hi_ch.basic_qos(prefetch_count=3)
    lo_ch.basic_qos(prefetch_count=100)
    hi, lo = [], []
    lo_ch.basic_consume(q, lambda ch_, m, p, b: lo.append(b),
                        arguments={"x-priority": 0})
    hi_ch.basic_consume(q, lambda ch_, m, p, b: hi.append((m, b)),
                        arguments={"x-priority": 10})
    setup.confirm_delivery()
    for i in range(3):
        setup.basic_publish("", q, b"%d" % i)
    assert pump(c, lambda: len(hi) == 3)
    c.process_data_events(0.2)
    assert [b for _, b in hi] == [b"0", b"1", b"2"] and lo == []
    for i in range(3, 5):
        setup.basic_publish("", q, b"%d" % i)
    assert pump(c, lambda: len(lo) == 2)
    assert lo == [b"3", b"4"] and len(hi) == 3
    hi_ch.basic_ack(hi[0][0].delivery_tag)
    setup.basic_publish("", q, b"5")
    assert pump(c, lambda: len(hi) == 4)
    assert hi[3][1] == b"5" and len(lo) == 2


def test_consumer_priority_invalid_is_406(ch):
    q = new_queue(ch)
    channel_error(ch, lambda: ch.basic_consume(q, lambda *a: None,
                                               arguments={"x-priority": "high"}),
                  406, "PRECONDITION_FAILED - invalid arg 'x-priority' for queue "
                  "'%s' in vhost '/': \"expected integer, got longstr\"" % q)


def test_round_robin_between_equal_consumers(connect):
    c = connect()
    ch = c.channel()
    q = new_queue(ch)
    a, b = [], []
    ch.basic_consume(q, lambda c_, m, p, body: a.append(body), auto_ack=True)
    ch.basic_consume(q, lambda c_, m, p, body: b.append(body), auto_ack=True)
    for i in range(10):
        ch.basic_publish("", q, b"%d" % i)
    assert pump(c, lambda: len(a) + len(b) == 10)
    assert len(a) == 5 and len(b) == 5
    assert sorted(a + b, key=int) == [b"%d" % i for i in range(10)]


def test_cancel_and_cancel_ok(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    q = uid("q")
    c.rpc(1, "queue.declare", 0, q, False, False, True, False, False, {})
    c.rpc(1, "basic.consume", 0, q, "ct", False, True, False, False, {})
    f = c.rpc(1, "basic.cancel", "ct", False)
    assert f.args == ["ct"]
    c.publish(1, "", q, b"after-cancel")
    # no delivery: the message stays in the queue
    f = c.rpc(1, "queue.declare", 0, q, True, False, False, False, False, {})
    assert f.args[2] == 0
    c.send_method(1, "basic.get", 0, q, True)
    c.expect("basic.get-ok", 1)


def test_cancel_unknown_tag_is_ok(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    f = c.rpc(1, "basic.cancel", "never-existed", False)
    assert f.args == ["never-existed"]


def test_cancel_keeps_unacked_deliveries_ackable(conn):
    ch = conn.channel()
    q = new_queue(ch, 2)
    got = []
    tag = ch.basic_consume(q, lambda c, m, p, b: got.append(m))
    assert pump(conn, lambda: len(got) == 2)
    ch.basic_cancel(tag)
    ch.basic_ack(got[0].delivery_tag)
    ch.basic_ack(got[1].delivery_tag)
    assert ch.queue_declare(q, passive=True).method.message_count == 0


def test_server_cancel_when_queue_deleted_pika(connect):
    c = connect()
    ch = c.channel()
    q = uid("q")
    ch.queue_declare(q)
    cancelled = []
    ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method))
    tag = ch.basic_consume(q, lambda *a: None)
    other = connect().channel()
    other.queue_delete(q)
    assert pump(c, lambda: cancelled)
    assert cancelled[0].consumer_tag == tag
    assert ch.is_open


def test_server_cancel_raw(raw, connect):
    c = raw()
    c.handshake()
    c.open_channel(1)
    q = uid("q")
    c.rpc(1, "queue.declare", 0, q, False, False, False, False, False, {})
    c.rpc(1, "basic.consume", 0, q, "victim", False, False, False, False, {})
    connect().channel().queue_delete(q)
    f = c.expect("basic.cancel", 1)
    # RabbitMQ sets no-wait: the client must not answer with cancel-ok
    assert f.args == ["victim", True]
    # channel stays usable
    f = c.rpc(1, "queue.declare", 0, "", False, False, True, True, False, {})
    assert f.args[0].startswith("amq.gen-")


# ---------------------------------------------------------------------------
# basic.get
# ---------------------------------------------------------------------------

def test_get_and_get_empty(ch):
    q = new_queue(ch)
    ch.confirm_delivery()
    for i in range(3):
        ch.basic_publish("", q, b"g%d" % i, pika.BasicProperties(message_id=str(i)))
    counts = []
    bodies = []
    for _ in range(3):
        m, p, b = ch.basic_get(q, auto_ack=True)
        counts.append(m.message_count)
        bodies.append(b)
        assert m.exchange == "" and m.routing_key == q and not m.redelivered
    assert counts == [2, 1, 0]
    assert bodies == [b"g0", b"g1", b"g2"]
    assert ch.basic_get(q) == (None, None, None)


def test_get_empty_raw(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    q = raw_queue(c)
    c.send_method(1, "basic.get", 0, q, True)
    f = c.expect("basic.get-empty", 1)
    assert f.args == [""]


def test_get_delivery_tags_increase_per_channel(conn):
    ch = conn.channel()
    q = new_queue(ch, 4)
    tags = [ch.basic_get(q)[0].delivery_tag for _ in range(2)]
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append(m.delivery_tag))
    assert pump(conn, lambda: len(got) == 2)
    assert tags + got == [1, 2, 3, 4]


# ---------------------------------------------------------------------------
# Ack / nack / reject
# ---------------------------------------------------------------------------

def test_ack_single_and_multiple(conn):
    ch = conn.channel()
    q = new_queue(ch, 5)
    ms = [m for m, _ in get_all(ch, q)]
    ch.basic_ack(ms[2].delivery_tag, multiple=True)  # 1..3
    ch.basic_ack(ms[4].delivery_tag)                 # 5
    ch.close()
    ch = conn.channel()
    left = get_all(ch, q, auto_ack=True)
    assert [(b, m.redelivered) for m, b in left] == [("m4", True)]


def test_nack_and_reject_without_requeue_drop(conn):
    ch = conn.channel()
    q = new_queue(ch, 4)
    ms = [m for m, _ in get_all(ch, q)]
    ch.basic_reject(ms[0].delivery_tag, requeue=False)
    ch.basic_nack(ms[2].delivery_tag, multiple=True, requeue=False)
    ch.basic_ack(ms[3].delivery_tag)
    ch.close()
    ch = conn.channel()
    assert ch.queue_declare(q, passive=True).method.message_count == 0


def test_requeue_restores_original_position(conn):
    """publish 1..5, get all unacked, nack 2 and 4 with requeue: the queue
    holds 2, 4 (redelivered) and a later publish 6 comes after them."""
    ch = conn.channel()
    q = new_queue(ch, 5)
    ms = {b: m for m, b in get_all(ch, q)}
    ch.basic_nack(ms["m4"].delivery_tag, requeue=True)
    ch.basic_nack(ms["m2"].delivery_tag, requeue=True)
    ch.basic_publish("", q, b"m6")
    got = []
    assert wait_until(lambda: got.extend(get_all(ch, q, auto_ack=True)) or len(got) >= 3)
    assert [(b, m.redelivered) for m, b in got] == [
        ("m2", True), ("m4", True), ("m6", False)]


def test_reject_requeue_goes_before_ready_messages(conn):
    ch = conn.channel()
    q = new_queue(ch, 5)
    m1, _, _ = ch.basic_get(q)
    m2, _, _ = ch.basic_get(q)
    ch.basic_reject(m2.delivery_tag, requeue=True)
    got = []
    assert wait_until(lambda: got.extend(get_all(ch, q, auto_ack=True)) or len(got) >= 4)
    assert [(b, m.redelivered) for m, b in got] == [
        ("m2", True), ("m3", False), ("m4", False), ("m5", False)]


def test_nack_multiple_requeue(conn):
    ch = conn.channel()
    q = new_queue(ch, 5)
    ms = [m for m, _ in get_all(ch, q)]
    ch.basic_nack(ms[2].delivery_tag, multiple=True, requeue=True)  # 1..3
    got = []
    assert wait_until(lambda: got.extend(get_all(ch, q, auto_ack=True)) or len(got) >= 3)
    assert [(b, m.redelivered) for m, b in got] == [
        ("m1", True), ("m2", True), ("m3", True)]


def test_unknown_delivery_tag_is_406(connect):
    for method in ("ack", "nack", "reject"):
        ch = connect().channel()
        q = new_queue(ch, 1)
        m, _, _ = ch.basic_get(q)
        fn = {"ack": lambda: ch.basic_ack(m.delivery_tag + 41),
              "nack": lambda: ch.basic_nack(m.delivery_tag + 41),
              "reject": lambda: ch.basic_reject(m.delivery_tag + 41)}[method]
        fn()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
            ch.queue_declare(q, passive=True)
        assert ei.value.reply_code == 406
        assert ei.value.reply_text == "PRECONDITION_FAILED - unknown delivery tag 42"


def test_unknown_delivery_tag_raw_close_fields(raw):
    c = raw()
    c.handshake()
    for ch, (name, args, mid) in enumerate([
            ("basic.ack", (42, False), 80), ("basic.ack", (42, True), 80),
            ("basic.nack", (7, False, True), 120), ("basic.reject", (7, True), 90),
            ("basic.ack", (0, False), 80)], start=1):
        c.open_channel(ch)
        c.send_method(ch, name, *args)
        f = c.wait_channel_close(ch)
        assert f.args == [406, "PRECONDITION_FAILED - unknown delivery tag %d" % args[0],
                          60, mid], (name, args, f)


def test_ack_zero_multiple_with_nothing_outstanding_is_ok(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    c.send_method(1, "basic.ack", 0, True)
    f = c.rpc(1, "queue.declare", 0, "", False, False, True, True, False, {})
    assert f.name == "queue.declare-ok"


def test_ack_zero_multiple_acks_everything(conn):
    ch = conn.channel()
    q = new_queue(ch, 3)
    get_all(ch, q)
    ch.basic_ack(0, multiple=True)
    ch.close()
    ch = conn.channel()
    assert ch.queue_declare(q, passive=True).method.message_count == 0


def test_double_ack_is_406(conn):
    ch = conn.channel()
    q = new_queue(ch, 1)
    m, _, _ = ch.basic_get(q)
    ch.basic_ack(m.delivery_tag)
    ch.basic_ack(m.delivery_tag)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, passive=True)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == "PRECONDITION_FAILED - unknown delivery tag 1"


def test_ack_of_no_ack_delivery_is_406(conn):
    ch = conn.channel()
    q = new_queue(ch, 1)
    m, _, _ = ch.basic_get(q, auto_ack=True)
    ch.basic_ack(m.delivery_tag)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, passive=True)
    assert ei.value.reply_code == 406


def test_ack_on_other_channel_is_406(conn):
    a, b = conn.channel(), conn.channel()
    q = new_queue(a, 1)
    m, _, _ = a.basic_get(q)
    b.basic_ack(m.delivery_tag)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        b.queue_declare(q, passive=True)
    assert ei.value.reply_code == 406
    a.basic_ack(m.delivery_tag)


# ---------------------------------------------------------------------------
# Recover
# ---------------------------------------------------------------------------

def test_recover_requeue_true(conn):
    ch = conn.channel()
    q = new_queue(ch, 5)
    for _ in range(3):
        ch.basic_get(q)
    ch.basic_recover(requeue=True)
    got = get_all(ch, q, auto_ack=True)
    assert [(b, m.redelivered) for m, b in got] == [
        ("m1", True), ("m2", True), ("m3", True), ("m4", False), ("m5", False)]


def test_recover_redelivers_to_consumer(conn):
    ch = conn.channel()
    q = new_queue(ch, 2)
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append((m.redelivered, b)))
    assert pump(conn, lambda: len(got) == 2)
    ch.basic_recover(requeue=True)
    assert pump(conn, lambda: len(got) == 4)
    assert got == [(False, b"m1"), (False, b"m2"), (True, b"m1"), (True, b"m2")]


def test_recover_requeue_false_is_540(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    c.send_method(1, "basic.recover", False)
    expect_connection_close(c, 540, "NOT_IMPLEMENTED - requeue=false", 60, 110)


def test_recover_async_requeue_false_is_540(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    c.send_method(1, "basic.recover-async", False)
    expect_connection_close(c, 540, "NOT_IMPLEMENTED - requeue=false", 60, 100)


def test_recover_ok_raw(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    f = c.rpc(1, "basic.recover", True)
    assert f.name == "basic.recover-ok"


# ---------------------------------------------------------------------------
# QoS
# ---------------------------------------------------------------------------

def _consume_counts(conn, chans_and_queues, expect_total, settle=0.3):
    """Start one consumer per (channel, queue); wait until expect_total
    deliveries arrived, then a little longer to catch any excess."""
    counts = {}
    for key, (ch, q) in chans_and_queues.items():
        counts[key] = []
        ch.basic_consume(q, (lambda k: lambda c, m, p, b: counts[k].append(m))(key))
    pump(conn, lambda: sum(len(v) for v in counts.values()) >= expect_total)
    pump(conn, lambda: False, timeout=settle)
    return counts


def test_qos_per_consumer(conn):
    """global=false: prefetch_count applies to each new consumer separately."""
    ch = conn.channel()
    q1, q2 = new_queue(ch, 5), new_queue(ch, 5)
    ch.basic_qos(prefetch_count=2, global_qos=False)
    counts = _consume_counts(conn, {"a": (ch, q1), "b": (ch, q2)}, 4)
    assert len(counts["a"]) == 2 and len(counts["b"]) == 2
    ch.basic_ack(counts["a"][0].delivery_tag)
    pump(conn, lambda: len(counts["a"]) == 3)
    conn.process_data_events(0.2)
    assert len(counts["a"]) == 3 and len(counts["b"]) == 2


def test_qos_global_shared_by_channel(conn):
    """global=true: prefetch_count is shared by all consumers on the channel."""
    ch = conn.channel()
    q1, q2 = new_queue(ch, 5), new_queue(ch, 5)
    ch.basic_qos(prefetch_count=3, global_qos=True)
    counts = _consume_counts(conn, {"a": (ch, q1), "b": (ch, q2)}, 3)
    assert len(counts["a"]) + len(counts["b"]) == 3


def test_qos_global_and_per_consumer_combined(conn):
    ch = conn.channel()
    q1, q2 = new_queue(ch, 5), new_queue(ch, 5)
    ch.basic_qos(prefetch_count=3, global_qos=True)
    ch.basic_qos(prefetch_count=1, global_qos=False)
    counts = _consume_counts(conn, {"a": (ch, q1), "b": (ch, q2)}, 2)
    assert len(counts["a"]) == 1 and len(counts["b"]) == 1


def test_qos_applies_to_consumers_created_after(conn):
    """Per-consumer prefetch is fixed when the consumer is created."""
    ch = conn.channel()
    q1, q2 = new_queue(ch, 5), new_queue(ch, 5)
    ch.basic_qos(prefetch_count=1)
    a = []
    ch.basic_consume(q1, lambda c, m, p, b: a.append(m))
    ch.basic_qos(prefetch_count=4)
    b = []
    ch.basic_consume(q2, lambda c, m, p, b_: b.append(m))
    pump(conn, lambda: len(a) + len(b) >= 5)
    pump(conn, lambda: False, timeout=0.3)
    assert len(a) == 1 and len(b) == 4


def test_qos_zero_is_unlimited(conn):
    ch = conn.channel()
    q = new_queue(ch, 20)
    ch.basic_qos(prefetch_count=0)
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append(m))
    assert pump(conn, lambda: len(got) == 20)


def test_qos_does_not_limit_no_ack_consumers(conn):
    ch = conn.channel()
    q = new_queue(ch, 10)
    ch.basic_qos(prefetch_count=1)
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append(m), auto_ack=True)
    assert pump(conn, lambda: len(got) == 10)


def test_qos_does_not_limit_basic_get(ch):
    q = new_queue(ch, 3)
    ch.basic_qos(prefetch_count=1)
    assert len(get_all(ch, q)) == 3


def test_qos_prefetch_size_is_540(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    c.send_method(1, "basic.qos", 1000, 0, False)
    expect_connection_close(c, 540, "NOT_IMPLEMENTED - prefetch_size!=0 (1000)", 60, 10)


# ---------------------------------------------------------------------------
# Requeue when the consumer goes away
# ---------------------------------------------------------------------------

def test_unacked_requeued_when_channel_closes(connect):
    c = connect()
    ch = c.channel()
    q = uid("q")
    ch.queue_declare(q, auto_delete=False)
    ch.confirm_delivery()
    for i in range(1, 4):
        ch.basic_publish("", q, b"m%d" % i)
    cons = c.channel()
    got = []
    cons.basic_consume(q, lambda c_, m, p, b: got.append(b))
    assert pump(c, lambda: len(got) == 3)
    cons.close()
    other = connect().channel()
    res = []
    assert wait_until(lambda: res.extend(get_all(other, q, auto_ack=True)) or len(res) >= 3)
    assert [(b, m.redelivered) for m, b in res] == [
        ("m1", True), ("m2", True), ("m3", True)]
    other.queue_delete(q)


def test_unacked_requeued_when_connection_dies(connect, raw):
    setup = connect().channel()
    q = uid("q")
    setup.queue_declare(q, auto_delete=False)
    setup.confirm_delivery()
    for i in range(1, 4):
        setup.basic_publish("", q, b"m%d" % i)
    r = raw()
    r.handshake()
    r.open_channel(1)
    r.rpc(1, "basic.consume", 0, q, "", False, False, False, False, {})
    for i in range(3):
        r.expect("basic.deliver", 1)
        r.read_content()
    r.close()  # abrupt close, no connection.close
    res = []
    assert wait_until(lambda: res.extend(get_all(setup, q, auto_ack=True)) or len(res) >= 3)
    assert [(b, m.redelivered) for m, b in res] == [
        ("m1", True), ("m2", True), ("m3", True)]
    setup.queue_delete(q)


def test_unacked_from_cancelled_consumer_requeued_on_channel_close(connect):
    c = connect()
    ch = c.channel()
    q = uid("q")
    ch.queue_declare(q, auto_delete=False)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"only")
    cons = c.channel()
    got = []
    tag = cons.basic_consume(q, lambda c_, m, p, b: got.append(b))
    assert pump(c, lambda: got)
    cons.basic_cancel(tag)
    cons.close()
    res = []
    assert wait_until(lambda: res.extend(get_all(ch, q, auto_ack=True)) or res)
    assert [(b, m.redelivered) for m, b in res] == [("only", True)]
    ch.queue_delete(q)


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------

ALL_PROPS = dict(
    content_type="application/json",
    content_encoding="gzip",
    headers=None,  # filled in by the test
    delivery_mode=2,
    priority=7,
    correlation_id="corr-123",
    reply_to="amq.rabbitmq.reply-to.fake",
    expiration="600000",
    message_id="msg-\u00e9-1",
    timestamp=1700000000,
    type="order.created",
    user_id="guest",
    app_id="warren-tests",
    cluster_id="cluster-x",
)

HEADERS = {
    "int": 42,
    "negint": -7,
    "long": 2 ** 40,
    "bool_t": True,
    "bool_f": False,
    "str": "h\u00e9llo",
    "emptystr": "",
    "bytes": b"\x00\x01\xfe\xff",
    "decimal": decimal.Decimal("3.14"),
    "timestamp": datetime.datetime(2024, 1, 2, 3, 4, 5),
    "nested": {"a": 1, "b": {"c": "deep", "d": [1, "two", {"e": None}]}},
    "list": [1, "two", True, None, {"k": "v"}, [3, 4]],
    "emptylist": [],
    "emptytable": {},
    "void": None,
    "x-retry-count": 3,
}


def test_all_properties_round_trip_pika(conn):
    ch = conn.channel()
    q = new_queue(ch)
    props = dict(ALL_PROPS)
    props["headers"] = HEADERS
    ch.confirm_delivery()
    ch.basic_publish("", q, b"payload", pika.BasicProperties(**props))
    m, p, body = ch.basic_get(q, auto_ack=True)
    assert body == b"payload"
    for k, v in props.items():
        if k == "headers":
            continue
        assert getattr(p, k) == v, k
    h = p.headers
    assert h["int"] == 42 and h["negint"] == -7 and h["long"] == 2 ** 40
    assert h["bool_t"] is True and h["bool_f"] is False
    assert h["str"] == "h\u00e9llo" and h["emptystr"] == ""
    assert h["bytes"] == b"\x00\x01\xfe\xff"
    assert h["decimal"] == decimal.Decimal("3.14")
    assert h["timestamp"] == datetime.datetime(2024, 1, 2, 3, 4, 5)
    assert h["nested"] == {"a": 1, "b": {"c": "deep", "d": [1, "two", {"e": None}]}}
    assert h["list"] == [1, "two", True, None, {"k": "v"}, [3, 4]]
    assert h["emptylist"] == [] and h["emptytable"] == {} and h["void"] is None
    assert h["x-retry-count"] == 3
    assert set(h) == set(HEADERS)


def test_no_properties_round_trip(ch):
    q = new_queue(ch)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"bare")
    m, p, body = ch.basic_get(q, auto_ack=True)
    assert body == b"bare"
    for k in ALL_PROPS:
        assert getattr(p, k) is None, k


def _all_props_bytes(headers_table):
    parts = [
        rawamqp.shortstr("text/plain"),               # content-type     bit 15
        rawamqp.shortstr("utf-8"),                    # content-encoding bit 14
        headers_table,                                # headers          bit 13
        struct.pack(">B", 1),                         # delivery-mode    bit 12
        struct.pack(">B", 9),                         # priority         bit 11
        rawamqp.shortstr("c-1"),                      # correlation-id   bit 10
        rawamqp.shortstr("reply.q"),                  # reply-to         bit 9
        rawamqp.shortstr("123456"),                   # expiration       bit 8
        rawamqp.shortstr("m-1"),                      # message-id       bit 7
        struct.pack(">Q", 1234567890123),             # timestamp        bit 6
        rawamqp.shortstr("t"),                        # type             bit 5
        rawamqp.shortstr("guest"),                    # user-id          bit 4
        rawamqp.shortstr("app"),                      # app-id           bit 3
        rawamqp.shortstr("cl"),                       # cluster-id       bit 2
    ]
    return 0xFFFC, b"".join(parts)


RAW_HEADERS = {
    "t": Typed("t", True),
    "b": Typed("b", -5),
    "B": Typed("B", 250),
    "s": Typed("s", -300),
    "u": Typed("u", 65000),
    "I": Typed("I", -70000),
    "i": Typed("i", 4000000000),
    "l": Typed("l", -(2 ** 62)),
    "f": Typed("f", 1.5),
    "d": Typed("d", -2.25),
    "D": Typed("D", (3, -12345)),
    "S": Typed("S", "long string \u2603"),
    "x": Typed("x", b"\x00\xff binary"),
    "T": Typed("T", 1700000000),
    "F": Typed("F", {"inner": Typed("I", 1), "deeper": Typed("F", {"v": Typed("V", None)})}),
    "A": Typed("A", [Typed("I", 1), Typed("S", "two"), Typed("A", []), Typed("F", {})]),
    "V": Typed("V", None),
}


@pytest.mark.parametrize("via", ["get", "consume"])
def test_all_properties_and_field_types_byte_exact(raw, via):
    """The content header (all 14 properties, headers with every field type)
    comes back byte-for-byte as it was published."""
    c = raw()
    c.handshake()
    c.open_channel(1)
    q = raw_queue(c)
    flags, props = _all_props_bytes(rawamqp.table(RAW_HEADERS))
    body = os.urandom(1000)
    c.publish(1, "", q, body, flags=flags, props=props)
    if via == "get":
        c.send_method(1, "basic.get", 0, q, True)
        c.expect("basic.get-ok", 1)
    else:
        c.rpc(1, "basic.consume", 0, q, "bx", False, True, False, False, {})
        c.expect("basic.deliver", 1)
    h, got = c.read_content()
    assert got == body
    assert h.class_id == 60 and h.body_size == len(body)
    assert h.flags == flags
    assert h.props == props
    decoded, _ = rawamqp.decode_table(h.props, 1 + 10 + 1 + 5)
    assert rawamqp.table(decoded) == rawamqp.table(RAW_HEADERS)


def test_user_id_must_match_authenticated_user(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    q = raw_queue(c)
    c.publish(1, "", q, b"x", flags=1 << 4, props=rawamqp.shortstr("mallory"))
    f = c.wait_channel_close(1)
    assert f.args == [406, "PRECONDITION_FAILED - user_id property set to 'mallory' "
                      "but authenticated user was 'guest'", 60, 40]


@pytest.mark.parametrize("expiration,detail", [
    ("abc", "no_integer"),
    ("", "no_integer"),
    ("-1", "{value_negative,-1}"),
    ("1.5", "{leftover_string,\".5\"}"),
])
def test_invalid_expiration_is_406(raw, expiration, detail):
    c = raw()
    c.handshake()
    c.open_channel(1)
    q = raw_queue(c)
    c.publish(1, "", q, b"x", flags=1 << 8, props=rawamqp.shortstr(expiration))
    f = c.wait_channel_close(1)
    assert f.args == [406, "PRECONDITION_FAILED - invalid expiration '%s': %s"
                      % (expiration, detail), 60, 40]


def test_invalid_delivery_mode_is_406(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    q = raw_queue(c)
    c.publish(1, "", q, b"x", flags=1 << 12, props=bytes([5]))
    f = c.wait_channel_close(1)
    assert f.args == [406, "PRECONDITION_FAILED - invalid message: "
                      "{delivery_mode_unknown,5}", 60, 40]


def test_expiration_zero_on_idle_queue_expires_immediately(ch):
    q = new_queue(ch)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"gone", pika.BasicProperties(expiration="0"))
    time.sleep(0.05)
    assert ch.basic_get(q, auto_ack=True)[0] is None


def test_expiration_zero_delivered_to_waiting_consumer(conn):
    ch = conn.channel()
    q = new_queue(ch)
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=True)
    ch.basic_publish("", q, b"now", pika.BasicProperties(expiration="0"))
    assert pump(conn, lambda: got)
    assert got == [b"now"]
