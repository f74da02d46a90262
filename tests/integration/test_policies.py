"""Policies and operator policies: which applies, effective values, and
re-application to existing queues and exchanges.

Runs on both brokers (RabbitMQ with RABBITMQCTL set, see test_access.py).
The precedence rules were measured on RabbitMQ 3.10.8: for max-length
(and the other numeric keys) the smallest of the argument, the policy
and the operator policy wins; for the others the argument wins.
"""
import time

import pika
import pytest

from helpers import uid
from test_access import connect, tenant  # noqa: F401 (fixture)


@pytest.fixture
def vh(broker, tenant):
    v, user = tenant(".*", ".*", ".*")
    conn = connect(broker, v, user)
    yield v, conn
    if conn.is_open:
        conn.close()


def count(conn, q):
    return conn.channel().queue_declare(q, passive=True).method.message_count


def fill(ch, q, n):
    for i in range(n):
        ch.basic_publish("", q, b"m%d" % i)


def settle(conn, q, want, timeout=5.0):
    """The queue's length once it stops changing (or reaches want)."""
    deadline = time.monotonic() + timeout
    while True:
        n = count(conn, q)
        if n == want or time.monotonic() > deadline:
            return n
        time.sleep(0.05)


def test_policy_applies_to_existing_and_new_queues(broker, vh):
    v, conn = vh
    ch = conn.channel()
    ch.queue_declare("pa.old")
    fill(ch, "pa.old", 10)
    assert settle(conn, "pa.old", 10) == 10
    broker.admin("set_policy", "--apply-to", "queues", "lim", "^pa\\.", '{"max-length": 3}',
                 vhost=v)
    # The excess goes from the head at once.
    assert settle(conn, "pa.old", 3) == 3
    m = conn.channel().basic_get("pa.old", auto_ack=True)
    assert m[2] == b"m7"
    ch = conn.channel()
    ch.queue_declare("pa.new")
    fill(ch, "pa.new", 5)
    assert settle(conn, "pa.new", 3) == 3
    ch.queue_declare("other")
    fill(ch, "other", 5)
    assert settle(conn, "other", 5) == 5
    # Cleared: the limit is gone for new messages.
    broker.admin("clear_policy", "lim", vhost=v)
    fill(ch, "pa.new", 5)
    assert settle(conn, "pa.new", 8) == 8


def test_smallest_of_argument_and_policy(broker, vh):
    v, conn = vh
    broker.admin("set_policy", "--apply-to", "queues", "pt", "^pt\\.",
                 '{"max-length": 3}', vhost=v)
    broker.admin("set_policy", "--apply-to", "queues", "--priority", "1", "pt2", "^pt\\.hi",
                 '{"max-length": 50}', vhost=v)
    ch = conn.channel()
    for q, args in (("pt.a", {"x-max-length": 10}), ("pt.b", {"x-max-length": 2}),
                    ("pt.c", {}), ("pt.hi", {"x-max-length": 7}), ("pt.hi2", {})):
        ch.queue_declare(q, arguments=args)
        fill(ch, q, 12)
    want = {"pt.a": 3, "pt.b": 2, "pt.c": 3, "pt.hi": 7, "pt.hi2": 12}
    got = {q: settle(conn, q, n) for q, n in want.items()}
    assert got == want


def test_operator_policy_takes_the_stricter_value(broker, vh):
    v, conn = vh
    broker.admin("set_policy", "--apply-to", "queues", "p", "^op\\.", '{"max-length": 5}',
                 vhost=v)
    broker.admin("set_operator_policy", "--apply-to", "queues", "o", "^op\\.",
                 '{"max-length": 2}', vhost=v)
    ch = conn.channel()
    ch.queue_declare("op.q")
    fill(ch, "op.q", 6)
    assert settle(conn, "op.q", 2) == 2
    broker.admin("set_operator_policy", "--apply-to", "queues", "o", "^op\\.",
                 '{"max-length": 10}', vhost=v)
    fill(ch, "op.q", 6)
    assert settle(conn, "op.q", 5) == 5
    broker.admin("clear_operator_policy", "o", vhost=v)


def test_message_ttl_and_dead_letter_exchange_from_policies(broker, vh):
    v, conn = vh
    ch = conn.channel()
    ch.exchange_declare("dlx", "fanout")
    ch.queue_declare("dead")
    ch.queue_bind("dead", "dlx")
    broker.admin("set_policy", "--apply-to", "queues", "ttl", "^ttl$",
                 '{"message-ttl": 100, "dead-letter-exchange": "dlx"}', vhost=v)
    ch.queue_declare("ttl")
    ch.basic_publish("", "ttl", b"expires")
    assert settle(conn, "dead", 1) == 1
    m = conn.channel().basic_get("dead", auto_ack=True)
    assert m[2] == b"expires"
    assert m[1].headers["x-death"][0]["reason"] == "expired"
    assert m[1].headers["x-death"][0]["queue"] == "ttl"


