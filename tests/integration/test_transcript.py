"""Frame transcripts: the exact order and timing of what the broker sends
in the handshake, heartbeats, connection.update-secret and the close.

Every test here records what the broker sent with rawamqp.Transcript and
compares it with what RabbitMQ 3.10.8 sends in the same exchange (the same
tests run against it with AMQP_URL; docs/compatibility.md has the
transcripts).  RabbitMQ's heartbeat rules (rabbit_heartbeat), with T the
heartbeat of the client's tune-ok:
  - from tune-ok on, every T/2 the broker sends a heartbeat if it sent
    nothing since the previous check; the first check always sends one;
  - every T it looks at the bytes received; after two checks in a row with
    nothing it hangs up, without connection.close (2T to 3T of silence);
  - T = 0 disables both.
Timing bounds are generous: the suite also runs under the sanitizers on a
busy 2-core machine.
"""

import socket
import threading
import time

import pytest

import rawamqp
from rawamqp import PROTOCOL_HEADER, Transcript, frame, method_frame

SLACK = 0.4  # seconds of scheduling noise allowed on either side of a time


def near(t, want):
    return want - SLACK <= t <= want + SLACK


def tuned(c, heartbeat, open_vhost=True):
    """Protocol header, start-ok, tune-ok with `heartbeat` (and open); returns
    a Transcript marked when tune-ok was sent."""
    c.send(PROTOCOL_HEADER)
    c.expect("connection.start", 0)
    c.send_method(0, "connection.start-ok", {"capabilities": {}}, "PLAIN",
                  b"\x00guest\x00guest", "en_US")
    c.expect("connection.tune", 0)
    tr = Transcript(c)
    c.send_method(0, "connection.tune-ok", 2047, 131072, heartbeat)
    if open_vhost:
        c.send_method(0, "connection.open", "/", "", False)
    return tr


# ---------------------------------------------------------------------------
# Handshake
# ---------------------------------------------------------------------------

def test_handshake_frames_in_order(raw):
    c = raw()
    tr = Transcript(c)
    c.send(PROTOCOL_HEADER)
    tr.record(2, stop=lambda lab: lab == "connection.start")
    c.send_method(0, "connection.start-ok", {}, "PLAIN", b"\x00guest\x00guest", "en_US")
    tr.record(2, stop=lambda lab: lab == "connection.tune")
    c.send_method(0, "connection.tune-ok", 2047, 131072, 0)
    c.send_method(0, "connection.open", "/", "", False)
    tr.record(1.0)
    assert tr.labels() == ["connection.start", "connection.tune", "connection.open-ok"], tr
    assert tr.end is None, tr


def test_start_advertises_rabbitmq_capabilities(raw):
    c = raw()
    c.send(PROTOCOL_HEADER)
    f = c.expect("connection.start", 0)
    major, minor, props, mechanisms, locales = f.args
    assert (major, minor) == (0, 9)
    caps = rawamqp.plain(props["capabilities"])
    assert caps == {
        "publisher_confirms": True, "exchange_exchange_bindings": True,
        "basic.nack": True, "consumer_cancel_notify": True,
        "connection.blocked": True, "consumer_priorities": True,
        "authentication_failure_close": True, "per_consumer_qos": True,
        "direct_reply_to": True,
    }
    for key in ("cluster_name", "copyright", "information", "platform", "product",
                "version"):
        assert props[key].kind == "S", key
    assert mechanisms == b"PLAIN AMQPLAIN"
    assert locales == b"en_US"


def test_no_heartbeat_before_open_ok(raw):
    """warren used to send a heartbeat right after tune-ok, before open-ok;
    a client reading open-ok next failed to connect."""
    for _ in range(3):
        c = raw()
        tr = tuned(c, heartbeat=2)
        tr.record(1.6)
        assert tr.labels()[0] == "connection.open-ok", tr
        beats = tr.times("heartbeat")
        assert beats and near(beats[0], 1.0), tr
        c.close()


