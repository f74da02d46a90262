"""Vhost and user limits, connection_max and max_message_size.

The vhost and user limit tests run on both brokers (RabbitMQ with
RABBITMQCTL set, see test_access.py); the texts are RabbitMQ 3.10.8's.
"""
import pika
import pytest

from conftest import start_warren
from helpers import uid
from test_access import connect, raw_open, tenant  # noqa: F401 (fixture)


def test_vhost_max_connections(broker, tenant):
    vh, user = tenant(".*", ".*", ".*")
    broker.admin("set_vhost_limits", '{"max-connections": 1}', vhost=vh)
    first, f = raw_open(broker, vh, user)
    assert f.name == "connection.open-ok"
    c, f = raw_open(broker, vh, user)
    assert f.name == "connection.close"
    assert tuple(f.args) == (530, "NOT_ALLOWED - access to vhost '%s' refused for user '%s': "
                             "connection limit (1) is reached" % (vh, user), 10, 40)
    c.close()
    first.close()
    # The slot is free again once the first one is gone.
    for _ in range(50):
        c, f = raw_open(broker, vh, user)
        c.close()
        if f.name == "connection.open-ok":
            break
    assert f.name == "connection.open-ok"
    broker.admin("set_vhost_limits", '{"max-connections": 0}', vhost=vh)
    c, f = raw_open(broker, vh, user)
    assert f.name == "connection.close" and "connection limit (0) is reached" in f.args[1]
    c.close()
    broker.admin("clear_vhost_limits", vhost=vh)
    connect(broker, vh, user).close()


def test_user_max_connections(broker, tenant):
    vh, user = tenant(".*", ".*", ".*")
    broker.admin("set_user_limits", user, '{"max-connections": 1}')
    first, f = raw_open(broker, vh, user)
    assert f.name == "connection.open-ok"
    c, f = raw_open(broker, vh, user)
    assert tuple(f.args) == (530, "NOT_ALLOWED - connection refused for user '%s': user "
                             "connection limit (1) is reached" % user, 10, 40)
    c.close()
    first.close()
    broker.admin("clear_user_limits", user, "all")


def test_user_max_channels(broker, tenant):
    vh, user = tenant(".*", ".*", ".*")
    broker.admin("set_user_limits", user, '{"max-channels": 1}')
    c, f = raw_open(broker, vh, user)
    assert f.name == "connection.open-ok"
    assert c.open_channel(1).name == "channel.open-ok"
    c.send_method(2, "channel.open", "")
    f = c.wait_close()
    assert tuple(f.args) == (530, "NOT_ALLOWED - number of channels opened for user '%s' has "
                             "reached the maximum allowed user limit of (1)" % user, 0, 0)
    c.close()
    broker.admin("set_user_limits", user, '{"max-channels": -1}')
    conn = connect(broker, vh, user)
    conn.channel()
    conn.channel()
    conn.close()


def test_vhost_max_queues(broker, tenant):
    vh, user = tenant(".*", ".*", ".*")
    broker.admin("set_vhost_limits", '{"max-queues": 1}', vhost=vh)
    conn = connect(broker, vh, user)
    ch = conn.channel()
    ch.queue_declare("q1")
    ch.queue_declare("q1")  # redeclaring is not a new queue
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        ch.queue_declare("q2")
    assert (e.value.reply_code, e.value.reply_text) == (
        406, "PRECONDITION_FAILED - cannot declare queue 'q2': queue limit in vhost '%s' (1) "
             "is reached" % vh)
    ch = conn.channel()
    ch.queue_delete("q1")
    ch.queue_declare("q2")
    conn.close()


