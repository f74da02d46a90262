"""Quorum queues (x-queue-type: quorum) on a single node.

The oracle is RabbitMQ 3.10.8 as captured in QQ-BEHAVIOUR.md (reply codes
and texts, where requeued messages go, x-delivery-count, dead-lettering),
except where warren follows RabbitMQ 3.13/4.x: with no x-delivery-limit the
default limit is 20 (RabbitMQ 4.0), not unlimited.

- declare: only durable, non-exclusive, non-auto-delete, named queues; the
  arguments a quorum queue does not take are refused; redeclares must be
  equivalent (type, delivery limit)
- publish (confirms, mandatory), consume, prefetch, basic.get with its
  x-delivery-count header
- returns: reject/nack/recover go to the back, a closed channel's messages
  to the front; x-delivery-limit and dead-lettering (delivery_limit,
  rejected, expired, maxlen), x-overflow reject-publish
- global qos and queue.delete if-empty / if-unused are not supported (540)
- the Raft log: what survives SIGKILL and SIGTERM, and queue.delete removes
  its directory
- single active consumer, consumer priorities
"""
import glob
import os
import time

import pika
import pika.exceptions
import pytest

from conftest import start_warren
from helpers import channel_error, connection_error, pump, uid, wait_until

PF = "PRECONDITION_FAILED - "
QQ = {"x-queue-type": "quorum"}


def qq_args(**extra):
    a = dict(QQ)
    for k, v in extra.items():
        a["x-" + k.replace("_", "-")] = v
    return a


def declare_qq(ch, q=None, **extra):
    q = q or uid("qq")
    ok = ch.queue_declare(q, durable=True, arguments=qq_args(**extra))
    assert ok.method.queue == q
    return q


def publish(ch, q, body, persistent=True, exchange="", **props):
    ch.basic_publish(exchange, q, body if isinstance(body, bytes) else body.encode(),
                     pika.BasicProperties(delivery_mode=2 if persistent else 1, **props))


def bodies(ch, q, limit=200):
    """Ready bodies of q, consumed with auto-ack get."""
    out = []
    for _ in range(limit):
        m, _p, body = ch.basic_get(q, auto_ack=True)
        if m is None:
            break
        out.append(body.decode())
    return out


def count(ch, q):
    return ch.queue_declare(q, passive=True).method.message_count


def dlx_pair(ch):
    """A fanout dead-letter exchange bound to a classic queue."""
    dlx, dlq = uid("dlx"), uid("dlq")
    ch.exchange_declare(dlx, "fanout", auto_delete=True)
    ch.queue_declare(dlq, exclusive=True)
    ch.queue_bind(dlq, dlx)
    return dlx, dlq


def get_dead(ch, dlq, timeout=3.0):
    got = []

    def one():
        m, p, body = ch.basic_get(dlq, auto_ack=True)
        if m is not None:
            got.append((m, p, body))
        return bool(got)

    assert wait_until(one, timeout), "nothing dead-lettered into %s" % dlq
    return got[0]


def assert_death(m, p, q, reason, dlx):
    assert m.exchange == dlx and m.routing_key == q
    h = p.headers
    assert "x-delivery-count" not in h, h
    [death] = h["x-death"]
    assert death["reason"] == reason, h
    assert death["queue"] == q and death["count"] == 1
    assert death["exchange"] == "" and death["routing-keys"] == [q]
    assert h["x-first-death-reason"] == reason
    assert h["x-first-death-queue"] == q
    assert h["x-first-death-exchange"] == ""


def delete_qq(ch, q):
    """Deletes q once what is in flight for it is applied: a basic.get goes
    through the queue's log, so its answer comes after the commands proposed
    before it (returns of a channel just closed, settles).  Deleting a quorum
    queue with those in flight can crash warren (see
    test_delete_right_after_ack_and_channel_close)."""
    ch.basic_get(q, auto_ack=True)
    ch.queue_delete(q)


@pytest.fixture
def warren_only(broker):
    if broker.external:
        pytest.skip("warren only")
    return broker


# ---------------------------------------------------------------- declare

def test_declare_durable_and_passive_redeclare(connect):
    c = connect()
    ch = c.channel()
    q = uid("qd")
    ok = ch.queue_declare(q, durable=True, arguments=QQ)
    assert (ok.method.queue, ok.method.message_count, ok.method.consumer_count) == (q, 0, 0)
    # identical redeclare
    ok = ch.queue_declare(q, durable=True, arguments=QQ)
    assert ok.method.message_count == 0
    # passive ignores arguments and properties
    assert ch.queue_declare(q, passive=True).method.queue == q
    assert ch.queue_declare(q, passive=True, arguments={"x-queue-type": "classic"}).method.queue == q
    assert ch.queue_declare(q, passive=True, durable=False).method.queue == q
    channel_error(ch, lambda: ch.queue_declare(uid("qd.none"), passive=True), 404)
    delete_qq(c.channel(), q)


@pytest.mark.parametrize("props,what", [
    (dict(durable=False), "non-durable"),
    (dict(durable=True, exclusive=True), "exclusive-owner"),
    (dict(durable=True, auto_delete=True), "auto-delete"),
    # all three: auto-delete is reported first
    (dict(durable=False, exclusive=True, auto_delete=True), "auto-delete"),
])
def test_declare_invalid_property(ch, props, what):
    q = uid("qd")
    channel_error(ch, lambda: ch.queue_declare(q, arguments=QQ, **props), 406,
                  PF + "invalid property '%s' for queue '%s' in vhost '/'" % (what, q))


