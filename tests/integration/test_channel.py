"""Channel lifecycle, flow, limits, and content framing across channels."""

import hashlib
import os
import threading

import pika
import pika.exceptions
import pytest

import rawamqp
from rawamqp import expect_connection_close
from helpers import uid


def test_open_and_close_channels_with_pika(conn):
    chans = [conn.channel() for _ in range(5)]
    nums = [c.channel_number for c in chans]
    assert len(set(nums)) == 5
    for c in chans:
        assert c.is_open
    for c in chans:
        c.close()
        assert c.is_closed
    assert conn.is_open
    assert conn.channel().is_open


def test_open_and_close_raw(raw):
    c = raw()
    c.handshake()
    f = c.open_channel(1)
    assert f.name == "channel.open-ok" and f.args == [b""]
    f = c.rpc(1, "channel.close", 200, "bye", 0, 0)
    assert f.name == "channel.close-ok" and f.channel == 1
    # the same number can be opened again
    assert c.open_channel(1).name == "channel.open-ok"


def test_channel_flow_active_true_is_acked(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    f = c.rpc(1, "channel.flow", True)
    assert f.args == [True]


def test_channel_flow_active_false_is_540(raw):
    """RabbitMQ does not implement consumer flow control via channel.flow:
    active=false is a connection error 540 NOT_IMPLEMENTED."""
    c = raw()
    c.handshake()
    c.open_channel(1)
    c.send_method(1, "channel.flow", False)
    expect_connection_close(c, 540, "NOT_IMPLEMENTED - active=false", 20, 20)


def test_pika_flow_true(ch):
    assert ch.flow(True) is True


def test_reopen_open_channel_is_504(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    c.send_method(1, "channel.open", "")
    f = expect_connection_close(c, 504, "CHANNEL_ERROR - second 'channel.open' seen",
                                20, 10)
    assert f.channel == 0
    c.assert_eof(timeout=10)


def test_method_on_unopened_channel_is_504(raw):
    c = raw()
    c.handshake()
    c.send_method(3, "queue.declare", 0, "", False, False, False, False, False, {})
    expect_connection_close(c, 504, "CHANNEL_ERROR - expected 'channel.open'", 50, 10)


def test_non_connection_method_on_channel_zero_is_504(raw):
    c = raw()
    c.handshake()
    c.send_method(0, "queue.declare", 0, "", False, False, False, False, False, {})
    expect_connection_close(
        c, 504, "CHANNEL_ERROR - unexpected method in connection state running",
        50, 10)


def test_close_already_closed_channel_is_504(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    c.rpc(1, "channel.close", 200, "", 0, 0)
    c.send_method(1, "channel.close", 200, "", 0, 0)
    expect_connection_close(c, 504, "CHANNEL_ERROR - expected 'channel.open'", 20, 40)


def test_unsolicited_channel_close_ok_is_503(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    c.send_method(1, "channel.close-ok")
    expect_connection_close(c, 503, "COMMAND_INVALID - unimplemented method", 20, 41)


def test_channel_error_then_frames_ignored_until_close_ok(raw):
    """After a channel error the server sends channel.close and drops
    everything on that channel until close-ok; other channels carry on."""
    c = raw()
    c.handshake()
    c.open_channel(1)
    c.open_channel(2)
    missing = uid("missing")
    c.send_method(1, "queue.declare", 0, missing, True, False, False, False, False, {})
    f = c.read_method()
    assert f.name == "channel.close" and f.channel == 1, f
    assert f.args[0] == 404
    assert f.args[1] == "NOT_FOUND - no queue '%s' in vhost '/'" % missing
    assert (f.args[2], f.args[3]) == (50, 10)
    # ignored while the channel is closing
    c.send_method(1, "queue.declare", 0, "", False, False, True, True, False, {})
    # channel 2 still works
    f = c.rpc(2, "queue.declare", 0, "", False, False, True, True, False, {})
    assert f.args[0].startswith("amq.gen-")
    c.send_method(1, "channel.close-ok")
    assert c.open_channel(1).name == "channel.open-ok"
    f = c.rpc(1, "queue.declare", 0, "", False, False, True, True, False, {})
    assert f.args[0].startswith("amq.gen-")


def test_channel_max_with_pika(connect):
    c = connect(channel_max=3)
    chans = [c.channel() for _ in range(3)]
    assert all(x.is_open for x in chans)
    with pytest.raises((pika.exceptions.ConnectionClosed,
                        pika.exceptions.NoFreeChannels,
                        pika.exceptions.ChannelClosed)):
        c.channel()


@pytest.mark.parametrize("frame_max", [4096, 131072])
@pytest.mark.parametrize("size", [300 * 1024, 1024 * 1024])
def test_large_message_split_across_frames(connect, frame_max, size):
    c = connect(frame_max=frame_max)
    ch = c.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    body = os.urandom(size)
    ch.basic_publish("", q, body)
    m, p, got = ch.basic_get(q, auto_ack=True)
    assert m is not None
    assert len(got) == size
    assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()


def test_large_message_raw_frames_at_frame_max(raw):
    """Publish body frames of exactly frame_max - 8 payload bytes; the
    message comes back byte-exact."""
    c = raw()
    c.handshake(frame_max=4096)
    c.open_channel(1)
    q = uid("big")
    c.rpc(1, "queue.declare", 0, q, False, False, True, True, False, {})
    body = os.urandom(300 * 1024)
    c.publish(1, "", q, body, frame_max=4096)
    c.send_method(1, "basic.get", 0, q, True)
    c.expect("basic.get-ok", 1)
    h, got = c.read_content()
    assert h.body_size == len(body)
    assert got == body


def test_interleaved_content_on_two_channels(raw):
    """Frames of content on different channels may interleave."""
    c = raw()
    c.handshake(frame_max=4096)
    c.open_channel(1)
    c.open_channel(2)
    q = uid("inter")
    c.rpc(1, "queue.declare", 0, q, False, False, True, True, False, {})
    body1 = b"A" * 10000 + os.urandom(5000)
    body2 = b"B" * 9000 + os.urandom(3000)
    chunk = 4088

    def parts(b):
        return [b[i:i + chunk] for i in range(0, len(b), chunk)]

    p1, p2 = parts(body1), parts(body2)
    data = rawamqp.method_frame(1, "basic.publish", 0, "", q, False, False)
    data += rawamqp.method_frame(2, "basic.publish", 0, "", q, False, False)
    data += rawamqp.header_frame(2, len(body2))
    data += rawamqp.header_frame(1, len(body1))
    for i in range(max(len(p1), len(p2))):
        if i < len(p2):
            data += rawamqp.body_frame(2, p2[i])
        if i < len(p1):
            data += rawamqp.body_frame(1, p1[i])
    c.send(data)
    got = []
    for _ in range(2):
        c.send_method(1, "basic.get", 0, q, True)
        c.expect("basic.get-ok", 1)
        _h, b = c.read_content()
        got.append(b)
    # channels are independent, so the order between them is not defined
    assert sorted(got) == sorted([body1, body2])


def test_concurrent_publishers_on_two_channels_with_pika(connect):
    q = uid("conc")
    setup = connect().channel()
    setup.queue_declare(q, auto_delete=False)
    n = 200
    errors = []

    def pub(tag):
        try:
            c = connect()
            ch = c.channel()
            for i in range(n):
                ch.basic_publish("", q, ("%s-%d" % (tag, i)).encode())
            c.close()
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=pub, args=(t,)) for t in "xy"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    seen = {"x": [], "y": []}
    for _ in range(2 * n):
        m, p, body = setup.basic_get(q, auto_ack=True)
        assert m is not None
        tag, i = body.decode().split("-")
        seen[tag].append(int(i))
    # per-publisher order is preserved
    assert seen["x"] == list(range(n))
    assert seen["y"] == list(range(n))
    setup.queue_delete(q)


def test_zero_length_body_has_no_body_frame(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    q = uid("empty")
    c.rpc(1, "queue.declare", 0, q, False, False, True, True, False, {})
    c.publish(1, "", q, b"")
    c.send_method(1, "basic.get", 0, q, True)
    c.expect("basic.get-ok", 1)
    h = c.read_method()
    assert h.type == rawamqp.FRAME_HEADER and h.body_size == 0
    # next thing is the reply to a new request, not a body frame
    f = c.rpc(1, "queue.purge", 0, q, False)
    assert f.args == [0]
