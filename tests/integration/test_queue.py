"""Queue declare/bind/purge/delete semantics, argument validation and
exclusive / auto-delete lifetimes."""

import pytest

from rawamqp import Typed
from helpers import channel_error, drain, queue_exists, uid, wait_until


# ---------------------------------------------------------------------------
# Declare
# ---------------------------------------------------------------------------

def test_declare_returns_name_and_counts(ch):
    q = uid("q")
    ok = ch.queue_declare(q, exclusive=True).method
    assert (ok.queue, ok.message_count, ok.consumer_count) == (q, 0, 0)
    for i in range(3):
        ch.basic_publish("", q, b"m%d" % i)
    ch.basic_consume(q, lambda *a: None, auto_ack=False)
    ch.basic_consume(q, lambda *a: None, auto_ack=False)
    ok = ch.queue_declare(q, passive=True).method
    # all 3 messages were delivered to the consumers (unacked): not counted
    assert ok.consumer_count == 2
    assert ok.message_count == 0


def test_declare_ok_counts_ready_messages_only(ch):
    q = uid("q")
    ch.queue_declare(q, exclusive=True)
    # confirms make the publishes synchronous: RabbitMQ answers a passive
    # declare ahead of queued publishes, so counts are only exact after acks
    ch.confirm_delivery()
    for i in range(5):
        ch.basic_publish("", q, b"x")
    assert ch.queue_declare(q, passive=True).method.message_count == 5
    m, _, _ = ch.basic_get(q, auto_ack=False)
    assert m.message_count == 4
    assert ch.queue_declare(q, passive=True).method.message_count == 4
    ch.basic_nack(m.delivery_tag, requeue=True)
    # nack has no reply, so allow the requeue a moment to land
    assert wait_until(
        lambda: ch.queue_declare(q, passive=True).method.message_count == 5, 5)


def test_server_named_queue(ch):
    ok = ch.queue_declare("", exclusive=True).method
    assert ok.queue.startswith("amq.gen-")
    assert len(ok.queue) > len("amq.gen-") + 10
    ok2 = ch.queue_declare("", exclusive=True).method
    assert ok2.queue != ok.queue
    ch.basic_publish("", ok.queue, b"to-gen")
    assert drain(ch, ok.queue) == ["to-gen"]


def test_server_named_queue_format(ch):
    """amq.gen- followed by 22 characters of URL-safe base64 (RabbitMQ)."""
    import re
    q = ch.queue_declare("", exclusive=True).method.queue
    assert re.fullmatch(r"amq\.gen-[A-Za-z0-9_\-]{22}", q), q


def test_passive_declare_missing_is_404(ch):
    q = uid("missing")
    channel_error(ch, lambda: ch.queue_declare(q, passive=True), 404,
                  "NOT_FOUND - no queue '%s' in vhost '/'" % q)


def test_passive_declare_ignores_flags(ch):
    q = uid("q")
    ch.queue_declare(q, exclusive=True)
    ok = ch.queue_declare(q, passive=True, durable=True, auto_delete=True)
    assert ok.method.queue == q


def test_durable_queue_redeclare(connect):
    ch = connect().channel()
    q = uid("dur")
    ch.queue_declare(q, durable=True)
    ch.queue_declare(q, durable=True)
    channel_error(ch, lambda: ch.queue_declare(q, durable=False), 406,
                  "PRECONDITION_FAILED - inequivalent arg 'durable' for queue '%s' "
                  "in vhost '/': received 'false' but current is 'true'" % q)
    connect().channel().queue_delete(q)


def test_redeclare_different_auto_delete_is_406(connect):
    ch = connect().channel()
    q = uid("q")
    ch.queue_declare(q)
    channel_error(ch, lambda: ch.queue_declare(q, auto_delete=True), 406,
                  "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for queue '%s' "
                  "in vhost '/': received 'true' but current is 'false'" % q)
    connect().channel().queue_delete(q)


def test_redeclare_different_exclusive_is_405(connect):
    ch = connect().channel()
    q = uid("q")
    ch.queue_declare(q)
    e = channel_error(ch, lambda: ch.queue_declare(q, exclusive=True), 405)
    assert e.reply_text.startswith(
        "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '%s' "
        "in vhost '/'" % q)
    connect().channel().queue_delete(q)