@pytest.mark.parametrize("props", [dict(durable=True), dict(durable=False, exclusive=True)])
def test_declare_server_named_refused(ch, props):
    channel_error(ch, lambda: ch.queue_declare("", arguments=QQ, **props), 406,
                  PF + "Cannot declare a server-named queue for type rabbit_quorum_queue")


@pytest.mark.parametrize("arg,value,props", [
    ("x-max-priority", 10, dict(durable=True)),
    ("x-queue-mode", "lazy", dict(durable=True)),
    ("x-queue-mode", "default", dict(durable=True)),
    ("x-queue-master-locator", "min-masters", dict(durable=True)),
    ("x-max-age", "1D", dict(durable=True)),
    # the argument check precedes the property check
    ("x-max-priority", 10, dict(durable=False)),
    ("x-queue-mode", "lazy", dict(durable=True, exclusive=True)),
])
def test_declare_unsupported_argument(ch, arg, value, props):
    q = uid("qd")
    args = dict(QQ)
    args[arg] = value
    channel_error(ch, lambda: ch.queue_declare(q, arguments=args, **props), 406,
                  PF + "invalid arg '%s' for queue '%s' in vhost '/' of queue type "
                  "rabbit_quorum_queue" % (arg, q))


@pytest.mark.parametrize("arg,value,tail", [
    ("x-message-ttl", -1, "{value_negative,-1}"),
    ("x-max-length", -1, "{value_negative,-1}"),
    ("x-overflow", "bogus", "invalid_overflow"),
])
def test_declare_invalid_argument_values(ch, arg, value, tail):
    q = uid("qd")
    args = dict(QQ)
    args[arg] = value
    channel_error(ch, lambda: ch.queue_declare(q, durable=True, arguments=args), 406,
                  PF + "invalid arg '%s' for queue '%s' in vhost '/': %s" % (arg, q, tail))


@pytest.mark.parametrize("extra", [
    {"x-overflow": "reject-publish"}, {"x-overflow": "drop-head"},
    {"x-message-ttl": 1000}, {"x-expires": 60000}, {"x-max-length": 10},
    {"x-max-length-bytes": 1000}, {"x-single-active-consumer": True},
    {"x-delivery-limit": 0}, {"x-dead-letter-exchange": "dlx", "x-dead-letter-routing-key": "k"},
])
def test_declare_supported_arguments(connect, extra):
    ch = connect().channel()
    q = uid("qd")
    args = dict(QQ)
    args.update(extra)
    assert ch.queue_declare(q, durable=True, arguments=args).method.queue == q
    delete_qq(ch, q)


def test_redeclare_inequivalent(connect):
    c = connect()
    setup = c.channel()
    q = declare_qq(setup)
    ql = declare_qq(setup, delivery_limit=5)
    qc = uid("qd.classic")
    setup.queue_declare(qc, durable=True)
    cases = [
        (q, dict(durable=True), None,
         "inequivalent arg 'x-queue-type' for queue '%s' in vhost '/': received none but "
         "current is the value 'quorum' of type 'longstr'" % q),
        (q, dict(durable=True), {"x-queue-type": "classic"},
         "inequivalent arg 'x-queue-type' for queue '%s' in vhost '/': received 'classic' but "
         "current is 'quorum'" % q),
        (q, dict(durable=False), QQ,
         "inequivalent arg 'durable' for queue '%s' in vhost '/': received 'false' but "
         "current is 'true'" % q),
        (q, dict(durable=True, auto_delete=True), QQ,
         "inequivalent arg 'auto_delete' for queue '%s' in vhost '/': received 'true' but "
         "current is 'false'" % q),
        (q, dict(durable=True), qq_args(delivery_limit=5),
         "inequivalent arg 'x-delivery-limit' for queue '%s' in vhost '/': received the value "
         "'5' of type 'signedint' but current is none" % q),
        (ql, dict(durable=True), qq_args(delivery_limit=6),
         "inequivalent arg 'x-delivery-limit' for queue '%s' in vhost '/': received '6' but "
         "current is '5'" % ql),
        (ql, dict(durable=True), QQ,
         "inequivalent arg 'x-delivery-limit' for queue '%s' in vhost '/': received none but "
         "current is the value '5' of type 'signedint'" % ql),
        (qc, dict(durable=True), QQ,
         "inequivalent arg 'x-queue-type' for queue '%s' in vhost '/': received the value "
         "'quorum' of type 'longstr' but current is none" % qc),
    ]
    for name, props, args, text in cases:
        ch = c.channel()
        channel_error(ch, lambda: ch.queue_declare(name, arguments=args, **props), 406, PF + text)
    # exclusive on an existing non-exclusive queue: 405
    ch = c.channel()
    channel_error(ch, lambda: ch.queue_declare(q, durable=True, exclusive=True, arguments=QQ),
                  405)
    # still there, unchanged
    assert setup.queue_declare(ql, durable=True, arguments=qq_args(delivery_limit=5))
    for name in (q, ql, qc):
        delete_qq(setup, name)


