"""Malformed input on raw sockets: bad frames, oversized frames, frames out
of sequence, undecodable arguments, deep tables and a peer that stops
reading.  Each must get the right AMQP error (or be accepted exactly as
RabbitMQ accepts it), never a crash: every test ends by checking that the
broker still serves a fresh connection."""

import os
import socket
import struct
import threading
import time

import pytest

import rawamqp
from rawamqp import (FRAME_BODY, FRAME_HEADER, FRAME_METHOD, body_frame, frame,
                     header_frame, method_frame, method_payload, shortstr)
from helpers import uid


@pytest.fixture
def opened(raw):
    """A raw connection (frame_max 131072) with channel 1 open."""
    def _open(frame_max=131072):
        c = raw()
        assert c.handshake(frame_max=frame_max).name == "connection.open-ok"
        c.open_channel(1)
        return c
    return _open


@pytest.fixture(autouse=True)
def broker_still_alive(broker):
    """After each bad-input test the broker must still accept a connection."""
    yield
    with broker.raw() as c:
        assert c.handshake().name == "connection.open-ok"
        c.open_channel(1)
        f = c.rpc(1, "queue.declare", 0, "", False, False, True, True, False, {})
        assert f.args[0].startswith("amq.gen-")


def close_then_eof(c, code, text, cls=0, mid=0, exact=True):
    """connection.close with code/text/class/method, then the socket closes
    (within 10 s, whether or not the client answers close-ok).

    RabbitMQ's FRAME_ERROR texts embed Erlang terms ("all octets =
    <<0,20>>", "{frame_too_large,5000,4088}"); only their "FRAME_ERROR - "
    prefix is asserted (frame_error() below), the full RabbitMQ text is
    kept beside each test for reference.  Readable texts are exact."""
    f = c.read_method(timeout=10)
    assert f.name == "connection.close" and f.channel == 0, f
    rcode, rtext, rcls, rmid = f.args
    assert rcode == code, f
    if exact:
        assert rtext == text, f
    else:
        assert rtext.startswith(text), f
    assert (rcls, rmid) == (cls, mid), f
    try:
        c.send_method(0, "connection.close-ok")
    except OSError:
        pass
    c.read_until_eof(timeout=10)
    return f


def frame_error(c, rabbit_text, cls=0, mid=0, code=501):
    """A FRAME_ERROR-style close; rabbit_text is what RabbitMQ 3.10 sends."""
    prefix = rabbit_text.split(" - ")[0] + " - "
    return close_then_eof(c, code, prefix, cls, mid, exact=False)


def publish_frames(q, body_size):
    return (method_frame(1, "basic.publish", 0, "", q, False, False)
            + header_frame(1, body_size))


# ---------------------------------------------------------------------------
# Frame-level errors: 501 FRAME_ERROR, class/method 0/0
# ---------------------------------------------------------------------------

def test_bad_frame_end_octet_is_501(opened):
    c = opened()
    c.send(frame(FRAME_METHOD, 1, method_payload("channel.flow", True), end=0x00))
    frame_error(c, "FRAME_ERROR - type 1, all octets = <<0,20,0,20,1>>: "
                "{invalid_frame_end_marker,0}")


def test_bad_frame_end_octet_on_heartbeat_is_501(opened):
    c = opened()
    c.send(frame(rawamqp.FRAME_HEARTBEAT, 0, b"", end=0xCD))
    frame_error(c, "FRAME_ERROR - type 8, all octets = <<>>: "
                "{invalid_frame_end_marker,205}")


def test_oversized_body_frame_is_501(opened):
    """frame_max 4096 negotiated; a 5000-byte body frame is refused.  The
    text reports the limit as frame_max - 8."""
    c = opened(frame_max=4096)
    c.send(publish_frames("x", 5000) + body_frame(1, b"x" * 5000))
    frame_error(c, "FRAME_ERROR - type 3, all octets = <<>>: "
                "{frame_too_large,5000,4088}")


def test_frame_of_exactly_frame_max_is_accepted(opened):
    c = opened(frame_max=4096)
    q = c.rpc(1, "queue.declare", 0, "", False, False, True, True, False, {}).args[0]
    body = os.urandom(4088)  # 7 + 4088 + 1 = 4096 octets on the wire
    c.send(publish_frames(q, len(body)) + body_frame(1, body))
    c.send_method(1, "basic.get", 0, q, True)
    c.expect("basic.get-ok", 1)
    _h, got = c.read_content()
    assert got == body


