"""warrenctl against a running warren: the broker's answers through the
real client, in rabbitmqctl's output formats (warren only).

The client's own formatting rules are tested against a fake socket in
test_warrenctl_cli.py; these tests check that broker and client agree.
"""
import json
import os
import subprocess

import pika
import pytest

from conftest import warren_bin
from helpers import uid


@pytest.fixture
def ctl(broker):
    if broker.external:
        pytest.skip("warrenctl drives warren")
    binary = os.path.join(os.path.dirname(warren_bin()), "warrenctl")

    def run(*args, ok=True):
        r = subprocess.run([binary, "-n", broker.data_dir] + list(args), capture_output=True,
                           text=True, timeout=30)
        if ok:
            assert r.returncode == 0, (args, r.stdout, r.stderr)
        return r

    return run


def test_seed_list_queues_shape(ctl, broker, ch):
    # Seed 002 runs: rabbitmqctl list_queues name messages_ready messages_unacknowledged
    q = uid("seed")
    ch.queue_declare(q)
    for i in range(3):
        ch.basic_publish("", q, b"m%d" % i)
    ch.basic_qos(prefetch_count=1)
    ch.basic_consume(q, lambda *a: None)
    ch.connection.process_data_events(time_limit=0.3)
    r = ctl("list_queues", "name", "messages_ready", "messages_unacknowledged")
    lines = r.stdout.splitlines()
    assert lines[0] == "Timeout: 60.0 seconds ..."
    assert lines[1] == "Listing queues for vhost / ..."
    assert lines[2] == "name\tmessages_ready\tmessages_unacknowledged"
    assert "%s\t2\t1" % q in lines[3:]
    assert r.stderr == ""
    r = ctl("-q", "list_queues", "name", "messages")
    assert r.stdout.splitlines()[0] == "name\tmessages"
    assert "%s\t3" % q in r.stdout.splitlines()
    r = ctl("list_queues", "--formatter", "json", "name", "consumers", "message_bytes_ready",
            "message_bytes_unacknowledged", "message_bytes")
    rows = json.loads(r.stdout)
    # Three 2-byte bodies: one out unacknowledged, two ready.
    assert {"name": q, "consumers": 1, "message_bytes_ready": 4,
            "message_bytes_unacknowledged": 2, "message_bytes": 6} in rows


def test_unknown_column_is_a_usage_error(ctl):
    r = ctl("list_queues", "name", "bogus", ok=False)
    assert r.returncode == 64
    assert "bogus" in r.stderr


def test_users_vhosts_permissions_round_trip(ctl, broker):
    vh, user = uid("vh"), uid("u")
    r = ctl("add_vhost", vh, "--description", "for tests")
    assert r.stdout == 'Adding vhost "%s" ...\n' % vh
    ctl("add_user", user, "s3cret")
    ctl("set_permissions", "-p", vh, user, "^a", "^b", "^c")
    ctl("set_user_tags", user, "monitoring", "custom")
    r = ctl("-q", "list_permissions", "-p", vh)
    assert r.stdout.splitlines() == ["user\tconfigure\twrite\tread", "%s\t^a\t^b\t^c" % user]
    r = ctl("-q", "list_users")
    assert "%s\t[monitoring, custom]" % user in r.stdout.splitlines()
    r = ctl("-q", "list_vhosts", "name", "description")
    assert "%s\tfor tests" % vh in r.stdout.splitlines()
    r = ctl("-q", "list_user_permissions", user)
    assert r.stdout.splitlines()[1:] == ["%s\t^a\t^b\t^c" % vh]
    r = ctl("authenticate_user", user, "s3cret")
    assert r.returncode == 0
    r = ctl("authenticate_user", user, "wrong", ok=False)
    assert r.returncode == 65
    # The user logs in on the vhost with what was set.
    p = broker.params(virtual_host=vh, credentials=pika.PlainCredentials(user, "s3cret"))
    pika.BlockingConnection(p).close()
    # Errors: texts and exit statuses as rabbitmqctl's.
    r = ctl("add_user", user, "x", ok=False)
    assert r.returncode == 70 and r.stderr == 'Error:\nUser "%s" already exists\n' % user
    r = ctl("delete_user", "nobody-" + user, ok=False)
    assert r.returncode == 67
    r = ctl("set_permissions", "-p", "no-" + vh, user, ".*", ".*", ".*", ok=False)
    assert r.returncode == 69
    assert "Virtual host no-%s does not exist" % vh in r.stderr
    r = ctl("set_permissions", "-p", vh, user, "(", ".*", ".*", ok=False)
    assert r.returncode == 69
    r = ctl("delete_vhost", "no-" + vh, ok=False)
    assert r.returncode == 65
    ctl("add_vhost", vh)  # again: fine, as in RabbitMQ
    ctl("clear_permissions", "-p", vh, user)
    assert ctl("-q", "list_permissions", "-p", vh).stdout.splitlines()[1:] == []
    ctl("delete_user", user)
    ctl("delete_vhost", vh)
    assert vh not in ctl("-q", "list_vhosts").stdout.split()


