"""Replicated metadata in a 3-node warren cluster (docs/clustering.md):
exchanges and the bindings to exchanges and quorum queues go through the
cluster's metadata Raft group, as RabbitMQ 4 keeps them in Khepri.

- an exchange declared on one node exists on every node; deleted on
  another, it is gone everywhere
- a binding made on one node routes a message published on a third node
  into a quorum queue (and an exchange-to-exchange binding too); unbound,
  it routes no more anywhere
- declare-ok comes only once a majority has the declaration: with two of
  three nodes down the declare waits, and answers when one comes back
- the connection reads nothing while its answer waits: a publish pipelined
  after an exchange.declare is routed by the new exchange
- the same exchange declared differently on two nodes ends the same on all
  three (the log's later declaration wins)
- a node that was down while the topology changed catches up on restart;
  with a small snapshot threshold, from a snapshot that also removes what
  the cluster deleted meanwhile
- bindings to classic queues stay on their node
- vhosts, users (with their password hashes), permissions, topic
  permissions and policies made with warrenctl on one node reach every
  node: a user added on node 1 logs in on node 3 into a vhost added on
  node 2; deletions reach every node too
"""
import json
import os
import struct
import threading
import time

import pika
import pika.exceptions
import pytest

from cluster import Cluster, stop_and_check, wait_until
from helpers import uid

pytestmark = pytest.mark.skipif(bool(os.environ.get("AMQP_URL")),
                                reason="starts its own warren cluster")

QQ = {"x-queue-type": "quorum"}


@pytest.fixture(scope="module")
def cl():
    c = Cluster(3)
    try:
        yield c
        stop_and_check(c)
    finally:
        c.close()


@pytest.fixture(autouse=True)
def all_up(cl):
    for n in cl.nodes:
        n.resume()
        if not n.running:
            n.start()
    yield
    for n in cl.nodes:
        n.resume()
        if not n.running:
            n.start()


def exchanges(node):
    """{name: type} of node's vhost / (warrenctl list_exchanges)."""
    out = node.warrenctl("list_exchanges", "--no-table-headers", "-q", "name", "type")
    res = {}
    for line in out.splitlines():
        cols = line.split("\t")
        if len(cols) >= 2 and cols[0]:
            res[cols[0]] = cols[1]
    return res


def bindings(node):
    """Set of (source, destination, kind, key) on node."""
    out = node.warrenctl("list_bindings", "--no-table-headers", "-q", "source_name",
                         "destination_name", "destination_kind", "routing_key")
    res = set()
    for line in out.splitlines():
        cols = line.split("\t")
        if len(cols) >= 4 and cols[0]:
            res.add(tuple(cols[:4]))
    return res


def on_every_node(cl, pred, what, timeout=10.0):
    try:
        return wait_until(lambda: all(pred(n) for n in cl.nodes if n.running), timeout, 0.1, what)
    except AssertionError as e:
        views = {}
        for n in cl.nodes:
            if n.running:
                try:
                    ok = pred(n)
                    xs = sorted(k for k in exchanges(n) if not k.startswith("amq."))
                    views[n.name] = {"ok": ok, "exchanges": len(xs), "first": xs[:8],
                                     "vhosts": sorted(vhosts(n)), "users": sorted(users(n))}
                    if not ok:
                        views[n.name]["log"] = n.stderr()[-2500:]
                except Exception as err:  # noqa: BLE001 - a report
                    views[n.name] = repr(err)
        raise AssertionError("%s; per node: %r" % (e, views)) from None


def ready(node, q):
    return node.queues().get(q, {}).get("messages")


