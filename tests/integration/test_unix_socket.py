"""AMQP over a Unix-domain socket (listeners.unix.NAME, warren only: RabbitMQ
has no such listener).  The same protocol code runs behind the Unix
transport (net/sock.h); a Unix peer counts as loopback, so guest may use it."""
import os
import stat

import pytest

import rawamqp
from conftest import start_warren


def test_amqp_over_a_unix_socket(broker, tmp_path):
    if broker.external:
        pytest.skip("warren's Unix listener")
    path = str(tmp_path / "amqp.sock")
    b = start_warren(**{"listeners.unix.local": path})
    try:
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        c = rawamqp.RawConnection(None, path)
        f = c.handshake()
        assert f.name == "connection.open-ok"
        assert c.open_channel(1).name == "channel.open-ok"
        r = c.rpc(1, "queue.declare", 0, "over-unix", False, False, False, False, False, {})
        assert r.name == "queue.declare-ok"
        c.publish(1, "", "over-unix", b"hello via unix")
        r = c.rpc(1, "basic.get", 0, "over-unix", True)
        assert r.name == "basic.get-ok"
        assert c.read_content()[1] == b"hello via unix"
        rows = b.ctl("list_connections", "name", "user", "state")["rows"]
        assert any(row[0].startswith("unix:") and row[1:] == ["guest", "running"] for row in rows)
        c.close()
        # The TCP listener serves the same vhost.
        conn = b.connect()
        assert conn.channel().queue_declare("over-unix", passive=True).method.message_count == 0
        conn.close()
    finally:
        b.stop()


def test_a_bad_unix_path_is_refused(broker, tmp_path):
    if broker.external:
        pytest.skip("warren's configuration")
    import subprocess
    from conftest import warren_bin
    r = subprocess.run([warren_bin(), "--data-dir", str(tmp_path / "d"), "--listen", "127.0.0.1:0",
                        "--set", "listeners.unix.x=relative.sock"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 2 and "absolute path" in r.stderr