def test_purge_and_delete_queue(ctl, ch):
    q = uid("pq")
    ch.queue_declare(q)
    for _ in range(4):
        ch.basic_publish("", q, b"x")
    r = ctl("purge_queue", q)
    assert r.stdout.startswith("Purging queue '%s' in vhost '/' ..." % q)
    assert ch.queue_declare(q, passive=True).method.message_count == 0
    ch.basic_publish("", q, b"x")
    ch.queue_declare(q, passive=True)
    r = ctl("delete_queue", q)
    assert "Queue was successfully deleted with 1 ready messages" in r.stdout
    r = ctl("delete_queue", q, ok=False)
    assert r.returncode == 64 and "Queue not found" in r.stderr
    r = ctl("purge_queue", q, ok=False)
    assert r.returncode == 69


def test_connections_and_close_connection(ctl, broker):
    c = broker.connect(client_properties={"connection_name": "ctl-test"})
    r = ctl("-q", "list_connections", "name", "user", "vhost", "state", "channels")
    rows = [l.split("\t") for l in r.stdout.splitlines()[1:]]
    mine = [row for row in rows if row[0].endswith(":%d" % broker.port)]
    assert mine and all(row[1:4] == ["guest", "/", "running"] for row in mine)
    # Close ours by its name.
    local = c._impl._transport._sock.getsockname()
    name = next(row[0] for row in mine if row[0].startswith("%s:%d " % local))
    ctl("close_connection", name, "closed by a test")
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        c.channel().queue_declare(uid("x"))
    assert (e.value.reply_code, e.value.reply_text) == (
        320, "CONNECTION_FORCED - closed by a test")


def test_broker_down(ctl, tmp_path):
    binary = os.path.join(os.path.dirname(warren_bin()), "warrenctl")
    r = subprocess.run([binary, "-n", str(tmp_path), "list_queues"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 69
    assert str(tmp_path) in r.stderr


def test_status_and_ping(ctl):
    assert "Ping succeeded" in ctl("ping").stdout
    out = ctl("status").stdout
    assert "OS PID: " in out and "Virtual hosts: " in out


def test_dead_letters_replay_and_move(ctl, ch):
    work, dlq, other = uid("dw"), uid("dd"), uid("do")
    ch.queue_declare(dlq)
    ch.queue_declare(other)
    ch.queue_declare(work, arguments={"x-dead-letter-exchange": "",
                                      "x-dead-letter-routing-key": dlq, "x-message-ttl": 0})
    for i in range(4):
        ch.basic_publish("", work, b"m%d" % i, pika.BasicProperties(headers={"n": i % 2}))
    # TTL 0: each expires at once into dlq.
    r = ctl("list_dead_letters", dlq, "--formatter", "json")
    assert json.loads(r.stdout) == [{"queue": work, "reason": "expired", "exchange": "",
                                     "count": 4}]
    r = ctl("replay_dead_letters", dlq, "--header", "n=1", "--to-queue", other)
    assert r.stdout.startswith("Replaying dead letters from queue '%s' in vhost '/' ..." % dlq)
    assert "Replayed 2 messages" in r.stdout
    assert ch.queue_declare(other, passive=True).method.message_count == 2
    r = ctl("move_messages", dlq, other, "--count", "1")
    assert "Moved 1 messages" in r.stdout
    assert ch.queue_declare(dlq, passive=True).method.message_count == 1
    m, p, b = ch.basic_get(other, auto_ack=True)
    assert b == b"m1" and p.headers["x-warren-replayed"] == 1 and p.headers["n"] == 1
    r = ctl("move_messages", dlq, "nope-" + dlq, ok=False)
    assert r.returncode == 64 and "Destination queue not found" in r.stderr