def test_exchange_declared_and_deleted_everywhere(cl):
    x = uid("mx")
    with cl.nodes[0].connect() as conn:
        conn.channel().exchange_declare(x, "topic", durable=True)
    on_every_node(cl, lambda n: exchanges(n).get(x) == "topic", "%s on every node" % x)
    # The declaration is on a majority when declare-ok arrives: a passive
    # declare on a second node right after it finds it (the third may lag).
    found = 0
    for n in cl.nodes[1:]:
        with n.connect() as conn:
            try:
                conn.channel().exchange_declare(x, passive=True)
                found += 1
            except pika.exceptions.ChannelClosedByBroker:
                pass
    assert found >= 1
    with cl.nodes[1].connect() as conn:
        conn.channel().exchange_delete(x)
    on_every_node(cl, lambda n: x not in exchanges(n), "%s gone from every node" % x)
    for n in cl.nodes:
        with n.connect() as conn:
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
                conn.channel().exchange_declare(x, passive=True)
            assert e.value.reply_code == 404


def test_binding_routes_from_every_node(cl):
    x, x2, q = uid("mx"), uid("mx2"), uid("mq")
    a, b, c = cl.nodes
    with a.connect() as conn:
        ch = conn.channel()
        ch.exchange_declare(x, "direct", durable=True)
        ch.exchange_declare(x2, "fanout", durable=True)
        ch.queue_declare(q, durable=True, arguments=QQ)
    with b.connect() as conn:
        ch = conn.channel()
        ch.queue_bind(q, x, "k")
        ch.exchange_bind(x2, x, "e2e")  # x2 <- x with key e2e
        ch.queue_bind(q, x2)
    on_every_node(cl, lambda n: (x, q, "queue", "k") in bindings(n), "binding on every node")
    for n in cl.nodes:
        with n.connect() as conn:
            ch = conn.channel()
            ch.confirm_delivery()
            ch.basic_publish(x, "k", b"direct", mandatory=True)
            ch.basic_publish(x, "e2e", b"via x2", mandatory=True)
    on_every_node(cl, lambda n: ready(n, q) == 6, "6 messages routed into %s" % q)
    with c.connect() as conn:
        conn.channel().queue_unbind(q, x, "k")
    on_every_node(cl, lambda n: (x, q, "queue", "k") not in bindings(n), "unbound everywhere")
    with a.connect() as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        with pytest.raises(pika.exceptions.UnroutableError):
            ch.basic_publish(x, "k", b"nowhere", mandatory=True)
        ch.queue_delete(q)
        ch.exchange_delete(x)
        ch.exchange_delete(x2)


def test_declare_ok_waits_for_a_majority(cl):
    a, b, c = cl.nodes
    x = uid("mx")
    with a.connect(heartbeat=0) as conn:
        ch = conn.channel()
        b.kill()
        c.kill()
        done = {}

        def declare():
            try:
                ch.exchange_declare(x, "fanout", durable=True)
                done["at"] = time.monotonic()
            except Exception as e:  # noqa: BLE001 - reported below
                done["error"] = repr(e)

        t = threading.Thread(target=declare, daemon=True)
        t.start()
        t.join(2.0)
        assert not done, "declare-ok without a majority: %r" % done
        started = time.monotonic()
        b.start()
        t.join(20.0)
        assert "at" in done, "no declare-ok after a majority came back: %r" % done
        assert done["at"] - started < 15
    assert x in exchanges(b)
    c.start()
    on_every_node(cl, lambda n: x in exchanges(n), "%s on every node" % x, timeout=20)
    with a.connect() as conn:
        conn.channel().exchange_delete(x)


def frame(ftype, channel, payload):
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + b"\xce"


def shortstr(s):
    s = s.encode()
    return struct.pack(">B", len(s)) + s


def method(cls, mid, args):
    return struct.pack(">HH", cls, mid) + args