def test_dead_letter_argument_wins_over_policy(broker, vh):
    v, conn = vh
    ch = conn.channel()
    for x, q in (("dl-arg", "got-arg"), ("dl-pol", "got-pol")):
        ch.exchange_declare(x, "fanout")
        ch.queue_declare(q)
        ch.queue_bind(q, x)
    broker.admin("set_policy", "--apply-to", "queues", "dl", "^rq$",
                 '{"dead-letter-exchange": "dl-pol"}', vhost=v)
    ch.queue_declare("rq", arguments={"x-dead-letter-exchange": "dl-arg"})
    ch.basic_publish("", "rq", b"r")
    m = ch.basic_get("rq")
    ch.basic_reject(m[0].delivery_tag, requeue=False)
    assert settle(conn, "got-arg", 1) == 1
    assert count(conn, "got-pol") == 0


def test_alternate_exchange_from_a_policy(broker, vh):
    v, conn = vh
    ch = conn.channel()
    ch.exchange_declare("ae", "fanout")
    ch.queue_declare("unrouted")
    ch.queue_bind("unrouted", "ae")
    ch.exchange_declare("main", "direct")
    broker.admin("set_policy", "--apply-to", "exchanges", "aep", "^main$",
                 '{"alternate-exchange": "ae"}', vhost=v)
    ch.basic_publish("main", "nowhere", b"x")
    assert settle(conn, "unrouted", 1) == 1
    # A policy for queues does not touch exchanges.
    broker.admin("set_policy", "--apply-to", "queues", "aep", "^main$",
                 '{"alternate-exchange": "ae"}', vhost=v)
    ch.basic_publish("main", "nowhere", b"y")
    time.sleep(0.2)
    assert count(conn, "unrouted") == 1


def test_policy_validation(broker, tenant):
    if broker.external:
        pytest.skip("checks warren's control socket replies")
    v, _ = tenant()
    r = broker.ctl("set_policy", "p1", "^x", '{"bogus-key": 1}', vhost=v)
    assert r["exit"] == 69
    assert r["info"] == ('Setting policy "p1" for pattern "^x" to "{"bogus-key": 1}" with '
                         'priority "0" for vhost "%s" ...' % v)
    assert r["error"] == ('Error:\nValidation failed\n\n[{<<"bogus-key">>,1}] are not '
                          'recognised policy settings\n')
    r = broker.ctl("set_policy", "p1", "x", '{"max-length": -1}', vhost=v)
    assert r["error"] == "Error:\nValidation failed\n\n-1 is not a valid maximum length\n"
    r = broker.ctl("set_policy", "p1", "(", '{"max-length": 1}', vhost=v)
    assert r["error"].startswith("Error:\nValidation failed\n\npattern should be regular "
                                 "expression but is invalid: ")
    r = broker.ctl("set_operator_policy", "o1", "x", '{"dead-letter-exchange": "x"}', vhost=v)
    assert r["error"] == ('Error:\nValidation failed\n\n[{<<"dead-letter-exchange">>,<<"x">>}] '
                          'are not recognised policy settings\n')
    r = broker.ctl("clear_policy", "nosuch", vhost=v)
    assert (r["exit"], r["error"]) == (69, "Error:\nParameter does not exist")
    assert broker.ctl("set_policy", "p1", "^x", '{"max-length": 1, "message-ttl": 5}',
                      vhost=v, priority="3", apply_to="queues")["ok"]
    r = broker.ctl("list_policies", vhost=v)
    assert r["columns"] == ["vhost", "name", "pattern", "apply-to", "definition", "priority"]
    assert r["rows"] == [[v, "p1", "^x", "queues", '{"max-length":1,"message-ttl":5}', 3]]


def test_policies_survive_a_restart(tmp_path):
    from conftest import start_warren
    b = start_warren(data_dir=str(tmp_path / "data"))
    try:
        assert b.ctl("set_policy", "keep", "^k", '{"max-length": 2}', apply_to="queues")["ok"]
        assert b.ctl("set_operator_policy", "cap", ".*", '{"max-length": 100}')["ok"]
        c = b.connect()
        ch = c.channel()
        ch.queue_declare("k1", durable=True)
        c.close()
        b.stop()
        b = start_warren(data_dir=str(tmp_path / "data"))
        c = b.connect()
        ch = c.channel()
        fill(ch, "k1", 5)
        assert settle(c, "k1", 2) == 2
        r = b.ctl("list_queues", "name", "policy", "operator_policy",
                  "effective_policy_definition")
        assert ["k1", "keep", "cap", {"max-length": 2}] in r["rows"]
        c.close()
    finally:
        b.stop()