# ---------------------------------------------------------------- publish / consume

def test_publish_confirmed_mandatory_persistent_and_transient(connect):
    ch = connect().channel()
    q = declare_qq(ch)
    ch.confirm_delivery()
    publish(ch, q, "persistent", persistent=True)
    publish(ch, q, "transient", persistent=False)
    ch.basic_publish("", q, b"mandatory", pika.BasicProperties(delivery_mode=2),
                     mandatory=True)
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish("", uid("nowhere"), b"x", mandatory=True)
    assert count(ch, q) == 3
    got = []
    for _ in range(3):
        m, p, body = ch.basic_get(q, auto_ack=True)
        got.append((body, p.delivery_mode))
    assert got == [(b"persistent", 2), (b"transient", 1), (b"mandatory", 2)]
    delete_qq(ch, q)


def test_consume_manual_ack(connect):
    c = connect()
    ch = c.channel()
    q = declare_qq(ch)
    ch.confirm_delivery()
    for i in range(5):
        publish(ch, q, "m%d" % i, headers={"app": "1"})
    got = []

    def on(_ch, m, p, body):
        got.append((m, p, body.decode()))
        _ch.basic_ack(m.delivery_tag)

    tag = ch.basic_consume(q, on)
    assert pump(c, lambda: len(got) == 5)
    assert [b for _m, _p, b in got] == ["m%d" % i for i in range(5)]
    # first delivery to a consumer: no x-delivery-count, not redelivered
    for m, p, _b in got:
        assert not m.redelivered
        assert p.headers == {"app": "1"}
    ch.basic_cancel(tag)
    assert wait_until(lambda: count(ch, q) == 0)
    assert ch.basic_get(q)[0] is None
    delete_qq(ch, q)


def test_prefetch_limits_unacked_per_consumer(connect):
    c = connect()
    pub = c.channel()
    q = declare_qq(pub)
    pub.confirm_delivery()
    for i in range(10):
        publish(pub, q, "m%d" % i)
    ch = c.channel()
    ch.basic_qos(prefetch_count=2)
    a = []
    ch.basic_consume(q, lambda _c, m, p, b: a.append((m.delivery_tag, b.decode())))
    ch.basic_qos(prefetch_count=3)
    b = []
    ch.basic_consume(q, lambda _c, m, p, b_: b.append((m.delivery_tag, b_.decode())))
    pump(c, lambda: len(a) + len(b) >= 5, timeout=3)
    c.process_data_events(0.3)
    assert (len(a), len(b)) == (2, 3)
    ch.basic_ack(a[0][0])
    assert pump(c, lambda: len(a) == 3)
    c.process_data_events(0.3)
    assert (len(a), len(b)) == (3, 3)
    assert sorted(x for _t, x in a + b) == sorted("m%d" % i for i in range(6))
    assert pub.queue_declare(q, passive=True).method.message_count == 4
    # (no queue.delete right after this close: with an ack just before, that
    # crashes warren; see test_delete_right_after_ack_and_channel_close)
    ch.close()


def test_basic_get_delivery_count_header_and_empty(connect):
    ch = connect().channel()
    q = declare_qq(ch)
    ch.confirm_delivery()
    publish(ch, q, "a", headers={"app": "1"})
    publish(ch, q, "b")
    m, p, body = ch.basic_get(q, auto_ack=False)
    assert body == b"a" and not m.redelivered
    assert p.headers == {"app": "1", "x-delivery-count": 0}
    assert m.message_count == 1
    ch.basic_ack(m.delivery_tag)
    # a no-ack get also carries the header
    m, p, body = ch.basic_get(q, auto_ack=True)
    assert body == b"b" and p.headers == {"x-delivery-count": 0}
    assert m.message_count == 0
    assert ch.basic_get(q, auto_ack=False) == (None, None, None)
    assert count(ch, q) == 0
    delete_qq(ch, q)


# ---------------------------------------------------------------- returns

def test_requeue_increments_delivery_count(connect):
    c = connect()
    ch = c.channel()
    q = declare_qq(ch)
    ch.confirm_delivery()
    publish(ch, q, "m1")
    seen = []
    m, p, _ = ch.basic_get(q)
    seen.append((m.redelivered, p.headers["x-delivery-count"]))
    ch.basic_reject(m.delivery_tag, requeue=True)
    m, p, _ = ch.basic_get(q)
    seen.append((m.redelivered, p.headers["x-delivery-count"]))
    ch.basic_nack(m.delivery_tag, requeue=True)
    m, p, _ = ch.basic_get(q)
    seen.append((m.redelivered, p.headers["x-delivery-count"]))
    ch.close()
    ch = c.channel()
    m, p, _ = ch.basic_get(q)
    seen.append((m.redelivered, p.headers["x-delivery-count"]))
    ch.basic_recover(requeue=True)
    m, p, _ = ch.basic_get(q)
    seen.append((m.redelivered, p.headers["x-delivery-count"]))
    assert seen == [(False, 0), (True, 1), (True, 2), (True, 3), (True, 4)]
    ch.basic_ack(m.delivery_tag)
    delete_qq(ch, q)