def test_pipelined_publish_after_declare(cl):
    """exchange.declare, queue.bind and a publish sent in one write: the
    publish is read only once the declaration and the binding are
    committed, so it is routed."""
    a = cl.nodes[0]
    x, q = uid("px"), uid("pq")
    with a.connect() as conn:
        conn.channel().queue_declare(q, durable=True, arguments=QQ)
    with a.connect() as conn:
        ch = conn.channel()
        # A raw second connection would be simplest, but pika's blocking
        # adapter cannot pipeline; write the frames through its socket.
        ch.confirm_delivery()
        sock = conn._impl._transport._sock
        chid = ch.channel_number
        declare = method(40, 10, struct.pack(">H", 0) + shortstr(x) + shortstr("direct")
                         + bytes([0b00010]) + struct.pack(">I", 0))  # durable, no-wait
        bind = method(50, 20, struct.pack(">H", 0) + shortstr(q) + shortstr(x) + shortstr("k")
                      + bytes([1]) + struct.pack(">I", 0))  # no-wait
        publish = method(60, 40, struct.pack(">H", 0) + shortstr(x) + shortstr("k") + bytes([0]))
        header = struct.pack(">HHQH", 60, 0, 5, 0)
        sock.sendall(frame(1, chid, declare) + frame(1, chid, bind) + frame(1, chid, publish)
                     + frame(2, chid, header) + frame(3, chid, b"hello"))
    on_every_node(cl, lambda n: ready(n, q) == 1, "the pipelined publish routed into %s" % q)
    with a.connect() as conn:
        ch = conn.channel()
        ch.queue_delete(q)
        ch.exchange_delete(x)


def test_conflicting_declarations_converge(cl):
    a, b, c = cl.nodes
    x = uid("cx")
    with a.connect() as conn:
        conn.channel().exchange_declare(x, "direct")
    with b.connect() as conn:
        ch = conn.channel()
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.exchange_declare(x, "fanout")
        assert e.value.reply_code == 406  # as on one node: it exists, as direct
    # Racing declarations on two nodes: whichever the log orders last wins
    # everywhere.
    y = uid("cy")
    ca, cb = a.connect(), b.connect()
    try:
        cha, chb = ca.channel(), cb.channel()

        def declare(ch, kind):
            try:
                ch.exchange_declare(y, kind)
            except pika.exceptions.ChannelClosedByBroker as e:
                assert e.reply_code == 406  # the other one was first here

        ta = threading.Thread(target=declare, args=(cha, "topic"))
        tb = threading.Thread(target=declare, args=(chb, "headers"))
        ta.start()
        tb.start()
        ta.join(10)
        tb.join(10)
    finally:
        for conn in (ca, cb):
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closed by the broker already
                pass
    on_every_node(cl, lambda n: y in exchanges(n), "%s everywhere" % y)
    wait_until(lambda: len({exchanges(n)[y] for n in cl.nodes}) == 1, 10, 0.2,
               "one type of %s on every node" % y)
    with c.connect() as conn:
        ch = conn.channel()
        ch.exchange_delete(x)
        ch.exchange_delete(y)


def test_restarted_node_catches_up(cl):
    a, b, c = cl.nodes
    keep, gone, q = uid("kx"), uid("gx"), uid("kq")
    with a.connect() as conn:
        ch = conn.channel()
        ch.exchange_declare(gone, "fanout", durable=True)
        ch.queue_declare(q, durable=True, arguments=QQ)
    on_every_node(cl, lambda n: gone in exchanges(n), "%s everywhere" % gone)
    c.kill()
    with b.connect() as conn:
        ch = conn.channel()
        ch.exchange_delete(gone)
        ch.exchange_declare(keep, "topic", durable=True)
        ch.queue_bind(q, keep, "a.#")
    c.start()
    on_every_node(cl, lambda n: keep in exchanges(n) and gone not in exchanges(n)
                  and (keep, q, "queue", "a.#") in bindings(n), "node 3 caught up", timeout=20)
    with c.connect() as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish(keep, "a.b", b"x", mandatory=True)
        ch.queue_delete(q)
        ch.exchange_delete(keep)


def test_classic_queue_bindings_stay_local(cl):
    a, b, _c = cl.nodes
    q = uid("cq")
    with a.connect() as conn:
        ch = conn.channel()
        ch.queue_declare(q)
        ch.queue_bind(q, "amq.topic", "local.#")
        assert ("amq.topic", q, "queue", "local.#") in bindings(a)
        time.sleep(0.5)
        assert not any(s == "amq.topic" and d == q for s, d, _k, _r in bindings(b))
        ch.queue_delete(q)


