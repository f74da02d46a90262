"""Which errors close the channel and which close the connection.

One table, checked on a raw socket: for each provoking action the exact
reply code, text, offending class/method ids and level.  After a channel
error the connection and its other channels keep working; after a
connection error the socket closes once close-ok is sent.
"""

import time

import pika
import pika.exceptions
import pytest

import rawamqp
from helpers import uid


def _declare(c, ch, name="", exclusive=True, auto_delete=True, args=None):
    return c.rpc(ch, "queue.declare", 0, name, False, False, exclusive, auto_delete,
                 False, args or {}).args[0]


def _setup_queue(c, ctx):
    # exclusive: removed with the connection, whatever the test outcome
    ctx["q"] = _declare(c, 1, uid("eq"), exclusive=True, auto_delete=False)


def _setup_consumer(c, ctx):
    _setup_queue(c, ctx)
    c.rpc(1, "basic.consume", 0, ctx["q"], "busy", False, False, False, False, {})


def _setup_message(c, ctx):
    _setup_queue(c, ctx)
    c.publish(1, "", ctx["q"], b"m")
    c.rpc(1, "queue.declare", 0, ctx["q"], True, False, False, False, False, {})


def _setup_internal(c, ctx):
    ctx["x"] = uid("ix")
    c.rpc(1, "exchange.declare", 0, ctx["x"], "fanout", False, False, True, True,
          False, {})


def _setup_dup_tag(c, ctx):
    _setup_queue(c, ctx)
    c.rpc(1, "basic.consume", 0, ctx["q"], "dup", False, False, False, False, {})


