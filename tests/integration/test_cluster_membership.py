"""Quorum queue membership and placement in a 3-node warren cluster
(tests/integration/cluster.py; no network namespaces needed):

- queue_leader_locator: a quorum queue's leader is the node that declared
  it (client-local, RabbitMQ's default); x-queue-leader-locator balanced
  spreads leaders over the nodes
- x-quorum-initial-group-size: the group has that many voting members,
  the same on every node (chosen by the queue's hash over the nodes, so
  that queues spread); a client of a node that is not a member still
  publishes and consumes (every node keeps a non-voting replica)
- warrenctl add_member, delete_member (also of the leader, by the leader's
  own node), grow, shrink, quorum_status, as rabbitmq-queues has them
- basic.get through a follower answers promptly (the leader's commit
  notice: docs/clustering-raft.md)
"""
import os
import subprocess
import time

import pika
import pytest

from cluster import Cluster, stop_and_check, wait_until
from helpers import uid

pytestmark = pytest.mark.skipif(bool(os.environ.get("AMQP_URL")),
                                reason="starts its own warren cluster")

QQ = {"x-queue-type": "quorum"}


@pytest.fixture(scope="module")
def cl():
    c = Cluster(3, netns=False)
    try:
        yield c
        stop_and_check(c)
    finally:
        c.close()


def declare(node, q=None, **args):
    q = q or uid("mq")
    a = dict(QQ)
    a.update(args)
    with node.connect() as conn:
        conn.channel().queue_declare(q, durable=True, arguments=a)
    return q


def delete(node, q):
    with node.connect() as conn:
        conn.channel().queue_delete(q)


def members(cl, q, want=None, timeout=15.0):
    """The members every node lists for q (sorted), once they agree (and
    equal want, if given)."""
    def agreed():
        views = cl.queue_views()
        ms = {tuple(sorted(v.get(q, {}).get("members", []))) for v in views.values()}
        if len(ms) != 1:
            return None
        (m,) = ms
        if not m or (want is not None and sorted(want) != list(m)):
            return None
        return list(m)
    return wait_until(agreed, timeout, 0.2, "every node listing the same members of %s" % q)


def roundtrip(pub, con, q, n=50):
    """Publishes n messages with confirms through pub, gets them through
    con; returns the bodies got, in order."""
    bodies = [b"r%03d" % i for i in range(n)]
    with pub.connect() as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        for b in bodies:
            ch.basic_publish("", q, b, pika.BasicProperties(delivery_mode=2))
    got = []
    deadline = time.monotonic() + 15
    with con.connect() as conn:
        ch = conn.channel()
        while len(got) < n and time.monotonic() < deadline:
            m, _p, body = ch.basic_get(q, auto_ack=True)
            if m is None:
                time.sleep(0.02)
            else:
                got.append(body)
    assert got == bodies
    return got


def ctl_run(node, *args, timeout=30):
    """warrenctl on node: (exit status, stdout + stderr)."""
    r = subprocess.run([node.cluster.warrenctl, "-n", node.data_dir] + list(args),
                       capture_output=True, text=True, timeout=timeout)
    return r.returncode, r.stdout + r.stderr


def test_leader_on_declaring_node(cl):
    for node in cl.nodes:
        q = declare(node)
        assert cl.leader(q) == node.name
        delete(node, q)


def test_balanced_leaders_spread(cl):
    qs = [declare(cl.nodes[0], **{"x-queue-leader-locator": "balanced"}) for _ in range(9)]
    leaders = {cl.leader(q) for q in qs}
    assert len(leaders) >= 2, leaders
    for q in qs:
        delete(cl.nodes[0], q)


def test_bad_leader_locator_refused(cl):
    with cl.nodes[0].connect() as conn:
        ch = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare(uid("mq"), durable=True,
                             arguments={"x-queue-type": "quorum",
                                        "x-queue-leader-locator": "nearest"})
        assert e.value.reply_code == 406