def test_unhurried_open_gets_heartbeats_from_half_interval(raw):
    """Heartbeats start at tune-ok, not at open: a client slow to open sees
    the first one T/2 after tune-ok, as with RabbitMQ."""
    c = raw()
    tr = tuned(c, heartbeat=2, open_vhost=False)
    tr.record(1.5)
    assert tr.labels() == ["heartbeat"], tr
    assert near(tr.events[0][0], 1.0), tr
    c.send_method(0, "connection.open", "/", "", False)
    tr.record(1.9, stop=lambda lab: lab != "heartbeat")
    assert tr.labels()[-1] == "connection.open-ok", tr


# ---------------------------------------------------------------------------
# Heartbeats
# ---------------------------------------------------------------------------

def test_silent_client_gets_heartbeats_then_hang_up(raw):
    c = raw(timeout=10)
    tr = tuned(c, heartbeat=2)
    tr.record(8.0)
    assert "connection.close" not in tr.labels(), tr
    assert tr.end in ("eof", "reset"), tr
    # Nothing was received after open: checks at 2, 4, 6 s; the third hangs up.
    assert near(tr.end_t, 6.0), tr
    beats = tr.times("heartbeat")
    assert len(beats) == 5, tr
    for i, t in enumerate(beats):
        assert near(t, 1.0 * (i + 1)), tr


def test_client_heartbeats_keep_the_connection(raw):
    c = raw(timeout=10)
    tr = tuned(c, heartbeat=2)
    stop = threading.Event()

    def beat():
        while not stop.wait(0.5):
            try:
                c.send(frame(rawamqp.FRAME_HEARTBEAT, 0, b""))
            except OSError:
                return

    t = threading.Thread(target=beat, daemon=True)
    t.start()
    try:
        tr.record(7.0)
    finally:
        stop.set()
        t.join()
    assert tr.end is None, tr
    # The broker sends nothing else, so it beats at every check.
    assert len(tr.times("heartbeat")) >= 5, tr


def test_broker_traffic_replaces_heartbeats(raw):
    """Replies count as traffic: after the first check (which always
    beats), no heartbeat while the broker has been sending; one again once
    it stops."""
    c = raw(timeout=10)
    tr = tuned(c, heartbeat=2)
    tr.record(0.5, stop=lambda lab: lab == "connection.open-ok")
    start = time.monotonic()
    n = 0
    while time.monotonic() - start < 3.6:
        n += 1
        c.send_method(n, "channel.open", "")
        tr.record(tr.now() + 0.3)
    quiet_from = tr.now()
    tr.record(quiet_from + 2.5, stop=lambda lab: lab == "heartbeat" and tr.now() > quiet_from)
    assert tr.labels().count("channel.open-ok") == n, tr
    beats = tr.times("heartbeat")
    assert near(beats[0], 1.0), tr
    assert all(t > quiet_from for t in beats[1:]), tr
    assert len(beats) == 2 and beats[1] <= quiet_from + 2.0 + SLACK, tr


def test_heartbeat_zero_disables_both_directions(raw):
    c = raw()
    tr = tuned(c, heartbeat=0)
    tr.record(3.5)
    assert tr.labels() == ["connection.open-ok"], tr
    assert tr.end is None and c.is_open(), tr


def test_client_heartbeat_wins_over_the_offer(start_broker):
    """The client's tune-ok value is used, whatever the broker offered
    (RabbitMQ passes the client's value to its heartbeaters)."""
    b = start_broker(heartbeat=0)
    c = b.raw()
    try:
        c.send(PROTOCOL_HEADER)
        c.expect("connection.start", 0)
        c.send_method(0, "connection.start-ok", {}, "PLAIN", b"\x00guest\x00guest", "en_US")
        tune = c.expect("connection.tune", 0)
        assert tune.args[2] == 0
        tr = Transcript(c)
        c.send_method(0, "connection.tune-ok", 2047, 131072, 2)
        c.send_method(0, "connection.open", "/", "", False)
        tr.record(1.6)
        assert tr.labels()[:2] == ["connection.open-ok", "heartbeat"], tr
    finally:
        c.close()


# ---------------------------------------------------------------------------
# connection.update-secret (RabbitMQ's extension, class 10 method 70)
# ---------------------------------------------------------------------------