CASES = [
    # id, setup, action(ctx) -> (method name, args), level, code, text, cls, mid
    ("queue-passive-404", None,
     lambda x: ("queue.declare", (0, "nope-" + x["u"], True, False, False, False,
                                  False, {})),
     "channel", 404, "NOT_FOUND - no queue 'nope-{u}' in vhost '/'", 50, 10),
    ("exchange-passive-404", None,
     lambda x: ("exchange.declare", (0, "nope-" + x["u"], "direct", True, False, False,
                                     False, False, {})),
     "channel", 404, "NOT_FOUND - no exchange 'nope-{u}' in vhost '/'", 40, 10),
    ("exchange-bad-type-503", None,
     lambda x: ("exchange.declare", (0, "x-" + x["u"], "nosuch", False, False, False,
                                     False, False, {})),
     "connection", 503, "COMMAND_INVALID - unknown exchange type 'nosuch'", 40, 10),
    ("exchange-reserved-403", None,
     lambda x: ("exchange.declare", (0, "amq.z" + x["u"], "direct", False, False,
                                     False, False, False, {})),
     "channel", 403, "ACCESS_REFUSED - exchange name 'amq.z{u}' contains reserved "
     "prefix 'amq.*'", 40, 10),
    ("queue-reserved-403", None,
     lambda x: ("queue.declare", (0, "amq.q" + x["u"], False, False, False, False,
                                  False, {})),
     "channel", 403, "ACCESS_REFUSED - queue name 'amq.q{u}' contains reserved "
     "prefix 'amq.*'", 50, 10),
    ("queue-delete-if-unused-406", _setup_consumer,
     lambda x: ("queue.delete", (0, x["q"], True, False, False)),
     "channel", 406, "PRECONDITION_FAILED - queue '{q}' in vhost '/' in use", 50, 40),
    ("queue-delete-if-empty-406", _setup_message,
     lambda x: ("queue.delete", (0, x["q"], False, True, False)),
     "channel", 406, "PRECONDITION_FAILED - queue '{q}' in vhost '/' not empty", 50, 40),
    ("queue-bind-missing-exchange-404", _setup_queue,
     lambda x: ("queue.bind", (0, x["q"], "nox-" + x["u"], "k", False, {})),
     "channel", 404, "NOT_FOUND - no exchange 'nox-{u}' in vhost '/'", 50, 20),
    ("publish-missing-exchange-404", None,
     lambda x: ("basic.publish", (0, "nox-" + x["u"], "k", False, False)),
     "channel", 404, "NOT_FOUND - no exchange 'nox-{u}' in vhost '/'", 60, 40),
    ("publish-internal-403", _setup_internal,
     lambda x: ("basic.publish", (0, x["x"], "k", False, False)),
     "channel", 403, "ACCESS_REFUSED - cannot publish to internal exchange '{x}' in "
     "vhost '/'", 60, 40),
    ("publish-immediate-540", None,
     lambda x: ("basic.publish", (0, "", "k", False, True)),
     "connection", 540, "NOT_IMPLEMENTED - immediate=true", 60, 40),
    ("consume-missing-404", None,
     lambda x: ("basic.consume", (0, "noq-" + x["u"], "", False, False, False, False,
                                  {})),
     "channel", 404, "NOT_FOUND - no queue 'noq-{u}' in vhost '/'", 60, 20),
    ("consume-dup-tag-530", _setup_dup_tag,
     lambda x: ("basic.consume", (0, x["q"], "dup", False, False, False, False, {})),
     "connection", 530, "NOT_ALLOWED - attempt to reuse consumer tag 'dup'", 60, 20),
    ("get-missing-404", None,
     lambda x: ("basic.get", (0, "noq-" + x["u"], False)),
     "channel", 404, "NOT_FOUND - no queue 'noq-{u}' in vhost '/'", 60, 70),
    ("ack-unknown-406", None, lambda x: ("basic.ack", (5, False)),
     "channel", 406, "PRECONDITION_FAILED - unknown delivery tag 5", 60, 80),
    ("qos-prefetch-size-540", None, lambda x: ("basic.qos", (10, 0, False)),
     "connection", 540, "NOT_IMPLEMENTED - prefetch_size!=0 (10)", 60, 10),
    ("recover-false-540", None, lambda x: ("basic.recover", (False,)),
     "connection", 540, "NOT_IMPLEMENTED - requeue=false", 60, 110),
    ("flow-false-540", None, lambda x: ("channel.flow", (False,)),
     "connection", 540, "NOT_IMPLEMENTED - active=false", 20, 20),
    ("tx-commit-406", None, lambda x: ("tx.commit", ()),
     "channel", 406, "PRECONDITION_FAILED - channel is not transactional", 90, 20),
    ("reopen-channel-504", None, lambda x: ("channel.open", ("",)),
     "connection", 504, "CHANNEL_ERROR - second 'channel.open' seen", 20, 10),
    ("close-ok-unsolicited-503", None, lambda x: ("channel.close-ok", ()),
     "connection", 503, "COMMAND_INVALID - unimplemented method", 20, 41),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_error_level_and_code(raw, case):
    _id, setup, action, level, code, text, cls, mid = case
    c = raw()
    c.handshake()
    c.open_channel(1)
    c.open_channel(2)
    ctx = {"u": uid("")[1:]}
    if setup:
        setup(c, ctx)
    name, args = action(ctx)
    if name == "basic.publish":
        c.send(rawamqp.method_frame(1, name, *args) + rawamqp.header_frame(1, 4)
               + rawamqp.body_frame(1, b"body"))
    else:
        c.send_method(1, name, *args)
    expected_text = text.format(**ctx)
    f = c.read_method(timeout=10)
    if level == "channel":
        assert f.name == "channel.close" and f.channel == 1, f
        assert f.args == [code, expected_text, cls, mid]
        c.send_method(1, "channel.close-ok")
        # the connection and its other channel carry on
        q = _declare(c, 2)
        assert q.startswith("amq.gen-")
        # and the closed channel can be opened again
        assert c.open_channel(1).name == "channel.open-ok"
    else:
        assert f.name == "connection.close" and f.channel == 0, f
        assert f.args == [code, expected_text, cls, mid]
        c.send_method(0, "connection.close-ok")
        assert c.read_until_eof(timeout=10) == b""


def test_channel_error_keeps_connection_and_other_channels(conn):
    a, b = conn.channel(), conn.channel()
    q = b.queue_declare("", exclusive=True).method.queue
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        a.queue_declare(uid("missing"), passive=True)
    assert ei.value.reply_code == 404
    assert a.is_closed and b.is_open and conn.is_open
    b.basic_publish("", q, b"still")
    m, p, body = b.basic_get(q, auto_ack=True)
    assert body == b"still"
    c2 = conn.channel()
    assert c2.is_open


def test_connection_error_closes_every_channel(conn):
    a, b = conn.channel(), conn.channel()
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as ei:
        a.exchange_declare(uid("x"), "no-such-type")
    assert ei.value.reply_code == 503
    assert conn.is_closed
    assert a.is_closed and b.is_closed


def test_soft_error_in_one_channel_does_not_disturb_consumer_on_another(conn):
    cons_ch, bad_ch = conn.channel(), conn.channel()
    q = cons_ch.queue_declare("", exclusive=True).method.queue
    got = []
    cons_ch.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=True)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        bad_ch.basic_get(uid("missing"))
    pub = conn.channel()
    pub.basic_publish("", q, b"after-error")
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        conn.process_data_events(0.05)
    assert got == [b"after-error"]


def test_many_channel_errors_on_one_connection(raw):
    """Repeated channel errors and reopen of the same channel number."""
    c = raw()
    c.handshake()
    for i in range(50):
        c.open_channel(1)
        c.send_method(1, "queue.declare", 0, "missing-%d" % i, True, False, False,
                      False, False, {})
        f = c.wait_channel_close(1)
        assert f.args[0] == 404
    c.open_channel(1)
    assert _declare(c, 1).startswith("amq.gen-")