def test_frame_max_tolerates_eight_octets_of_slack(opened):
    """RabbitMQ accepts a payload of up to frame_max octets (a frame of
    frame_max + 8) and refuses frame_max + 1: clients that forget the frame
    overhead still work."""
    c = opened(frame_max=4096)
    q = c.rpc(1, "queue.declare", 0, "", False, False, True, True, False, {}).args[0]
    body = os.urandom(4096)
    c.send(publish_frames(q, len(body)) + body_frame(1, body))
    c.send_method(1, "basic.get", 0, q, True)
    c.expect("basic.get-ok", 1)
    _h, got = c.read_content()
    assert got == body
    c.send(publish_frames(q, 4097) + body_frame(1, b"y" * 4097))
    frame_error(c, "FRAME_ERROR - type 3, all octets = <<>>: "
                "{frame_too_large,4097,4088}")


def test_huge_length_field_is_501_without_waiting_for_payload(opened):
    c = opened()
    c.send(struct.pack(">BHI", 1, 1, 0xFFFFFFF0) + b"abc")
    frame_error(c, "FRAME_ERROR - type 1, all octets = <<>>: "
                "{frame_too_large,4294967280,131064}")


@pytest.mark.parametrize("ftype", [4, 9, 0, 255])
def test_unknown_frame_type_is_501(opened, ftype):
    c = opened()
    c.send(frame(ftype, 1, b"abc"))
    frame_error(c, "FRAME_ERROR - type %d, all octets = <<\"abc\">>: "
                "unknown_frame" % ftype)


def test_heartbeat_with_payload_is_501(opened):
    c = opened()
    c.send(frame(rawamqp.FRAME_HEARTBEAT, 0, b"xyz"))
    frame_error(c, "FRAME_ERROR - type 8, all octets = <<\"xyz\">>: "
                "unknown_frame")


def test_heartbeat_on_nonzero_channel_is_505(opened):
    c = opened()
    c.send(frame(rawamqp.FRAME_HEARTBEAT, 1, b""))
    frame_error(c, "UNEXPECTED_FRAME - type 8, all octets = <<>>", code=505)


def test_method_frame_too_short_for_ids_is_501(opened):
    c = opened()
    c.send(frame(FRAME_METHOD, 1, b"\x00\x14"))
    frame_error(c, "FRAME_ERROR - type 1, all octets = <<0,20>>: unknown_frame")


# ---------------------------------------------------------------------------
# Undecodable method arguments: 501 with the method's class/method ids
# ---------------------------------------------------------------------------

def test_truncated_method_arguments_is_501(opened):
    c = opened()
    full = method_payload("queue.declare", 0, "abc", False, False, False, False,
                          False, {})
    c.send(frame(FRAME_METHOD, 1, full[:8]))
    frame_error(c, "FRAME_ERROR - cannot decode <<0,0,3,97>>", 50, 10)


def test_shortstr_length_past_end_is_501(opened):
    c = opened()
    c.send(frame(FRAME_METHOD, 1, struct.pack(">HHH", 50, 10, 0) + b"\xffab"))
    frame_error(c, "FRAME_ERROR - cannot decode <<0,0,255,97,98>>", 50, 10)


def test_table_length_past_end_is_501(opened):
    c = opened()
    payload = (struct.pack(">HHH", 50, 10, 0) + shortstr("q") + b"\x00"
               + struct.pack(">I", 1000) + b"ab")
    c.send(frame(FRAME_METHOD, 1, payload))
    frame_error(c, "FRAME_ERROR - cannot decode "
                "<<0,0,1,113,0,0,0,3,232,97,98>>", 50, 10)


def test_trailing_bytes_after_arguments_is_501(opened):
    c = opened()
    c.send(frame(FRAME_METHOD, 1, method_payload("channel.flow", True) + b"garbage"))
    frame_error(c, "FRAME_ERROR - cannot decode "
                "<<1,103,97,114,98,97,103,101>>", 20, 20)


# ---------------------------------------------------------------------------
# Frames out of sequence: 505 UNEXPECTED_FRAME
# ---------------------------------------------------------------------------

def test_content_header_without_publish_is_505(opened):
    c = opened()
    c.send(header_frame(1, 5))
    close_then_eof(c, 505, "UNEXPECTED_FRAME - expected method frame, got non "
                   "method frame instead")


def test_body_without_publish_is_505(opened):
    c = opened()
    c.send(body_frame(1, b"abc"))
    close_then_eof(c, 505, "UNEXPECTED_FRAME - expected method frame, got non "
                   "method frame instead")