def test_consumer_redelivery_carries_delivery_count(connect):
    c = connect()
    ch = c.channel()
    q = declare_qq(ch)
    ch.confirm_delivery()
    publish(ch, q, "m1")
    got = []

    def on(_c, m, p, body):
        got.append((m.redelivered, (p.headers or {}).get("x-delivery-count")))
        if len(got) < 3:
            _c.basic_nack(m.delivery_tag, requeue=True)
        else:
            _c.basic_ack(m.delivery_tag)

    ch.basic_consume(q, on)
    assert pump(c, lambda: len(got) == 3)
    assert got == [(False, None), (True, 1), (True, 2)]
    ch.close()
    delete_qq(c.channel(), q)


def _five(c):
    ch = c.channel()
    q = declare_qq(ch)
    ch.confirm_delivery()
    for i in range(1, 6):
        publish(ch, q, "m%d" % i)
    return q


def _take3(ch, q):
    tags = {}
    for _ in range(3):
        m, _p, body = ch.basic_get(q)
        tags[body.decode()] = m.delivery_tag
    return tags


def test_reject_requeue_goes_to_back(connect):
    c = connect()
    q = _five(c)
    ch = c.channel()
    tags = _take3(ch, q)
    ch.basic_reject(tags["m2"], requeue=True)
    order = []
    while True:
        m, p, body = ch.basic_get(q)
        if m is None:
            break
        order.append((body.decode(), m.redelivered, p.headers["x-delivery-count"]))
    assert order == [("m4", False, 0), ("m5", False, 0), ("m2", True, 1)]
    ch.close()
    delete_qq(c.channel(), q)


def test_reject_in_rejection_order_and_nack_multiple_ascending(connect):
    c = connect()
    q = _five(c)
    ch = c.channel()
    tags = _take3(ch, q)
    ch.basic_reject(tags["m3"], requeue=True)
    ch.basic_reject(tags["m1"], requeue=True)
    ch.basic_reject(tags["m2"], requeue=True)
    assert [b for _m, b in ((m, b.decode()) for m, _p, b in
                            iter(lambda: ch.basic_get(q, auto_ack=True), (None, None, None)))] \
        == ["m4", "m5", "m3", "m1", "m2"]
    ch.close()
    delete_qq(c.channel(), q)
    q = _five(c)
    ch = c.channel()
    tags = _take3(ch, q)
    ch.basic_nack(tags["m3"], multiple=True, requeue=True)
    assert bodies(ch, q) == ["m4", "m5", "m1", "m2", "m3"]
    ch.close()
    delete_qq(c.channel(), q)


def test_recover_requeue_goes_to_back(connect):
    c = connect()
    q = _five(c)
    ch = c.channel()
    _take3(ch, q)
    ch.basic_recover(requeue=True)
    assert bodies(ch, q) == ["m4", "m5", "m1", "m2", "m3"]
    ch.close()
    delete_qq(c.channel(), q)


def test_channel_close_returns_to_front_in_order(connect):
    c = connect()
    q = _five(c)
    ch = c.channel()
    _take3(ch, q)
    ch.close()
    ch = c.channel()
    got = []
    while True:
        m, p, body = ch.basic_get(q, auto_ack=True)
        if m is None:
            break
        got.append((body.decode(), m.redelivered, p.headers["x-delivery-count"]))
    assert got == [("m1", True, 1), ("m2", True, 1), ("m3", True, 1),
                   ("m4", False, 0), ("m5", False, 0)]
    delete_qq(ch, q)


def test_channel_close_of_consumer_returns_to_front(connect):
    c = connect()
    q = _five(c)
    ch = c.channel()
    ch.basic_qos(prefetch_count=3)
    got = []
    tag = ch.basic_consume(q, lambda _c, m, p, b: got.append(b.decode()))
    assert pump(c, lambda: len(got) == 3)
    assert got == ["m1", "m2", "m3"]
    ch.basic_cancel(tag)
    ch2 = c.channel()
    # a cancelled consumer keeps what it holds until its channel closes
    assert ch2.basic_get(q, auto_ack=False)[2] == b"m4"
    ch2.close()  # m4 back to its place (basic.recover would put it at the back)
    ch.close()
    ch3 = c.channel()
    assert bodies(ch3, q) == ["m1", "m2", "m3", "m4", "m5"]
    delete_qq(ch3, q)


def test_reject_then_close_mixed_positions(connect):
    c = connect()
    q = _five(c)
    ch = c.channel()
    tags = _take3(ch, q)
    ch.basic_reject(tags["m2"], requeue=True)
    ch.close()
    ch = c.channel()
    assert bodies(ch, q) == ["m1", "m3", "m4", "m5", "m2"]
    delete_qq(ch, q)


# ---------------------------------------------------------------- delivery limit / dead-lettering