def test_limit_definitions_are_validated(broker, tenant):
    if broker.external:
        pytest.skip("checks warren's control socket replies")
    vh, user = tenant()
    r = broker.ctl("set_vhost_limits", "notjson", vhost=vh)
    assert (r["ok"], r["exit"], r["error"]) == (
        False, 69, "Error:\nJSON decoding error. Reason: badarg")
    r = broker.ctl("set_vhost_limits", '{"max-bogus": 1}', vhost=vh)
    assert r["exit"] == 69
    assert r["error"] == ('Error:\nValidation failed\n\nUnrecognised terms '
                          '[{<<"max-bogus">>,1}] in limits\n')
    assert r["info"] == 'Setting vhost limits to "{"max-bogus": 1}" for vhost "%s" ...' % vh
    broker.ctl("set_vhost_limits", '{"max-queues": 20, "max-connections": 10}', vhost=vh)
    r = broker.ctl("list_vhost_limits", vhost=vh)
    assert r["message"] == '{"max-connections":10,"max-queues":20}'
    broker.ctl("set_user_limits", user, '{"max-channels": 7}')
    r = broker.ctl("list_user_limits", user=user)
    assert r["message"] == '{"max-channels":7}'


def test_limits_survive_a_restart(tmp_path):
    b = start_warren(data_dir=str(tmp_path / "data"))
    try:
        assert b.ctl("add_vhost", "lv")["ok"]
        assert b.ctl("set_vhost_limits", '{"max-queues": 3}', vhost="lv")["ok"]
        assert b.ctl("set_user_limits", "guest", '{"max-channels": 5}')["ok"]
        b.stop()
        b = start_warren(data_dir=str(tmp_path / "data"))
        assert b.ctl("list_vhost_limits", vhost="lv")["message"] == '{"max-queues":3}'
        assert b.ctl("list_user_limits", user="guest")["message"] == '{"max-channels":5}'
    finally:
        b.stop()


def test_max_message_size(broker):
    if broker.external:
        pytest.skip("needs warren's own configuration")
    b = start_warren(max_message_size=1024)
    try:
        c = b.connect()
        ch = c.channel()
        q = uid("big")
        ch.queue_declare(q)
        ch.confirm_delivery()
        ch.basic_publish("", q, b"x" * 1024)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.basic_publish("", q, b"x" * 1025)
        assert (e.value.reply_code, e.value.reply_text) == (
            406, "PRECONDITION_FAILED - message size 1025 is larger than configured max size "
                 "1024")
        assert c.channel().queue_declare(q, passive=True).method.message_count == 1
        c.close()
    finally:
        b.stop()


def test_connection_max(broker):
    if broker.external:
        pytest.skip("needs warren's own configuration")
    b = start_warren(connection_max=2)
    try:
        a, c = b.connect(), b.connect()
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            b.connect()
        a.close()
        for _ in range(50):
            try:
                b.connect().close()
                break
            except pika.exceptions.AMQPConnectionError:
                pass
        else:
            pytest.fail("a slot did not come free")
        c.close()
    finally:
        b.stop()


def test_thousands_of_idle_connections_do_not_hurt_others(broker):
    """2,000 sockets that connect and never finish the handshake: a working
    client is served meanwhile, and the broker drops them all at the
    handshake deadline (10 s)."""
    if broker.external:
        pytest.skip("warren's handshake deadline")
    import resource
    import socket
    import time
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < 2200:
        pytest.skip("needs 2,200 file descriptors")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 2200), hard))
    b = start_warren()
    socks = []
    try:
        for i in range(2000):
            s = socket.create_connection((b.host, b.port), timeout=5)
            if i % 2:
                s.sendall(b"AMQP\x00\x00\x09\x01")  # then silence
            socks.append(s)
        c = b.connect()
        ch = c.channel()
        q = uid("busy")
        ch.queue_declare(q)
        ch.confirm_delivery()
        for i in range(1000):
            ch.basic_publish("", q, b"%d" % i)
        assert ch.queue_declare(q, passive=True).method.message_count == 1000
        deadline = time.monotonic() + 20
        closed = 0
        for s in socks:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                while s.recv(65536):
                    pass  # connection.start, then EOF
                closed += 1
            except (ConnectionResetError, socket.timeout):
                pass
        assert closed == len(socks)
        assert c.is_open
        c.close()
    finally:
        for s in socks:
            s.close()
        b.stop()