def test_body_where_header_expected_is_505(opened):
    c = opened()
    c.send(method_frame(1, "basic.publish", 0, "", "q", False, False)
           + body_frame(1, b"abc"))
    close_then_eof(c, 505, "UNEXPECTED_FRAME - expected content header for class "
                   "60, got non content header frame instead", 60, 40)


def test_method_where_header_expected_is_505(opened):
    c = opened()
    c.send(method_frame(1, "basic.publish", 0, "", "q", False, False)
           + method_frame(1, "channel.flow", True))
    close_then_eof(c, 505, "UNEXPECTED_FRAME - expected content header for class "
                   "60, got non content header frame instead", 60, 40)


def test_method_while_expecting_body_is_505(opened):
    c = opened()
    c.send(publish_frames("q", 5) + body_frame(1, b"ab")
           + method_frame(1, "channel.flow", True))
    close_then_eof(c, 505, "UNEXPECTED_FRAME - expected content body, got non "
                   "content body frame instead", 60, 40)


def test_body_longer_than_declared_size_is_505(opened):
    """A body frame overrunning the declared body size.  RabbitMQ only
    notices at the next frame on the channel (sent here right away); the
    error blames the publish."""
    c = opened()
    c.send(publish_frames("q", 2) + body_frame(1, b"abcd")
           + method_frame(1, "basic.qos", 0, 1, False))
    close_then_eof(c, 505, "UNEXPECTED_FRAME - expected content body, got non "
                   "content body frame instead", 60, 40)


def test_content_header_for_wrong_class_is_505(opened):
    c = opened()
    c.send(method_frame(1, "basic.publish", 0, "", "q", False, False)
           + header_frame(1, 2, class_id=50) + body_frame(1, b"ab"))
    close_then_eof(c, 505, "UNEXPECTED_FRAME - expected content header for class "
                   "60, got one for class 50 instead", 60, 40)


@pytest.mark.parametrize("ftype", [FRAME_HEADER, FRAME_BODY])
def test_content_frame_on_unopened_channel_is_505(opened, ftype):
    c = opened()
    data = header_frame(5, 2) if ftype == FRAME_HEADER else body_frame(5, b"ab")
    c.send(data)
    close_then_eof(c, 505, "UNEXPECTED_FRAME - expected method frame, got non "
                   "method frame instead")


def test_method_frame_on_unopened_channel_is_504(opened):
    c = opened()
    c.send_method(7, "basic.qos", 0, 1, False)
    close_then_eof(c, 504, "CHANNEL_ERROR - expected 'channel.open'", 60, 10)


def test_interleaved_channel_content_does_not_confuse_expectations(opened):
    """A method on channel 2 while channel 1 awaits its body is fine."""
    c = opened()
    c.open_channel(2)
    q = c.rpc(1, "queue.declare", 0, "", False, False, True, True, False, {}).args[0]
    c.send(publish_frames(q, 4) + body_frame(1, b"ab"))
    f = c.rpc(2, "queue.declare", 0, q, True, False, False, False, False, {})
    assert f.args[0] == q
    c.send(body_frame(1, b"cd"))
    c.send_method(1, "basic.get", 0, q, True)
    c.expect("basic.get-ok", 1)
    assert c.read_content()[1] == b"abcd"


# ---------------------------------------------------------------------------
# Unknown methods and field types
# ---------------------------------------------------------------------------

def _ends_connection_with(c, broker, strict_code, cls, mid):
    """RabbitMQ 3.10 crashes its reader on these inputs and just closes the
    socket.  warren must send connection.close with strict_code (echoing the
    class/method ids); against an external broker a bare close is accepted."""
    f = c.wait_close(timeout=10)
    if f is None:
        assert broker.external, "warren must send connection.close %d" % strict_code
        return
    assert f.args[0] == strict_code, f
    assert (f.args[2], f.args[3]) == (cls, mid), f
    c.read_until_eof(timeout=10)


@pytest.mark.parametrize("cls,mid,channel", [(999, 10, 1), (60, 999, 1), (10, 999, 0)])
def test_unknown_class_or_method_ends_connection(opened, broker, cls, mid, channel):
    c = opened()
    c.send(frame(FRAME_METHOD, channel, struct.pack(">HH", cls, mid)))
    _ends_connection_with(c, broker, 540, cls, mid)


def test_unknown_field_type_in_arguments_ends_connection(opened, broker):
    c = opened()
    payload = (struct.pack(">HHH", 50, 10, 0) + shortstr("q") + b"\x00"
               + struct.pack(">I", 4) + b"\x01aZ\x00")
    c.send(frame(FRAME_METHOD, 1, payload))
    _ends_connection_with(c, broker, 501, 50, 10)