@pytest.mark.parametrize("how", ["reject", "nack", "close"])
def test_delivery_limit_then_dead_lettered(connect, how):
    c = connect()
    ch = c.channel()
    dlx, dlq = dlx_pair(ch)
    q = declare_qq(ch, delivery_limit=2, dead_letter_exchange=dlx)
    ch.confirm_delivery()
    publish(ch, q, "poison", headers={"orig": "yes"})
    counts = []
    for _ in range(3):
        m, p, body = ch.basic_get(q)
        assert body == b"poison"
        counts.append(p.headers["x-delivery-count"])
        if how == "reject":
            ch.basic_reject(m.delivery_tag, requeue=True)
        elif how == "nack":
            ch.basic_nack(m.delivery_tag, requeue=True)
        else:
            ch.close()
            ch = c.channel()
    assert counts == [0, 1, 2]
    m, p, body = get_dead(ch, dlq)
    assert body == b"poison" and not m.redelivered
    assert p.headers["orig"] == "yes"
    assert_death(m, p, q, "delivery_limit", dlx)
    assert ch.basic_get(q) == (None, None, None)
    delete_qq(ch, q)


def test_delivery_limit_zero_and_no_dlx_drops(connect):
    ch = connect().channel()
    q = declare_qq(ch, delivery_limit=0)
    ch.confirm_delivery()
    publish(ch, q, "once")
    m, p, _ = ch.basic_get(q)
    assert p.headers["x-delivery-count"] == 0
    ch.basic_nack(m.delivery_tag, requeue=True)
    assert wait_until(lambda: count(ch, q) == 0)
    assert ch.basic_get(q) == (None, None, None)
    delete_qq(ch, q)


def test_default_delivery_limit_is_20(connect):
    ch = connect().channel()
    dlx, dlq = dlx_pair(ch)
    q = declare_qq(ch, dead_letter_exchange=dlx)
    ch.confirm_delivery()
    publish(ch, q, "poison")
    counts = []
    for _ in range(30):
        m, p, _ = ch.basic_get(q)
        if m is None:
            break
        counts.append(p.headers["x-delivery-count"])
        ch.basic_reject(m.delivery_tag, requeue=True)
    assert counts == list(range(21))
    m, p, body = get_dead(ch, dlq)
    assert body == b"poison"
    assert_death(m, p, q, "delivery_limit", dlx)
    delete_qq(ch, q)


def test_delivery_limit_minus_one_is_unlimited(connect):
    ch = connect().channel()
    q = uid("qq")
    ch.queue_declare(q, durable=True, arguments=qq_args(delivery_limit=-1))
    ch.confirm_delivery()
    publish(ch, q, "forever")
    for i in range(25):
        m, p, _ = ch.basic_get(q)
        assert m is not None, "dropped after %d deliveries" % i
        assert p.headers["x-delivery-count"] == i
        ch.basic_reject(m.delivery_tag, requeue=True)
    # Still there after 25 returns (a passive declare right after the
    # reject may not count it yet: see test_count_after_purge_ok_is_zero).
    m, p, _ = ch.basic_get(q)
    assert m is not None and p.headers["x-delivery-count"] == 25
    delete_qq(ch, q)


def test_reject_without_requeue_dead_letters(connect):
    ch = connect().channel()
    dlx, dlq = dlx_pair(ch)
    q = declare_qq(ch, dead_letter_exchange=dlx)
    ch.confirm_delivery()
    publish(ch, q, "bad", headers={"orig": "yes"})
    m, _p, _ = ch.basic_get(q)
    ch.basic_reject(m.delivery_tag, requeue=True)
    m, _p, _ = ch.basic_get(q)
    ch.basic_reject(m.delivery_tag, requeue=False)
    m, p, body = get_dead(ch, dlq)
    assert body == b"bad" and p.headers["orig"] == "yes"
    assert_death(m, p, q, "rejected", dlx)
    assert ch.basic_get(q) == (None, None, None)
    # without a DLX the message is simply gone
    q2 = declare_qq(ch)
    publish(ch, q2, "gone")
    m, _p, _ = ch.basic_get(q2)
    ch.basic_nack(m.delivery_tag, requeue=False)
    assert ch.basic_get(q2) == (None, None, None)
    delete_qq(ch, q)
    delete_qq(ch, q2)


def test_message_ttl_expires_and_dead_letters(connect):
    ch = connect().channel()
    dlx, dlq = dlx_pair(ch)
    q = declare_qq(ch, message_ttl=200, dead_letter_exchange=dlx)
    q2 = declare_qq(ch, message_ttl=300)
    q3 = declare_qq(ch)
    ch.confirm_delivery()
    publish(ch, q, "old")
    publish(ch, q2, "old2")
    publish(ch, q3, "per-message", expiration="200")
    assert count(ch, q2) == 1
    m, p, body = get_dead(ch, dlq, timeout=3)
    assert body == b"old"
    assert_death(m, p, q, "expired", dlx)
    assert wait_until(lambda: count(ch, q2) == 0, 3)
    assert ch.basic_get(q2) == (None, None, None)
    assert wait_until(lambda: ch.basic_get(q3, auto_ack=True)[0] is None and
                      count(ch, q3) == 0, 3)
    for x in (q, q2, q3):
        delete_qq(ch, x)


def test_max_length_drop_head_dead_letters_maxlen(connect):
    ch = connect().channel()
    dlx, dlq = dlx_pair(ch)
    q = declare_qq(ch, max_length=2, dead_letter_exchange=dlx)
    ch.confirm_delivery()
    for i in range(4):
        publish(ch, q, "d%d" % i)  # all confirmed (no exception)
    assert wait_until(lambda: count(ch, q) == 2)
    assert bodies(ch, q) == ["d2", "d3"]
    dead = []
    assert wait_until(lambda: (dead.extend(bodies_with_props(ch, dlq)) or len(dead) >= 2), 3)
    assert [b for _m, _p, b in dead] == [b"d0", b"d1"]
    for m, p, _b in dead:
        assert_death(m, p, q, "maxlen", dlx)
    delete_qq(ch, q)