def test_redeclare_different_args_is_406(connect):
    ch = connect().channel()
    q = uid("q")
    ch.queue_declare(q, exclusive=True, arguments={"x-max-length": 5})
    ch.queue_declare(q, exclusive=True, arguments={"x-max-length": 5})
    channel_error(
        ch, lambda: ch.queue_declare(q, exclusive=True, arguments={"x-max-length": 10}),
        406, "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue '%s' "
        "in vhost '/': received '10' but current is '5'" % q)


def test_redeclare_missing_arg_is_406(connect):
    c = connect()
    ch = c.channel()
    q = uid("q")
    ch.queue_declare(q, exclusive=True, arguments={"x-message-ttl": 1000})
    channel_error(
        ch, lambda: ch.queue_declare(q, exclusive=True), 406,
        "PRECONDITION_FAILED - inequivalent arg 'x-message-ttl' for queue '%s' in "
        "vhost '/': received none but current is the value '1000' of type "
        "'signedint'" % q)


def test_redeclare_added_arg_is_406(connect):
    ch = connect().channel()
    q = uid("q")
    ch.queue_declare(q, exclusive=True)
    channel_error(
        ch, lambda: ch.queue_declare(q, exclusive=True, arguments={"x-expires": 5000}),
        406, "PRECONDITION_FAILED - inequivalent arg 'x-expires' for queue '%s' in "
        "vhost '/': received the value '5000' of type 'signedint' but current is "
        "none" % q)


def test_redeclare_unknown_args_not_compared(ch):
    """Arguments RabbitMQ does not know are not compared on redeclare."""
    q = uid("q")
    ch.queue_declare(q, exclusive=True, arguments={"x-custom": "a"})
    ch.queue_declare(q, exclusive=True, arguments={"x-custom": "b", "other": 1})
    ch.queue_declare(q, exclusive=True)