def vhosts(node):
    return set(node.warrenctl("list_vhosts", "--no-table-headers", "-q", "name").split())


def users(node):
    out = node.warrenctl("list_users", "--no-table-headers", "-q")
    return {line.split("\t")[0] for line in out.splitlines() if line.strip()}


def policies(node, vhost):
    out = node.warrenctl("list_policies", "-p", vhost, "--no-table-headers", "-q")
    # vhost, name, pattern, apply-to, definition, priority
    return {tuple(line.split("\t")[1:3]) for line in out.splitlines() if line.strip()}


def login(node, user, password, vhost):
    params = node.params(credentials=pika.PlainCredentials(user, password), virtual_host=vhost)
    return pika.BlockingConnection(params)


def test_admin_state_everywhere(cl):
    a, b, c = cl.nodes
    vh, user = uid("vh"), uid("user")
    b.warrenctl("add_vhost", vh)
    a.warrenctl("add_user", user, "s3cret")
    a.warrenctl("set_permissions", "-p", vh, user, ".*", ".*", ".*")
    c.warrenctl("set_topic_permissions", "-p", vh, user, "amq.topic", "^a", "^b")
    b.warrenctl("set_policy", "-p", vh, "lim", "^lim\\.", '{"max-length": 5}',
                "--apply-to", "queues")
    on_every_node(cl, lambda n: vh in vhosts(n) and user in users(n)
                  and ("lim", "^lim\\.") in policies(n, vh), "vhost, user and policy everywhere")
    with login(c, user, "s3cret", vh) as conn:
        ch = conn.channel()
        ch.exchange_declare("in-" + vh, "fanout")
    on_every_node(cl, lambda n: (user, "amq.topic", "^a", "^b") in {
        tuple(line.split("\t")) for line in n.warrenctl(
            "list_topic_permissions", "-p", vh, "--no-table-headers", "-q").splitlines()},
        "topic permission everywhere")
    # A changed password: the old one is refused on another node.
    c.warrenctl("change_password", user, "n3w")

    def old_refused(n):
        try:
            login(n, user, "s3cret", vh).close()
            return False
        except pika.exceptions.ProbableAuthenticationError:
            return True

    on_every_node(cl, old_refused, "old password refused everywhere")
    with login(a, user, "n3w", vh):
        pass
    a.warrenctl("clear_policy", "-p", vh, "lim")
    c.warrenctl("delete_user", user)
    a.warrenctl("delete_vhost", vh)
    on_every_node(cl, lambda n: vh not in vhosts(n) and user not in users(n),
                  "vhost and user deleted everywhere")


def test_http_writes_everywhere(cl):
    """The management API's writes go through the metadata log too, and are
    answered once committed: a vhost PUT on node 1 is there on node 2 for
    the next request; with no majority the answer waits."""
    a, b, c = cl.nodes
    vh = uid("hvh")
    status, _ = a.http("PUT", "/api/vhosts/" + vh, {})
    assert status == 201
    on_every_node(cl, lambda n: vh in vhosts(n), "%s everywhere" % vh)
    status, _ = b.http("PUT", "/api/exchanges/%s/hx" % vh, {"type": "topic", "durable": True})
    assert status in (201, 204)
    on_every_node(cl, lambda n: n.http("GET", "/api/exchanges/%s/hx" % vh)[0] == 200,
                  "hx everywhere")
    # No majority: the PUT is not answered until a node comes back.
    b.kill()
    c.kill()
    done = {}

    def put():
        try:
            done["status"] = a.http("PUT", "/api/exchanges/%s/late" % vh, {"type": "fanout"},
                                    timeout=30)[0]
        except Exception as e:  # noqa: BLE001 - reported below
            done["error"] = repr(e)

    t = threading.Thread(target=put, daemon=True)
    t.start()
    t.join(2.0)
    assert not done, "answered without a majority: %r" % done
    b.start()
    t.join(20.0)
    assert done.get("status") in (201, 204), done
    c.start()
    status, _ = c.http("DELETE", "/api/vhosts/" + vh)
    assert status == 204
    on_every_node(cl, lambda n: vh not in vhosts(n), "%s deleted everywhere" % vh, timeout=20)