def bodies_with_props(ch, q):
    out = []
    while True:
        m, p, body = ch.basic_get(q, auto_ack=True)
        if m is None:
            return out
        out.append((m, p, body))


def test_max_length_reject_publish_nacks(connect):
    ch = connect().channel()
    q = declare_qq(ch, max_length=2, overflow="reject-publish")
    ch.confirm_delivery()
    outcome = []
    for i in range(4):
        try:
            publish(ch, q, "r%d" % i)
            outcome.append("ack")
        except pika.exceptions.NackError:
            outcome.append("nack")
    # RabbitMQ checks the limit before enqueuing: one over is accepted
    assert outcome == ["ack", "ack", "ack", "nack"]
    assert bodies(ch, q) == ["r0", "r1", "r2"]
    delete_qq(ch, q)


def test_reject_publish_never_acks_a_dropped_message(connect):
    """Whatever the exact boundary, every acked publish must be in the queue."""
    ch = connect().channel()
    q = declare_qq(ch, max_length=2, overflow="reject-publish")
    ch.confirm_delivery()
    acked = []
    for i in range(5):
        try:
            publish(ch, q, "r%d" % i)
            acked.append("r%d" % i)
        except pika.exceptions.NackError:
            pass
    assert bodies(ch, q) == acked
    delete_qq(ch, q)


def test_max_length_reject_publish_without_confirms_keeps_channel(connect):
    ch = connect().channel()
    q = declare_qq(ch, max_length=2, overflow="reject-publish")
    for i in range(3):
        publish(ch, q, "u%d" % i)
    assert wait_until(lambda: count(ch, q) >= 2)
    assert ch.is_open
    delete_qq(ch, q)


# ---------------------------------------------------------------- not supported

def test_global_qos_then_consume_closes_connection(connect):
    c = connect()
    ch = c.channel()
    q = declare_qq(ch)
    ch.confirm_delivery()
    publish(ch, q, "x")
    ch.basic_qos(prefetch_count=10, global_qos=True)
    # basic.get is unaffected
    m, _p, body = ch.basic_get(q)
    assert body == b"x"
    ch.basic_ack(m.delivery_tag)
    e = connection_error(lambda: (ch.basic_consume(q, lambda *a: None), c.process_data_events(1)),
                         540)
    assert e.reply_text == "NOT_IMPLEMENTED - queue '%s' in vhost '/' does not support global " \
                           "qos" % q
    delete_qq(connect().channel(), q)


def test_global_qos_zero_then_consume_ok(connect):
    c = connect()
    ch = c.channel()
    q = declare_qq(ch)
    ch.basic_qos(prefetch_count=5)
    ch.basic_qos(prefetch_count=0, global_qos=True)
    ch.basic_consume(q, lambda *a: None)
    c.process_data_events(0.2)
    assert ch.is_open
    delete_qq(ch, q)


@pytest.mark.parametrize("flag", ["if_empty", "if_unused"])
def test_delete_if_empty_if_unused_not_implemented(connect, flag):
    c = connect()
    ch = c.channel()
    q = declare_qq(ch)
    e = connection_error(lambda: ch.queue_delete(q, **{flag: True}), 540)
    assert e.reply_text == ("NOT_IMPLEMENTED - cannot delete queue '%s' in vhost '/'. "
                            "queue.delete operations with %s flag set are not supported by "
                            "quorum queues" % (q, flag.replace("_", "-")))
    ch = connect().channel()
    ch.queue_declare(q, passive=True)
    delete_qq(ch, q)


@pytest.mark.xfail(strict=True, reason=(
    "a passive queue.declare right after purge-ok still reports the pre-purge "
    "message_count (4): purge-ok is sent before the PURGE command is applied; "
    "RabbitMQ applies the purge before replying"))
def test_count_after_purge_ok_is_zero(connect):
    ch = connect().channel()
    ch.confirm_delivery()
    stale = []
    for _ in range(10):  # racy in warren: usually every round
        q = declare_qq(ch)
        for i in range(5):
            publish(ch, q, "p%d" % i)
        assert ch.queue_purge(q).method.message_count == 5
        stale.append(count(ch, q))
        delete_qq(ch, q)
    assert stale == [0] * 10


def quorum_dirs(data_dir):
    return set(glob.glob(os.path.join(data_dir, "vhosts", "*", "quorum", "*")))


def test_delete_removes_raft_directory(warren_only, connect):
    c = connect()
    ch = c.channel()
    before = quorum_dirs(warren_only.data_dir)
    q = declare_qq(ch)
    new = quorum_dirs(warren_only.data_dir) - before
    assert len(new) == 1, new
    [d] = new
    assert os.path.isdir(d)
    ch.confirm_delivery()
    publish(ch, q, "a")
    publish(ch, q, "b")
    m, _p, _b = ch.basic_get(q)
    assert m is not None
    ok = ch.queue_delete(q)
    assert ok.method.message_count == 1
    assert wait_until(lambda: not os.path.exists(d), 5), os.listdir(d)
    channel_error(ch, lambda: ch.queue_declare(q, passive=True), 404,
                  "NOT_FOUND - no queue '%s' in vhost '/'" % q)
    # delete of a missing queue is fine
    ch = c.channel()
    assert ch.queue_delete(q).method.message_count == 0