def test_update_secret_is_accepted(raw):
    c = raw()
    c.handshake()
    tr = Transcript(c)
    c.send_method(0, "connection.update-secret", b"new-token", "token refresh")
    tr.record(1.0, stop=lambda lab: lab == "connection.update-secret-ok")
    assert tr.labels() == ["connection.update-secret-ok"], tr
    assert tr.events[0][2].channel == 0
    # The connection goes on as before, whatever the secret.
    c.send_method(0, "connection.update-secret", b"", "")
    c.expect("connection.update-secret-ok", 0)
    c.open_channel(1)
    c.rpc(1, "queue.declare", 0, "", False, False, True, True, False, {})


def test_update_secret_before_open_is_504(raw):
    c = raw()
    c.handshake(open_vhost=False)
    c.send_method(0, "connection.update-secret", b"x", "r")
    rawamqp.expect_connection_close(
        c, 504, "CHANNEL_ERROR - unexpected method in connection state opening", 10, 70)


def test_update_secret_on_a_channel_is_503(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    c.send_method(1, "connection.update-secret", b"x", "r")
    rawamqp.expect_connection_close(c, 503, "COMMAND_INVALID - unimplemented method", 10, 70)


def test_update_secret_while_tuning_gets_silence_then_hang_up(raw):
    """Before tune-ok RabbitMQ answers a wrong method with 3 s of silence."""
    c = raw(timeout=8)
    c.send(PROTOCOL_HEADER)
    c.expect("connection.start", 0)
    c.send_method(0, "connection.start-ok", {}, "PLAIN", b"\x00guest\x00guest", "en_US")
    c.expect("connection.tune", 0)
    tr = Transcript(c)
    c.send_method(0, "connection.update-secret", b"x", "r")
    tr.record(6.0)
    assert tr.labels() == [] and tr.end in ("eof", "reset"), tr
    assert 3.0 - SLACK <= tr.end_t <= 4.0 + SLACK, tr


# ---------------------------------------------------------------------------
# Close
# ---------------------------------------------------------------------------

def ends_with_eof(broker, c, tr, within=3.0):
    """Shut down our side: warren answers with EOF.  (RabbitMQ answers a
    half-close with a reset; its clients close the socket fully, so they
    never see it: docs/compatibility.md.)"""
    if broker.external:
        return True
    c.sock.shutdown(socket.SHUT_WR)
    tr.record(tr.now() + within)
    return tr.end == "eof"


def test_each_close_gets_close_ok_then_eof(broker, raw):
    """A client whose threads close at once: three connection.close in one
    write get three close-oks, the connection stays up until the client
    hangs up, and the client reads EOF, not a reset."""
    for _ in range(5):
        c = raw()
        c.handshake()
        c.open_channel(1)
        tr = Transcript(c)
        c.send(method_frame(0, "connection.close", 200, "bye", 0, 0) * 3)
        tr.record(1.0)
        assert tr.labels() == ["connection.close-ok"] * 3, tr
        assert tr.end is None, tr  # the broker waits for the client to hang up
        assert ends_with_eof(broker, c, tr), tr
        c.close()


def test_input_after_close_is_discarded_and_the_peer_reads_eof(broker, raw):
    """warren used to close the socket with the peer's later frames unread,
    so the kernel sent a reset and the client could lose the close-ok."""
    for _ in range(5):
        c = raw()
        c.handshake()
        c.open_channel(1)
        tr = Transcript(c)
        junk = frame(rawamqp.FRAME_HEARTBEAT, 0, b"") * 30000  # 240 KB
        c.send(method_frame(0, "connection.close", 200, "bye", 0, 0) + junk)
        tr.record(1.0)
        assert tr.labels() == ["connection.close-ok"], tr
        assert tr.end is None, tr
        assert ends_with_eof(broker, c, tr), tr
        c.close()


def test_close_ok_after_broker_close_ends_with_eof(start_broker):
    """After the broker's connection.close, the client's close-ok and what
    follows it are read and dropped, and the client reads EOF.  (RabbitMQ
    resets this connection; warren closes gracefully: docs/compatibility.md.)"""
    b = start_broker()
    for _ in range(3):
        c = b.raw()
        try:
            c.handshake()
            c.open_channel(1)
            c.send_method(1, "channel.open", "")
            f = c.expect("connection.close", 0)
            assert f.args[0] == 504
            tr = Transcript(c)
            junk = frame(rawamqp.FRAME_HEARTBEAT, 0, b"") * 30000
            c.send(method_frame(0, "connection.close-ok") + junk)
            tr.record(3.0)
            assert tr.labels() == [] and tr.end == "eof", tr
        finally:
            c.close()


# ---------------------------------------------------------------------------
# Listeners (RabbitMQ's listeners.tcp.* rules)
# ---------------------------------------------------------------------------

def ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def free_port_both():
    """A port free on 127.0.0.1 and ::1 alike."""
    for _ in range(50):
        s4 = socket.socket()
        s4.bind(("127.0.0.1", 0))
        port = s4.getsockname()[1]
        try:
            s6 = socket.socket(socket.AF_INET6)
            s6.bind(("::1", port))
            s6.close()
            s4.close()
            return port
        except OSError:
            s4.close()
    raise RuntimeError("no port free on both families")


def can_talk(host, port):
    c = rawamqp.RawConnection(host, port, timeout=3)
    try:
        f = c.handshake()
        return f.name == "connection.open-ok"
    finally:
        c.close()


needs_ipv6 = pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")


@needs_ipv6
def test_bare_port_listens_on_ipv4_and_ipv6(start_broker):
    port = free_port_both()
    b = start_broker(listen=str(port), port=port)
    assert can_talk("127.0.0.1", port)
    assert can_talk("::1", port)
    # pika with an IPv6 URL, as a client resolving localhost to ::1 would
    import pika
    conn = pika.BlockingConnection(pika.URLParameters("amqp://guest:guest@[::1]:%d/" % port))
    conn.channel().queue_declare("", exclusive=True)
    conn.close()
    assert "listening for AMQP on [::]:%d" % port in b.stderr()
    assert "listening for AMQP on 0.0.0.0:%d" % port in b.stderr()


@needs_ipv6
def test_several_listeners(start_broker):
    p1, p2, p3 = free_port_both(), free_port_both(), free_port_both()
    conf = ("listeners.tcp.1 = 127.0.0.1:%d\n"
            "listeners.tcp.local_v6 = ::1:%d\n"
            "listeners.tcp.other = [::1]:%d\n" % (p1, p2, p3))
    b = start_broker(conf, listen=False, port=p1)
    assert can_talk("127.0.0.1", p1)
    assert can_talk("::1", p2)
    assert can_talk("::1", p3)
    for host, port in (("::1", p1), ("127.0.0.1", p2), ("127.0.0.1", p3)):
        with pytest.raises(OSError):
            socket.create_connection((host, port), timeout=2).close()
    # The configured listeners replaced the built-in 127.0.0.1:5672.
    assert ":5672" not in b.stderr()


def test_a_listener_that_cannot_bind_stops_the_broker(start_broker):
    from conftest import EXTERNAL_URL, warren_bin
    if EXTERNAL_URL:
        pytest.skip("starts warren itself")
    import subprocess
    import tempfile
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    with tempfile.TemporaryDirectory() as d:
        p = subprocess.run([warren_bin(), "--listen", "127.0.0.1:%d" % port, "--data-dir", d],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=20)
    busy.close()
    assert p.returncode == 1
    err = p.stderr.decode()
    assert ("cannot listen on 127.0.0.1:%d (listeners.tcp.default): address already in use"
            % port) in err, err


# ---------------------------------------------------------------------------
# Server properties from the config
# ---------------------------------------------------------------------------

def test_product_and_version_are_settable(start_broker):
    b = start_broker(**{"server_properties.product": "RabbitMQ",
                        "server_properties.version": "3.10.8",
                        "cluster_name": "rabbit@example"})
    c = b.raw()
    try:
        c.send(PROTOCOL_HEADER)
        props = rawamqp.plain(c.expect("connection.start", 0).args[2])
    finally:
        c.close()
    assert props["product"] == "RabbitMQ"
    assert props["version"] == "3.10.8"
    assert props["cluster_name"] == "rabbit@example"


def test_default_product_is_warren(broker, raw):
    if broker.external:
        pytest.skip("warren's own default")
    c = raw()
    c.send(PROTOCOL_HEADER)
    props = rawamqp.plain(c.expect("connection.start", 0).args[2])
    assert props["product"] == "warren"