def test_unknown_field_type_in_message_headers_is_connection_error(opened):
    """RabbitMQ answers 541 INTERNAL_ERROR (class/method 0/0); any
    connection-level close is acceptable, never a crash."""
    c = opened()
    q = c.rpc(1, "queue.declare", 0, "", False, False, True, True, False, {}).args[0]
    props = struct.pack(">I", 4) + b"\x01aZ\x00"
    c.publish(1, "", q, b"x", flags=1 << 13, props=props)
    f = c.wait_close(timeout=10)
    assert f is not None and f.channel == 0
    assert f.args[0] in (501, 502, 541), f


@pytest.mark.parametrize("name,args,cls,mid", [
    ("channel.open-ok", ("",), 20, 11),
    ("channel.flow-ok", (True,), 20, 21),
    ("queue.declare-ok", ("q", 0, 0), 50, 11),
    ("basic.cancel-ok", ("x",), 60, 31),
    ("channel.close-ok", (), 20, 41),
])
def test_server_only_methods_from_client_are_503(opened, name, args, cls, mid):
    c = opened()
    c.send_method(1, name, *args)
    close_then_eof(c, 503, "COMMAND_INVALID - unimplemented method", cls, mid)


@pytest.mark.parametrize("name,args,cls,mid", [
    ("connection.open", ("/", "", False), 10, 40),
    ("connection.tune-ok", (0, 131072, 0), 10, 31),
    ("connection.start", (0, 9, {}, "PLAIN", "en_US"), 10, 10),
    ("channel.open", ("",), 20, 10),
    ("queue.declare", (0, "", False, False, False, False, False, {}), 50, 10),
])
def test_non_connection_methods_on_channel_zero_are_504(opened, name, args, cls, mid):
    c = opened()
    c.send_method(0, name, *args)
    close_then_eof(c, 504, "CHANNEL_ERROR - unexpected method in connection state "
                   "running", cls, mid)


def test_publish_on_channel_zero_is_504(opened):
    c = opened()
    c.send(method_frame(0, "basic.publish", 0, "", "x", False, False))
    close_then_eof(c, 504, "CHANNEL_ERROR - unexpected method in connection state "
                   "running", 60, 40)


# ---------------------------------------------------------------------------
# Deeply nested tables
# ---------------------------------------------------------------------------

def nested_table(depth):
    t = struct.pack(">I", 0)
    for _ in range(depth):
        inner = shortstr("n") + b"F" + t
        t = struct.pack(">I", len(inner)) + inner
    return t


def nested_array_table(depth):
    a = struct.pack(">I", 0)
    for _ in range(depth):
        a = struct.pack(">I", len(a) + 1) + b"A" + a
    inner = shortstr("a") + b"A" + a
    return struct.pack(">I", len(inner)) + inner


def _declare_with_raw_args(c, args_bytes):
    payload = (struct.pack(">HHH", 50, 10, 0) + shortstr("") + b"\x0c"  # excl, autodel
               + args_bytes)
    c.send(frame(FRAME_METHOD, 1, payload))
    return c.read_method(timeout=10)


def test_table_nested_1000_deep_in_queue_declare_is_accepted(opened):
    """RabbitMQ decodes arbitrarily deep tables: queue.declare with an
    argument table nested 1000 deep succeeds."""
    c = opened()
    f = _declare_with_raw_args(c, nested_table(1000))
    assert f.name == "queue.declare-ok", f
    assert f.args[0].startswith("amq.gen-")


def test_deepest_nesting_that_fits_a_frame(opened):
    """~18000 levels of tables, and of arrays, inside one 131072-octet frame.
    RabbitMQ accepts both; a broker may instead refuse with a
    connection-level error, but must not crash."""
    for args in (nested_table(18000), nested_array_table(18000)):
        c = opened()
        f = _declare_with_raw_args(c, args)
        if f.name != "queue.declare-ok":
            assert f.name == "connection.close" and f.args[0] in (501, 502), f
        c.close()


def test_message_headers_nested_1000_deep_round_trip(opened):
    c = opened()
    q = c.rpc(1, "queue.declare", 0, "", False, False, True, True, False, {}).args[0]
    props = nested_table(1000)
    c.publish(1, "", q, b"deep", flags=1 << 13, props=props)
    c.send_method(1, "basic.get", 0, q, True)
    c.expect("basic.get-ok", 1)
    h, body = c.read_content()
    assert body == b"deep"
    assert h.props == props