def test_delete_right_after_ack_and_channel_close(warren_only):
    b = start_warren()
    try:
        # racy: it crashes within a few rounds (usually the first five)
        deadline = time.monotonic() + 15
        for _ in range(80):
            if time.monotonic() > deadline:
                break
            try:
                c = b.connect()
                pub = c.channel()
                q = declare_qq(pub)
                pub.confirm_delivery()
                for i in range(10):
                    publish(pub, q, "m%d" % i)
                ch, ch2 = c.channel(), c.channel()
                ch.basic_qos(prefetch_count=4)
                ch2.basic_qos(prefetch_count=4)
                got, got2 = [], []
                ch.basic_consume(q, lambda _c, m, p, body: got.append(m.delivery_tag))
                ch2.basic_consume(q, lambda _c, m, p, body: got2.append(m.delivery_tag))
                assert pump(c, lambda: len(got) == 4 and len(got2) == 4)
                ch.basic_ack(got[0])
                ch2.basic_ack(got2[1])
                ch.close()
                ch2.close()
                pub.queue_delete(q)
                c.close()
            except pika.exceptions.AMQPError:
                pass
            if b.proc.poll() is not None:
                break
        time.sleep(0.2)
        assert b.proc.poll() is None, "warren died: %s" % b.proc.poll()
        ch = b.connect().channel()
        channel_error(ch, lambda: ch.queue_declare(q, passive=True), 404)
    finally:
        if b.proc is not None and b.proc.poll() is not None:
            b.proc = None  # crashed: nothing to stop
        b.stop()


def test_purge_ready_only(connect):
    c = connect()
    ch = c.channel()
    q = declare_qq(ch)
    ch.confirm_delivery()
    for i in range(5):
        publish(ch, q, "p%d" % i)
    m, _p, body = ch.basic_get(q)
    assert body == b"p0"
    assert ch.queue_purge(q).method.message_count == 4
    assert ch.basic_get(q) == (None, None, None)
    assert count(ch, q) == 0
    ch.basic_reject(m.delivery_tag, requeue=True)
    assert wait_until(lambda: count(ch, q) == 1)
    assert ch.queue_purge(q).method.message_count == 1
    assert ch.basic_get(q) == (None, None, None)
    delete_qq(ch, q)


# ---------------------------------------------------------------- durability

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


def test_confirmed_messages_survive_sigkill_in_order(restartable):
    b = restartable()
    c = b.connect()
    ch = c.channel()
    q = declare_qq(ch)
    ch.confirm_delivery()
    for i in range(100):
        publish(ch, q, "k%d" % i, persistent=(i % 2 == 0))
    b.kill()
    b = restartable(b.data_dir)
    ch = b.connect().channel()
    assert ch.queue_declare(q, durable=True, arguments=QQ).method.message_count == 100
    # a quorum queue keeps transient messages too
    got = []
    while True:
        m, p, body = ch.basic_get(q, auto_ack=True)
        if m is None:
            break
        got.append((body.decode(), p.delivery_mode, m.redelivered))
    assert got == [("k%d" % i, 2 if i % 2 == 0 else 1, False) for i in range(100)]


def test_acked_half_gone_after_sigterm(restartable):
    b = restartable()
    c = b.connect()
    ch = c.channel()
    q = declare_qq(ch)
    ch.confirm_delivery()
    for i in range(40):
        publish(ch, q, "h%d" % i)
    for i in range(20):
        m, _p, body = ch.basic_get(q)
        assert body == b"h%d" % i
        ch.basic_ack(m.delivery_tag)
    assert count(ch, q) == 20  # passive declare: after the acks were applied
    c.close()
    b.stop()
    b = restartable(b.data_dir)
    ch = b.connect().channel()
    assert bodies(ch, q) == ["h%d" % i for i in range(20, 40)]


@pytest.mark.parametrize("how", ["term", pytest.param("kill", marks=pytest.mark.xfail(
    strict=False, reason=(
        "known bug, under investigation: on a single node an ack's SETTLE command is "
        "sometimes not committed for more than 0.3 s (seen over 2 s under CI load; the "
        "debug log shows it proposed, then nothing applied); a SIGKILL in that window "
        "delivers the acked message again after the restart (at least once, but later "
        "than it should be)")))])