def test_redeclare_same_value_different_int_type_is_equivalent(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    q = uid("q")
    c.rpc(1, "queue.declare", 0, q, False, False, True, True, False,
          {"x-max-length": Typed("I", 7)})
    f = c.rpc(1, "queue.declare", 0, q, False, False, True, True, False,
              {"x-max-length": Typed("l", 7)})
    assert f.name == "queue.declare-ok"


@pytest.mark.parametrize("args,detail", [
    ({"x-message-ttl": "1000"}, "'x-message-ttl' for queue '{q}' in vhost '/': "
                                "\"expected integer, got longstr\""),
    ({"x-message-ttl": -1}, "'x-message-ttl' for queue '{q}' in vhost '/': "
                            "{{value_negative,-1}}"),
    ({"x-message-ttl": Typed("l", 2 ** 40)},
     "'x-message-ttl' for queue '{q}' in vhost '/': {{value_too_large,1099511627776}}"),
    ({"x-message-ttl": Typed("d", 1.5)}, "'x-message-ttl' for queue '{q}' in vhost "
                                         "'/': \"expected integer, got double\""),
    ({"x-max-length": -1}, "'x-max-length' for queue '{q}' in vhost '/': "
                           "{{value_negative,-1}}"),
    ({"x-max-length": "5"}, "'x-max-length' for queue '{q}' in vhost '/': "
                            "\"expected integer, got longstr\""),
    ({"x-max-length-bytes": -1}, "'x-max-length-bytes' for queue '{q}' in vhost "
                                 "'/': {{value_negative,-1}}"),
    ({"x-expires": 0}, "'x-expires' for queue '{q}' in vhost '/': {{value_zero,0}}"),
    ({"x-expires": -5}, "'x-expires' for queue '{q}' in vhost '/': "
                        "{{value_negative,-5}}"),
    ({"x-overflow": "bogus"}, "'x-overflow' for queue '{q}' in vhost '/': "
                              "invalid_overflow"),
    ({"x-overflow": 1}, "'x-overflow' for queue '{q}' in vhost '/': "
                        "{{unacceptable_type,signedint}}"),
    ({"x-dead-letter-routing-key": "rk"},
     "'x-dead-letter-routing-key' for queue '{q}' in vhost '/': "
     "routing_key_but_no_dlx_defined"),
    ({"x-max-priority": 300}, "'x-max-priority' for queue '{q}' in vhost '/': "
                              "{{max_value_exceeded,300}}"),
    ({"x-queue-type": "bogus"}, "'x-queue-type' for queue '{q}' in vhost '/': "
                                "\"unsupported queue type 'bogus'\""),
    ({"x-single-active-consumer": "yes"},
     "'x-single-active-consumer' for queue '{q}' in vhost '/': "
     "{{unacceptable_type,longstr}}"),
])
def test_invalid_queue_args_are_406(connect, raw, args, detail):
    c = raw()
    c.handshake()
    c.open_channel(1)
    q = uid("bad")
    c.send_method(1, "queue.declare", 0, q, False, False, True, False, False, args)
    f = c.wait_channel_close(1)
    assert f.args == [406, "PRECONDITION_FAILED - invalid arg " + detail.format(q=q),
                      50, 10]
    assert not queue_exists(connect, q)


def test_invalid_dlx_type_is_406(connect):
    ch = connect().channel()
    q = uid("bad")
    channel_error(ch, lambda: ch.queue_declare(
        q, exclusive=True, arguments={"x-dead-letter-exchange": 5}), 406,
        "PRECONDITION_FAILED - invalid type 'signedint' for arg "
        "'x-dead-letter-exchange' in queue '%s' in vhost '/'" % q)


@pytest.mark.parametrize("args", [
    {"x-message-ttl": 0}, {"x-max-length": 0}, {"x-overflow": "reject-publish"},
    {"x-overflow": "drop-head"}, {"x-overflow": "reject-publish-dlx"},
    {"x-max-priority": 10}, {"x-queue-type": "classic"}, {"x-queue-mode": "lazy"},
    {"x-single-active-consumer": True}, {"x-unknown-arg": "whatever"},
    {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "rk"},
    {"x-expires": 60000}, {"x-max-length-bytes": 0},
])
def test_valid_queue_args_accepted(ch, args):
    ok = ch.queue_declare(uid("ok"), exclusive=True, arguments=args).method
    assert ok.message_count == 0


def test_declare_reserved_amq_prefix_is_403(ch):
    channel_error(ch, lambda: ch.queue_declare("amq.xyz"), 403,
                  "ACCESS_REFUSED - queue name 'amq.xyz' contains reserved "
                  "prefix 'amq.*'")


def test_passive_declare_reserved_prefix_missing_is_404(ch):
    channel_error(ch, lambda: ch.queue_declare("amq.xyz", passive=True), 404,
                  "NOT_FOUND - no queue 'amq.xyz' in vhost '/'")


def test_redeclare_server_named_queue_by_name_is_403(ch):
    """Unlike exchanges, the amq. prefix check for queues comes before the
    lookup: even an existing amq.gen- queue cannot be redeclared by name
    (only passively)."""
    q = ch.queue_declare("", exclusive=True).method.queue
    assert ch.queue_declare(q, passive=True).method.queue == q
    channel_error(ch, lambda: ch.queue_declare(q, exclusive=True), 403,
                  "ACCESS_REFUSED - queue name '%s' contains reserved prefix "
                  "'amq.*'" % q)


def test_declare_nowait(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    q = uid("nw")
    c.send_method(1, "queue.declare", 0, q, False, False, True, True, True, {})
    f = c.rpc(1, "queue.declare", 0, q, True, False, False, False, False, {})
    assert f.args == [q, 0, 0]


def test_empty_queue_name_refers_to_last_declared(raw):
    """RabbitMQ: an empty queue name in bind/purge/get/delete means the
    queue last declared on the channel; an empty routing key in that bind
    means the queue's name."""
    c = raw()
    c.handshake()
    c.open_channel(1)
    f = c.rpc(1, "queue.declare", 0, "", False, False, True, True, False, {})
    q = f.args[0]
    c.rpc(1, "queue.bind", 0, "", "amq.direct", "", False, {})
    c.publish(1, "amq.direct", q, b"via-shortcut")
    f = c.rpc(1, "queue.purge", 0, "", False)
    assert f.args == [1]
    f = c.rpc(1, "queue.delete", 0, "", False, False, False)
    assert f.args == [0]
    c.send_method(1, "queue.declare", 0, q, True, False, False, False, False, {})
    f = c.wait_channel_close(1)
    assert f.args[0] == 404


def test_empty_queue_name_without_previous_declare_is_404(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    c.send_method(1, "queue.purge", 0, "", False)
    f = c.wait_channel_close(1)
    assert f.args == [404, "NOT_FOUND - no previously declared queue", 50, 30]


# ---------------------------------------------------------------------------
# Bind / unbind
# ---------------------------------------------------------------------------

def test_bind_and_unbind(ch):
    x = uid("x")
    ch.exchange_declare(x, "direct")
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, x, "k")
    ch.basic_publish(x, "k", b"1")
    ch.queue_unbind(q, x, "k")
    ch.basic_publish(x, "k", b"2")
    assert drain(ch, q) == ["1"]
    ch.exchange_delete(x)


def test_bind_missing_queue_is_404(ch):
    q = uid("missing")
    channel_error(ch, lambda: ch.queue_bind(q, "amq.direct", "k"), 404,
                  "NOT_FOUND - no queue '%s' in vhost '/'" % q)


def test_bind_missing_exchange_is_404(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    x = uid("missing")
    channel_error(ch, lambda: ch.queue_bind(q, x, "k"), 404,
                  "NOT_FOUND - no exchange '%s' in vhost '/'" % x)


def test_unbind_missing_binding_is_ok(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_unbind(q, "amq.direct", "never-bound")
    assert ch.is_open


def test_unbind_missing_queue_is_ok(ch):
    """RabbitMQ 3.x: unbinding a queue that does not exist succeeds."""
    ch.queue_unbind(uid("missing"), "amq.direct", "k")
    assert ch.is_open


# ---------------------------------------------------------------------------
# Purge / delete
# ---------------------------------------------------------------------------

def test_purge_returns_count(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.confirm_delivery()
    for i in range(7):
        ch.basic_publish("", q, b"x")
    assert ch.queue_purge(q).method.message_count == 7
    assert ch.queue_purge(q).method.message_count == 0
    assert ch.basic_get(q)[0] is None


def test_purge_does_not_touch_unacked(ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    for i in range(3):
        ch.basic_publish("", q, b"%d" % i)
    m, _, body = ch.basic_get(q, auto_ack=False)
    assert body == b"0"
    assert ch.queue_purge(q).method.message_count == 2
    ch.basic_nack(m.delivery_tag, requeue=True)
    m2, _, body2 = ch.basic_get(q, auto_ack=True)
    assert body2 == b"0" and m2.redelivered


def test_purge_missing_is_404(ch):
    q = uid("missing")
    channel_error(ch, lambda: ch.queue_purge(q), 404,
                  "NOT_FOUND - no queue '%s' in vhost '/'" % q)


def test_delete_returns_message_count(connect):
    ch = connect().channel()
    q = uid("q")
    ch.queue_declare(q)
    ch.confirm_delivery()
    for i in range(4):
        ch.basic_publish("", q, b"x")
    assert ch.queue_delete(q).method.message_count == 4
    assert not queue_exists(connect, q)


def test_delete_missing_queue_is_ok(ch):
    """queue.delete of a missing queue returns delete-ok with 0 (RabbitMQ 3.x)."""
    assert ch.queue_delete(uid("missing")).method.message_count == 0


def test_delete_if_unused_with_consumer_is_406(connect):
    ch = connect().channel()
    q = uid("q")
    ch.queue_declare(q)
    ch.basic_consume(q, lambda *a: None)
    ch2 = connect().channel()
    channel_error(ch2, lambda: ch2.queue_delete(q, if_unused=True), 406,
                  "PRECONDITION_FAILED - queue '%s' in vhost '/' in use" % q)
    assert ch.queue_delete(q, if_unused=False).method.message_count == 0


def test_delete_if_unused_with_bindings_but_no_consumers_ok(ch):
    """if-unused looks at consumers only, not bindings."""
    q = uid("q")
    ch.queue_declare(q)
    ch.queue_bind(q, "amq.fanout")
    assert ch.queue_delete(q, if_unused=True).method.message_count == 0


def test_delete_if_empty_with_messages_is_406(connect):
    ch = connect().channel()
    q = uid("q")
    ch.queue_declare(q)
    ch.confirm_delivery()
    ch.basic_publish("", q, b"x")
    channel_error(ch, lambda: ch.queue_delete(q, if_empty=True), 406,
                  "PRECONDITION_FAILED - queue '%s' in vhost '/' not empty" % q)
    ch = connect().channel()
    ch.queue_purge(q)
    assert ch.queue_delete(q, if_empty=True).method.message_count == 0


def test_delete_if_empty_ignores_unacked(connect):
    """if-empty counts ready messages only; unacked ones don't block delete,
    and are not counted in delete-ok."""
    ch = connect().channel()
    q = uid("q")
    ch.queue_declare(q)
    ch.basic_publish("", q, b"x")
    ch.basic_publish("", q, b"y")
    m, _, _ = ch.basic_get(q, auto_ack=False)
    ch.basic_get(q, auto_ack=False)
    ch2 = connect().channel()
    assert ch2.queue_delete(q, if_empty=True).method.message_count == 0


def test_delete_removes_bindings(ch):
    q = uid("q")
    x = uid("x")
    ch.exchange_declare(x, "fanout", auto_delete=False)
    ch.queue_declare(q)
    ch.queue_bind(q, x)
    ch.queue_delete(q)
    ch.queue_declare(q)
    ch.basic_publish(x, "", b"x")
    assert drain(ch, q) == []
    ch.queue_delete(q)
    ch.exchange_delete(x)


# ---------------------------------------------------------------------------
# Exclusive and auto-delete
# ---------------------------------------------------------------------------

def test_exclusive_queue_from_other_connection_is_405(connect):
    ch = connect().channel()
    q = uid("excl")
    ch.queue_declare(q, exclusive=True)
    text = ("RESOURCE_LOCKED - cannot obtain exclusive access to locked queue "
            "'%s' in vhost '/'. It could be originally declared on another "
            "connection or the exclusive property value does not match that "
            "of the original declaration." % q)
    other = connect()
    for op in (lambda c: c.queue_declare(q, exclusive=True),
               lambda c: c.queue_declare(q),
               lambda c: c.basic_consume(q, lambda *a: None),
               lambda c: c.basic_get(q),
               lambda c: c.queue_purge(q),
               lambda c: c.queue_bind(q, "amq.fanout"),
               lambda c: c.queue_delete(q)):
        c2 = other.channel()
        channel_error(c2, lambda: op(c2), 405, text)
    # passive declare from another connection is also refused
    c2 = other.channel()
    channel_error(c2, lambda: c2.queue_declare(q, passive=True), 405, text)
    # but publishing to it works
    c2 = other.channel()
    c2.confirm_delivery()
    c2.basic_publish("", q, b"from-other")
    assert drain(ch, q) == ["from-other"]


def test_exclusive_queue_other_channel_same_connection_ok(conn):
    a, b = conn.channel(), conn.channel()
    q = uid("excl")
    a.queue_declare(q, exclusive=True)
    b.queue_declare(q, exclusive=True)
    b.basic_publish("", q, b"x")
    assert drain(b, q) == ["x"]


def test_exclusive_queue_deleted_when_connection_closes(connect):
    c = connect()
    q = uid("excl")
    c.channel().queue_declare(q, exclusive=True)
    c.close()
    assert wait_until(lambda: not queue_exists(connect, q), 5)


def test_exclusive_queue_survives_channel_close(connect):
    c = connect()
    ch = c.channel()
    q = uid("excl")
    ch.queue_declare(q, exclusive=True)
    ch.close()
    assert c.channel().queue_declare(q, passive=True).method.queue == q


def test_exclusive_queue_deleted_when_connection_dies(connect, raw):
    r = raw()
    r.handshake()
    r.open_channel(1)
    q = uid("excl")
    r.rpc(1, "queue.declare", 0, q, False, False, True, False, False, {})
    r.close()  # abrupt: no connection.close
    assert wait_until(lambda: not queue_exists(connect, q), 5)


def test_auto_delete_queue_deleted_when_last_consumer_cancels(connect):
    ch = connect().channel()
    q = uid("ad")
    ch.queue_declare(q, auto_delete=True)
    # never had a consumer: not deleted
    assert queue_exists(connect, q)
    t1 = ch.basic_consume(q, lambda *a: None)
    t2 = ch.basic_consume(q, lambda *a: None)
    ch.basic_cancel(t1)
    assert queue_exists(connect, q)
    ch.basic_cancel(t2)
    assert wait_until(lambda: not queue_exists(connect, q), 5)


def test_auto_delete_queue_deleted_when_consumer_channel_closes(connect):
    c = connect()
    ch = c.channel()
    q = uid("ad")
    ch.queue_declare(q, auto_delete=True)
    ch.basic_consume(q, lambda *a: None)
    ch.close()
    assert wait_until(lambda: not queue_exists(connect, q), 5)


def test_auto_delete_queue_not_deleted_by_basic_get(connect):
    ch = connect().channel()
    q = uid("ad")
    ch.queue_declare(q, auto_delete=True)
    ch.basic_publish("", q, b"x")
    ch.basic_get(q, auto_ack=True)
    assert queue_exists(connect, q)
    ch.queue_delete(q)


def test_auto_delete_queue_with_messages_is_deleted_anyway(connect):
    ch = connect().channel()
    q = uid("ad")
    ch.queue_declare(q, auto_delete=True)
    for _ in range(3):
        ch.basic_publish("", q, b"x")
    tag = ch.basic_consume(q, lambda *a: None, auto_ack=False)
    ch.basic_cancel(tag)
    assert wait_until(lambda: not queue_exists(connect, q), 5)