def test_snapshot_restore_sweeps(tmp_path):
    """With a metadata snapshot every few entries, a node that missed many
    changes is brought up to date by a snapshot, which also removes an
    exchange the cluster deleted while it was down."""
    with Cluster(3, config="cluster.metadata_snapshot_threshold = 16\n",
                 log_level="info") as cl:
        a, b, c = cl.nodes
        with a.connect() as conn:
            ch = conn.channel()
            for i in range(5):
                ch.exchange_declare("old-%d" % i, "direct", durable=True)
        on_every_node(cl, lambda n: "old-4" in exchanges(n), "old-4 everywhere")
        a.warrenctl("add_user", "doomed", "pw")
        on_every_node(cl, lambda n: "doomed" in users(n), "doomed everywhere")
        c.kill()
        b.warrenctl("delete_user", "doomed")
        b.warrenctl("add_vhost", "later")
        with b.connect() as conn:
            ch = conn.channel()
            for i in range(5):
                ch.exchange_delete("old-%d" % i)
            for i in range(60):
                ch.exchange_declare("new-%d" % i, "fanout", durable=True)
        c.start()
        on_every_node(cl, lambda n: "new-59" in exchanges(n)
                      and not any(k.startswith("old-") for k in exchanges(n))
                      and "later" in vhosts(n) and "doomed" not in users(n),
                      "node 3 restored from a snapshot", timeout=20)
        names = {n.name: sorted(k for k in exchanges(n) if not k.startswith("amq."))
                 for n in cl.nodes}
        assert len({tuple(v) for v in names.values()}) == 1, names
        assert "metadata restored from a snapshot" in c.stderr()
        cl.stop()
        for n in cl.nodes:
            assert "runtime error:" not in n.stderr()


def test_forget_cluster_node():
    """forget_cluster_node: a stopped node leaves the metadata group and
    every quorum queue's members; cluster_status no longer lists it, new
    quorum queues leave it out, and the two nodes left go on (a majority of
    two).  A running node, or the node itself, cannot be forgotten."""
    with Cluster(3) as cl:
        a, b, c = cl.nodes
        q = uid("fq")
        with a.connect() as conn:
            conn.channel().queue_declare(q, durable=True, arguments=QQ)
        cl.leader(q)
        assert len(a.queues()[q]["members"]) == 3
        with pytest.raises(RuntimeError) as e:
            a.warrenctl("forget_cluster_node", b.name)
        assert "stop it first" in str(e.value)
        c.kill()
        with pytest.raises(RuntimeError):
            c_name = c.name
            a.warrenctl("forget_cluster_node", a.name)
        out = a.warrenctl("forget_cluster_node", c_name)
        assert "Removing node %s from the cluster" % c_name in out

        def disk_nodes(n):
            st = json.loads(n.warrenctl("cluster_status", "--formatter", "json"))
            return sorted(st["disk_nodes"])

        wait_until(lambda: disk_nodes(a) == disk_nodes(b) == sorted([a.name, b.name]), 10, 0.2,
                   "cluster_status without node 3")
        wait_until(lambda: all(c_name not in n.queues()[q]["members"] for n in (a, b)), 15, 0.3,
                   "node 3 removed from %s's members" % q)
        q2 = uid("fq2")
        with b.connect() as conn:
            ch = conn.channel()
            ch.queue_declare(q2, durable=True, arguments=QQ)
            ch.exchange_declare(uid("after"), "fanout")  # the metadata group goes on
        assert sorted(b.queues()[q2]["members"]) == sorted([a.name, b.name])
        with a.connect() as conn:
            ch = conn.channel()
            ch.confirm_delivery()
            ch.basic_publish("", q, b"still", pika.BasicProperties(delivery_mode=2))
        with b.connect() as conn:
            m, _p, body = conn.channel().basic_get(q, auto_ack=True)
            assert body == b"still"
        cl.stop()