def test_unacked_come_back_redelivered_after_restart(restartable, how):
    b = restartable()
    c = b.connect()
    ch = c.channel()
    q = declare_qq(ch)
    ch.confirm_delivery()
    for i in range(6):
        publish(ch, q, "u%d" % i)
    cch = c.channel()
    cch.basic_qos(prefetch_count=4)
    got = []
    cch.basic_consume(q, lambda _c, m, p, body: got.append((m.delivery_tag, body.decode())))
    assert pump(c, lambda: len(got) == 4)
    cch.basic_cancel(cch.consumer_tags[0])  # keeps u0..u3 held, takes no more
    cch.basic_ack(got[0][0])
    assert [b for _t, b in got] == ["u0", "u1", "u2", "u3"]
    assert wait_until(lambda: ch.queue_declare(q, passive=True).method.message_count == 2)
    c.process_data_events(2)  # the ack is applied
    if how == "kill":
        b.kill()
    else:
        b.stop()
    b = restartable(b.data_dir)
    ch = b.connect().channel()
    got = []
    while True:
        m, p, body = ch.basic_get(q, auto_ack=True)
        if m is None:
            break
        got.append((body.decode(), m.redelivered))
    assert got == [("u1", True), ("u2", True), ("u3", True), ("u4", False), ("u5", False)]


def test_no_ghost_consumer_after_sigkill(restartable):
    b = restartable()
    c = b.connect()
    ch = c.channel()
    q = declare_qq(ch)
    cch = c.channel()
    cch.basic_qos(prefetch_count=10)
    got = []
    cch.basic_consume(q, lambda _c, m, p, body: got.append(body))
    ch.confirm_delivery()
    publish(ch, q, "a0")
    assert pump(c, lambda: len(got) == 1)
    b.kill()
    b = restartable(b.data_dir)
    ch = b.connect().channel()
    ch.confirm_delivery()
    for i in range(3):
        publish(ch, q, "n%d" % i)
    ok = ch.queue_declare(q, passive=True).method
    assert (ok.message_count, ok.consumer_count) == (4, 0)
    assert bodies(ch, q) == ["a0", "n0", "n1", "n2"]


def test_queue_and_arguments_survive_restart(restartable):
    b = restartable()
    ch = b.connect().channel()
    q = declare_qq(ch, delivery_limit=3)
    b.stop()
    b = restartable(b.data_dir)
    ch = b.connect().channel()
    ch.queue_declare(q, durable=True, arguments=qq_args(delivery_limit=3))
    channel_error(ch, lambda: ch.queue_declare(q, durable=True, arguments=QQ), 406)
    ch = b.connect().channel()
    ch.confirm_delivery()
    publish(ch, q, "x")
    counts = []
    for _ in range(6):
        m, p, _ = ch.basic_get(q)
        if m is None:
            break
        counts.append(p.headers["x-delivery-count"])
        ch.basic_nack(m.delivery_tag, requeue=True)
    assert counts == [0, 1, 2, 3]


# ---------------------------------------------------------------- consumers

def test_single_active_consumer(connect):
    c = connect()
    setup = c.channel()
    q = declare_qq(setup, single_active_consumer=True)
    ch1, ch2 = c.channel(), c.channel()
    a, b = [], []
    ch1.basic_consume(q, lambda _c, m, p, body: a.append(body.decode()))
    ch2.basic_consume(q, lambda _c, m, p, body: b.append(body.decode()))
    setup.confirm_delivery()
    for i in range(4):
        publish(setup, q, "s%d" % i)
    assert pump(c, lambda: len(a) == 4)
    c.process_data_events(0.2)
    assert a == ["s0", "s1", "s2", "s3"] and b == []
    ch1.basic_cancel(ch1.consumer_tags[0])
    c.process_data_events(0.3)
    assert b == []  # the cancelled consumer still holds its 4
    ch1.close()
    assert pump(c, lambda: len(b) == 4)
    assert b == ["s0", "s1", "s2", "s3"]
    ch2.close()
    delete_qq(setup, q)


def test_single_active_consumer_count(connect):
    c = connect()
    setup = c.channel()
    q = declare_qq(setup, single_active_consumer=True)
    ch1, ch2 = c.channel(), c.channel()
    ch1.basic_consume(q, lambda *a: None)
    ch2.basic_consume(q, lambda *a: None)
    assert setup.queue_declare(q, passive=True).method.consumer_count == 1


def test_consumer_priorities(connect):
    c = connect()
    setup = c.channel()
    q = declare_qq(setup)
    hi_ch, lo_ch = c.channel(), c.channel()
    hi_ch.basic_qos(prefetch_count=2)
    lo_ch.basic_qos(prefetch_count=100)
    hi, lo = [], []
    lo_ch.basic_consume(q, lambda _c, m, p, body: lo.append(body.decode()),
                        arguments={"x-priority": 1})
    hi_ch.basic_consume(q, lambda _c, m, p, body: hi.append(body.decode()),
                        arguments={"x-priority": 10})
    setup.confirm_delivery()
    for i in range(6):
        publish(setup, q, "p%d" % i)
    assert pump(c, lambda: len(hi) + len(lo) == 6)
    assert hi == ["p0", "p1"] and lo == ["p2", "p3", "p4", "p5"]
    hi_ch.close()
    lo_ch.close()
    delete_qq(setup, q)


def test_consumer_priority_must_be_integer(connect):
    c = connect()
    setup = c.channel()
    q = declare_qq(setup)
    ch = c.channel()
    channel_error(ch, lambda: ch.basic_consume(q, lambda *a: None,
                                               arguments={"x-priority": "high"}), 406,
                  PF + "invalid arg 'x-priority' for queue '%s' in vhost '/': "
                  "\"expected integer, got longstr\"" % q)
    delete_qq(setup, q)