def test_initial_group_size_and_non_member_node(cl):
    a = cl.nodes[0]
    q = declare(a, **{"x-quorum-initial-group-size": 2})
    m = members(cl, q)
    assert len(m) == 2, m
    # Members follow the queue's hash over the nodes; the declaring node
    # leads when it is one of them.
    assert cl.leader(q) == (a.name if a.name in m else cl.leader(q)) and cl.leader(q) in m
    (outside,) = [n for n in cl.nodes if n.name not in m]
    # A client of the node outside the group publishes and consumes.
    roundtrip(outside, outside, q)
    roundtrip(outside, a, q)
    # quorum_status lists the members only.
    st = a.ctl("quorum_status", q)
    assert st["ok"], st
    assert sorted(r[0] for r in st["rows"]) == sorted(m)
    delete(a, q)


def test_add_and_delete_member(cl):
    a = cl.nodes[1]
    q = declare(a, **{"x-quorum-initial-group-size": 2})
    m = members(cl, q)
    (outside,) = [n for n in cl.nodes if n.name not in m]
    rc, out = ctl_run(a, "add_member", q, outside.name)
    assert rc == 0, out
    assert "Adding a replica for queue %s on node %s" % (q, outside.name) in out
    members(cl, q, want=[n.name for n in cl.nodes])
    rc, out = ctl_run(a, "add_member", q, outside.name)
    assert rc == 70 and "already_a_member" in out, out
    rc, out = ctl_run(a, "add_member", q, "warren@127.0.0.1:1")
    assert rc != 0, out
    # The leader's own node removes the leader: it hands over first.
    leader = cl.node(cl.leader(q))
    rc, out = ctl_run(leader, "delete_member", q, leader.name)
    assert rc == 0, out
    left = members(cl, q, want=[n.name for n in cl.nodes if n is not leader])
    assert cl.leader(q) in left
    rc, out = ctl_run(a, "delete_member", q, leader.name)
    assert rc == 70 and "not_a_member" in out, out
    roundtrip(leader, outside, q)
    # Down to one member; the last one stays.
    rc, out = ctl_run(a, "delete_member", q, left[0])
    assert rc == 0, out
    (last,) = members(cl, q, want=[left[1]])
    rc, out = ctl_run(a, "delete_member", q, last)
    assert rc == 70 and "last_member" in out, out
    roundtrip(cl.nodes[0], cl.nodes[2], q)
    delete(a, q)


def test_grow_and_shrink(cl):
    a, b, c = cl.nodes
    qs = [declare(a, q=uid("gs-a")), declare(b, q=uid("gs-b")), declare(c, q=uid("other"))]
    for q in qs:
        members(cl, q, want=[n.name for n in cl.nodes])
    rc, out = ctl_run(a, "shrink", c.name)
    assert rc == 0, out
    lines = [l.split("\t") for l in out.splitlines() if l.startswith("/\t")]
    assert sorted(l[1] for l in lines) == sorted(qs), out
    assert all(l[2] == "2" and l[3] == "ok" for l in lines), out
    for q in qs:
        members(cl, q, want=[a.name, b.name])
    # A queue c led moved its leader away first.
    assert cl.leader(qs[2]) in (a.name, b.name)
    rc, out = ctl_run(b, "grow", c.name, "all", "--queue-pattern", "^gs-")
    assert rc == 0, out
    lines = [l.split("\t") for l in out.splitlines() if l.startswith("/\t")]
    assert sorted(l[1] for l in lines) == sorted(qs[:2]), out
    assert all(l[2] == "3" and l[3] == "ok" for l in lines), out
    members(cl, qs[0], want=[n.name for n in cl.nodes])
    members(cl, qs[2], want=[a.name, b.name])
    # even: only queues with an even number of members grow.
    rc, out = ctl_run(b, "grow", c.name, "even")
    assert rc == 0, out
    lines = [l.split("\t") for l in out.splitlines() if l.startswith("/\t")]
    assert [l[1] for l in lines] == [qs[2]], out
    members(cl, qs[2], want=[n.name for n in cl.nodes])
    rc, out = ctl_run(b, "grow", c.name, "sometimes")
    assert rc == 64, out
    for q in qs:
        roundtrip(c, a, q, n=10)
        delete(a, q)


def test_get_through_follower_is_prompt(cl):
    a, b, c = cl.nodes
    q = declare(a)
    assert cl.leader(q) == a.name
    t0 = time.monotonic()
    roundtrip(b, c, q, n=200)
    # Each get through a follower waited for the leader's next heartbeat
    # (~0.17 s a get, 33 s for these) before the commit notice.
    assert time.monotonic() - t0 < 10
    delete(a, q)