# ---------------------------------------------------------------------------
# Garbage before/instead of the handshake
# ---------------------------------------------------------------------------

def test_frame_instead_of_protocol_header(raw):
    c = raw()
    c.send(method_frame(0, "connection.start-ok", {}, "PLAIN", b"\0guest\0guest",
                        "en_US"))
    assert c.read_until_eof(timeout=10) == rawamqp.PROTOCOL_HEADER


def test_short_header_then_silence_is_dropped(raw):
    """Four bytes of a header then nothing: the broker closes the socket
    within its handshake timeout (RabbitMQ: 10 s) - bounded generously."""
    c = raw(timeout=20)
    c.send(b"AMQP")
    t0 = time.monotonic()
    data = c.read_until_eof(timeout=20)
    assert data in (b"", rawamqp.PROTOCOL_HEADER)
    assert time.monotonic() - t0 <= 20


def test_random_garbage_after_open_gets_error(opened):
    c = opened()
    c.send(b"\x01\x00\x01\x00\x00\x00\x02ZZ\xce" + os.urandom(64))
    f = c.wait_close(timeout=10)
    if f is not None:
        assert f.args[0] in (501, 502, 503, 504, 505, 540, 541), f


# ---------------------------------------------------------------------------
# A peer that stops reading
# ---------------------------------------------------------------------------

def test_peer_that_stops_reading_does_not_stall_broker(broker, connect):
    """A consumer that never reads its socket while 64 MB are published to
    its queue: the broker keeps serving other connections promptly."""
    q = uid("stuck")
    setup = connect().channel()
    setup.queue_declare(q, auto_delete=False)

    stuck = broker.raw()
    assert stuck.handshake().name == "connection.open-ok"
    stuck.open_channel(1)
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.rpc(1, "basic.consume", 0, q, "", False, True, False, False, {})
    # from here on, `stuck` never reads again

    body = os.urandom(64 * 1024)
    stop = threading.Event()
    sent = [0]

    def publisher():
        try:
            pc = broker.raw(timeout=30)
            pc.handshake()
            pc.open_channel(1)
            frames = (method_frame(1, "basic.publish", 0, "", q, False, False)
                      + header_frame(1, len(body)) + body_frame(1, body))
            for _ in range(1024):
                if stop.is_set():
                    break
                pc.send(frames)
                sent[0] += 1
            pc.close()
        except OSError:
            pass

    t = threading.Thread(target=publisher, daemon=True)
    t.start()
    try:
        time.sleep(1.0)
        # Another client does a full round trip on its own queue, bounded.
        for _ in range(3):
            t0 = time.monotonic()
            with broker.raw(timeout=10) as other:
                assert other.handshake().name == "connection.open-ok"
                other.open_channel(1)
                oq = other.rpc(1, "queue.declare", 0, "", False, False, True, True,
                               False, {}).args[0]
                other.publish(1, "", oq, b"ping")
                other.send_method(1, "basic.get", 0, oq, True)
                other.expect("basic.get-ok", 1)
                assert other.read_content()[1] == b"ping"
            assert time.monotonic() - t0 < 5.0
            time.sleep(0.5)
    finally:
        stop.set()
        t.join(30)
        stuck.close()
    assert sent[0] > 0
    ch = connect().channel()
    ch.queue_delete(q)


def test_output_to_a_non_reading_consumer_is_bounded(broker, connect):
    """Deliveries to a consumer that does not read stop at the congestion
    watermark (about 1 MiB queued per connection): the rest stays in the
    queue instead of piling up in the broker's output buffer."""
    if broker.external:
        pytest.skip("checks warren's watermark")
    q = uid("bounded")
    setup = connect().channel()
    setup.queue_declare(q, auto_delete=False)
    stuck = broker.raw()
    stuck.handshake()
    stuck.open_channel(1)
    stuck.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.rpc(1, "basic.consume", 0, q, "", False, True, False, False, {})
    ch = connect().channel()
    ch.confirm_delivery()
    body = b"z" * 65536
    for _ in range(200):  # 12.5 MiB
        ch.basic_publish("", q, body)
    ready = ch.queue_declare(q, passive=True).method.message_count
    # Kernel socket buffers take a few MiB, the broker's watermark ~1 MiB.
    assert ready >= 200 - 100, "only %d of 200 messages still queued" % ready
    print("queued after 200 publishes to a stuck consumer:", ready)
    stuck.close()
    ch.queue_delete(q)
