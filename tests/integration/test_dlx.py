"""Dead-lettering (x-dead-letter-exchange), asserted field by field against
what RabbitMQ 3.10.8 does.  Dead-lettered messages are fetched with a raw
basic.get / basic.consume so the header table is checked with its exact field
types and key order (pika would hide both).

Observed on RabbitMQ 3.10.8 (each test repeats what it relies on):
  * a freshly written x-death entry has the keys, in this order:
    count (long 'l'), reason, queue, time (timestamp 'T', seconds), exchange,
    routing-keys (array of longstr), then original-expiration (longstr) only
    when the message had a per-message expiration;
  * an x-death entry that is re-written later (every entry of a message that
    already carried x-death, except an untouched older one) has its keys in
    sorted order: count, exchange, queue, reason, routing-keys, time;
  * x-death is newest first; the same (queue, reason) increments count and
    moves to the front instead of adding an entry;
  * x-first-death-exchange/-queue/-reason are added on the first death and
    kept; RabbitMQ 3.10 writes no x-last-death-* headers (3.13+ does, and so
    does warren: the comparison below checks them against the newest death
    and then ignores them);
  * the top-level header table comes back sorted by key;
  * BCC is removed at publish and is not in routing-keys; CC is kept in the
    message and its values are in routing-keys (after the routing key) --
    unless x-dead-letter-routing-key is set, which removes the CC header;
  * expiration is removed from the properties, everything else is kept;
  * basic.get-ok / basic.deliver name the DLX as exchange and the original
    routing key (or x-dead-letter-routing-key) as routing key;
  * a pure TTL cycle (A expires into A) drops the message at once; a cycle
    with a rejection in it goes on;
  * a DLX that does not exist drops the message silently.
"""
import struct
import time

import pika
import pytest

import rawamqp
from rawamqp import Typed
from helpers import uid, wait_until

PROP_NAMES = ["content_type", "content_encoding", "headers", "delivery_mode",
              "priority", "correlation_id", "reply_to", "expiration",
              "message_id", "timestamp", "type", "user_id", "app_id",
              "cluster_id"]


def decode_props(flags, buf):
    out = {}
    off = 0
    for i, n in enumerate(PROP_NAMES):
        if not flags & (1 << (15 - i)):
            continue
        if n == "headers":
            out[n], off = rawamqp.decode_table(buf, off)
        elif n in ("delivery_mode", "priority"):
            out[n] = buf[off]
            off += 1
        elif n == "timestamp":
            out[n] = struct.unpack_from(">Q", buf, off)[0]
            off += 8
        else:
            ln = buf[off]
            out[n] = bytes(buf[off + 1:off + 1 + ln]).decode()
            off += 1 + ln
    return out


def S(s):
    return Typed("S", s.encode())


def A(*items):
    return Typed("A", [S(x) for x in items])


class Env:
    def __init__(self, broker, ch):
        self.broker = broker
        self.ch = ch
        self.queues = []
        self.exchanges = []

    def queue(self, prefix="q", **args):
        q = uid(prefix)
        self.ch.queue_declare(q, arguments=args or None)
        self.queues.append(q)
        return q

    def exchange(self, prefix="dlx", kind="fanout"):
        x = uid(prefix)
        self.ch.exchange_declare(x, kind)
        self.exchanges.append(x)
        return x

    def count(self, q):
        return self.ch.queue_declare(q, passive=True).method.message_count

    def wait_count(self, q, n, timeout=5.0):
        assert wait_until(lambda: self.count(q) == n, timeout), \
            "%s has %d messages, expected %d" % (q, self.count(q), n)

    def raw_get(self, q):
        """(get-ok args, decoded properties, body) or None when empty."""
        c = self.broker.raw()
        try:
            c.handshake()
            c.open_channel(1)
            c.send_method(1, "basic.get", 0, q, True)
            f = c.read_method()
            if f.name == "basic.get-empty":
                return None
            assert f.name == "basic.get-ok", f
            h, body = c.read_content()
            return f.args, decode_props(h.flags, h.props), body
        finally:
            c.close()

    def reject_one(self, q, how="reject"):
        m, p, body = self.ch.basic_get(q, auto_ack=False)
        assert m is not None, "nothing in %s" % q
        if how == "reject":
            self.ch.basic_reject(m.delivery_tag, requeue=False)
        else:
            self.ch.basic_nack(m.delivery_tag, requeue=False)
        return m, p, body


@pytest.fixture
def env(broker, connect):
    ch = connect().channel()
    e = Env(broker, ch)
    yield e
    try:
        c2 = connect().channel()
        for q in e.queues:
            c2.queue_delete(q)
        for x in e.exchanges:
            c2.exchange_delete(x)
    except Exception:
        pass


def fresh_entry(reason, queue, exchange, rks, t, orig_exp=None):
    """An x-death entry as RabbitMQ writes it for a new death: this key order."""
    d = {"count": Typed("l", 1), "reason": S(reason), "queue": S(queue),
         "time": t, "exchange": S(exchange), "routing-keys": A(*rks)}
    if orig_exp is not None:
        d["original-expiration"] = S(orig_exp)
    return Typed("F", d)


def rewritten_entry(count, reason, queue, exchange, rks, t):
    """An x-death entry RabbitMQ re-wrote: keys sorted."""
    return Typed("F", {"count": Typed("l", count), "exchange": S(exchange),
                       "queue": S(queue), "reason": S(reason),
                       "routing-keys": A(*rks), "time": t})


def check_time(entry, before):
    t = entry.value["time"]
    assert t.kind == "T", t
    assert before - 2 <= t.value <= time.time() + 2, (t, before)
    return t


def without_last_death(got):
    """warren writes x-last-death-exchange/-queue/-reason as RabbitMQ 3.13+
    does (PRODUCT.md asks for them); RabbitMQ 3.10 does not.  They must
    name the newest death; the rest is compared as 3.10 writes it."""
    if not isinstance(got, dict) or not any(k.startswith("x-last-death-") for k in got):
        return got
    newest = got["x-death"].value[0].value
    for k in ("exchange", "queue", "reason"):
        assert got["x-last-death-" + k] == newest[k], (k, got)
    return {k: v for k, v in got.items() if not k.startswith("x-last-death-")}


def assert_same_order(got, want):
    got = without_last_death(got)
    assert got == want
    assert list(got.keys()) == list(want.keys()), (list(got.keys()), list(want.keys()))
    if isinstance(got, dict):
        for k in got:
            _order_deep(got[k], want[k])


def _order_deep(g, w):
    if isinstance(g, Typed) and g.kind == "F":
        assert list(g.value.keys()) == list(w.value.keys()), \
            (list(g.value.keys()), list(w.value.keys()))
        for k in g.value:
            _order_deep(g.value[k], w.value[k])
    elif isinstance(g, Typed) and g.kind == "A":
        for a, b in zip(g.value, w.value):
            _order_deep(a, b)


# ---------------------------------------------------------------- rejected

@pytest.mark.parametrize("how", ["reject", "nack"])
def test_rejected_full_headers_cc_bcc_properties(env, how):
    """RabbitMQ 3.10.8: reason rejected; BCC stripped at publish and absent
    from routing-keys; CC kept; routing-keys = [rk, cc...]; expiration removed
    from properties and kept as original-expiration (last key); all other
    properties kept; headers sorted by key; get-ok exchange = DLX, routing key
    = original; x-first-death-* present, no x-last-death-*."""
    ch = env.ch
    dlx = env.exchange()
    dlq = env.queue("dlq")
    ch.queue_bind(dlq, dlx)
    q = env.queue("a", **{"x-dead-letter-exchange": dlx})
    ch.queue_bind(q, "amq.direct", "rk1")
    ch.queue_bind(q, "amq.direct", "cc1")
    props = pika.BasicProperties(
        headers={"zeta": "z", "CC": ["cc1", "cc2"], "BCC": ["bcc1"], "alpha": 1},
        delivery_mode=2, expiration="60000", content_type="text/plain",
        content_encoding="utf-8", priority=3, correlation_id="corr",
        reply_to="rq", message_id="mid", timestamp=1234567, type="ty",
        app_id="app")
    ch.basic_publish("amq.direct", "rk1", b"m1", props)
    env.wait_count(q, 1)
    m, p, _ = env.ch.basic_get(q, auto_ack=False)
    # BCC removed at publish (also from the live queue copy)
    assert "BCC" not in p.headers and p.headers["CC"] == ["cc1", "cc2"]
    before = time.time()
    if how == "reject":
        ch.basic_reject(m.delivery_tag, requeue=False)
    else:
        ch.basic_nack(m.delivery_tag, requeue=False)
    env.wait_count(dlq, 1)
    args, props, body = env.raw_get(dlq)
    assert body == b"m1"
    assert args[2] == dlx and args[3] == "rk1", args
    h = props.pop("headers")
    assert props == {"content_type": "text/plain", "content_encoding": "utf-8",
                     "delivery_mode": 2, "priority": 3, "correlation_id": "corr",
                     "reply_to": "rq", "message_id": "mid",
                     "timestamp": 1234567, "type": "ty", "app_id": "app"}
    t = check_time(h["x-death"].value[0], before)
    want = {
        "CC": A("cc1", "cc2"),
        "alpha": Typed("I", 1),  # pika sends a small int as signed 32-bit
        "x-death": Typed("A", [fresh_entry("rejected", q, "amq.direct",
                                           ["rk1", "cc1", "cc2"], t, "60000")]),
        "x-first-death-exchange": S("amq.direct"),
        "x-first-death-queue": S(q),
        "x-first-death-reason": S("rejected"),
        "zeta": S("z"),
    }
    assert_same_order(h, want)


def test_nack_multiple_dead_letters_all_in_order(env):
    """RabbitMQ 3.10.8: nack(multiple, requeue=false) of 3 messages
    dead-letters all three in order, each with its own count-1 entry."""
    ch = env.ch
    dlx = env.exchange()
    dlq = env.queue("dlq")
    ch.queue_bind(dlq, dlx)
    q = env.queue("mm", **{"x-dead-letter-exchange": dlx})
    for i in range(3):
        ch.basic_publish("", q, b"n%d" % i)
    env.wait_count(q, 3)
    tags = [ch.basic_get(q, auto_ack=False)[0].delivery_tag for _ in range(3)]
    before = time.time()
    ch.basic_nack(tags[-1], multiple=True, requeue=False)
    env.wait_count(dlq, 3)
    for i in range(3):
        args, props, body = env.raw_get(dlq)
        assert body == b"n%d" % i
        assert args[2:] == [dlx, q, 2 - i], args
        h = props["headers"]
        t = check_time(h["x-death"].value[0], before)
        assert_same_order(h, {
            "x-death": Typed("A", [fresh_entry("rejected", q, "", [q], t)]),
            "x-first-death-exchange": S(""),
            "x-first-death-queue": S(q),
            "x-first-death-reason": S("rejected")})
    assert env.raw_get(dlq) is None
    assert env.count(q) == 0


def test_dead_lettered_basic_deliver_fields(env):
    """RabbitMQ 3.10.8: basic.deliver of a dead-lettered message has
    exchange = DLX name, routing key = original, redelivered false."""
    ch = env.ch
    dlx = env.exchange()
    dlq = env.queue("dlq")
    ch.queue_bind(dlq, dlx)
    q = env.queue("a", **{"x-dead-letter-exchange": dlx})
    ch.basic_publish("", q, b"cons", pika.BasicProperties(headers={"CC": ["cc9"]}))
    env.wait_count(q, 1)
    before = time.time()
    env.reject_one(q)
    c = env.broker.raw()
    try:
        c.handshake()
        c.open_channel(1)
        c.rpc(1, "basic.consume", 0, dlq, "ctag", False, True, False, False, {})
        f = c.expect("basic.deliver", 1)
        h, body = c.read_content()
    finally:
        c.close()
    assert f.args == ["ctag", 1, False, dlx, q]
    assert body == b"cons"
    hd = decode_props(h.flags, h.props)["headers"]
    t = check_time(hd["x-death"].value[0], before)
    assert_same_order(hd, {
        "CC": A("cc9"),
        "x-death": Typed("A", [fresh_entry("rejected", q, "", [q, "cc9"], t)]),
        "x-first-death-exchange": S(""),
        "x-first-death-queue": S(q),
        "x-first-death-reason": S("rejected")})


# ---------------------------------------------------------------- expired

def test_expired_per_message_has_original_expiration(env):
    """RabbitMQ 3.10.8: per-message expiration (50 ms, queue TTL 5000):
    reason expired, original-expiration "50" as last key, no expiration
    property on the dead-lettered message."""
    ch = env.ch
    dlx = env.exchange()
    dlq = env.queue("dlq")
    ch.queue_bind(dlq, dlx)
    q = env.queue("b", **{"x-dead-letter-exchange": dlx, "x-message-ttl": 5000})
    before = time.time()
    ch.basic_publish("", q, b"m2", pika.BasicProperties(expiration="50", delivery_mode=2))
    env.wait_count(dlq, 1)
    args, props, body = env.raw_get(dlq)
    assert body == b"m2" and args[2:4] == [dlx, q]
    h = props.pop("headers")
    assert props == {"delivery_mode": 2}
    t = check_time(h["x-death"].value[0], before)
    assert_same_order(h, {
        "x-death": Typed("A", [fresh_entry("expired", q, "", [q], t, "50")]),
        "x-first-death-exchange": S(""),
        "x-first-death-queue": S(q),
        "x-first-death-reason": S("expired")})


def test_expired_queue_ttl_has_no_original_expiration(env):
    """RabbitMQ 3.10.8: queue x-message-ttl: reason expired, no
    original-expiration key, no properties at all on the copy."""
    ch = env.ch
    dlx = env.exchange()
    dlq = env.queue("dlq")
    ch.queue_bind(dlq, dlx)
    q = env.queue("b", **{"x-dead-letter-exchange": dlx, "x-message-ttl": 50})
    before = time.time()
    ch.basic_publish("", q, b"m3")
    env.wait_count(dlq, 1)
    args, props, body = env.raw_get(dlq)
    assert body == b"m3" and args[2:4] == [dlx, q]
    h = props.pop("headers")
    assert props == {}
    t = check_time(h["x-death"].value[0], before)
    assert_same_order(h, {
        "x-death": Typed("A", [fresh_entry("expired", q, "", [q], t)]),
        "x-first-death-exchange": S(""),
        "x-first-death-queue": S(q),
        "x-first-death-reason": S("expired")})


# ---------------------------------------------------------------- maxlen

def test_maxlen_drop_head(env):
    """RabbitMQ 3.10.8: x-max-length 1 (drop-head): the oldest message is
    dead-lettered with reason maxlen, the new one stays."""
    ch = env.ch
    dlx = env.exchange()
    dlq = env.queue("dlq")
    ch.queue_bind(dlq, dlx)
    q = env.queue("d", **{"x-dead-letter-exchange": dlx, "x-max-length": 1})
    before = time.time()
    ch.basic_publish("", q, b"o1")
    ch.basic_publish("", q, b"o2")
    env.wait_count(dlq, 1)
    args, props, body = env.raw_get(dlq)
    assert body == b"o1" and args[2:4] == [dlx, q]
    h = props["headers"]
    t = check_time(h["x-death"].value[0], before)
    assert_same_order(h, {
        "x-death": Typed("A", [fresh_entry("maxlen", q, "", [q], t)]),
        "x-first-death-exchange": S(""),
        "x-first-death-queue": S(q),
        "x-first-death-reason": S("maxlen")})
    assert env.raw_get(q)[2] == b"o2"


def test_maxlen_reject_publish_dlx(env):
    """RabbitMQ 3.10.8: x-overflow reject-publish-dlx: the new message is
    dead-lettered with reason maxlen, the old one stays."""
    ch = env.ch
    dlx = env.exchange()
    dlq = env.queue("dlq")
    ch.queue_bind(dlq, dlx)
    q = env.queue("e", **{"x-dead-letter-exchange": dlx, "x-max-length": 1,
                          "x-overflow": "reject-publish-dlx"})
    before = time.time()
    ch.basic_publish("", q, b"o1")
    ch.basic_publish("", q, b"o2")
    env.wait_count(dlq, 1)
    args, props, body = env.raw_get(dlq)
    assert body == b"o2" and args[2:4] == [dlx, q]
    h = props["headers"]
    t = check_time(h["x-death"].value[0], before)
    assert_same_order(h, {
        "x-death": Typed("A", [fresh_entry("maxlen", q, "", [q], t)]),
        "x-first-death-exchange": S(""),
        "x-first-death-queue": S(q),
        "x-first-death-reason": S("maxlen")})
    assert env.raw_get(q)[2] == b"o1"


# ---------------------------------------------------------------- two hops

def test_two_hops_newest_first_and_routing_key_override(env):
    """RabbitMQ 3.10.8: A (nack) -> x1 -> B (reject, dl routing key
    "newkey") -> x2 -> C.  In C: get-ok exchange x2, routing key "newkey";
    x-death = [B entry (keys sorted, exchange x1, routing-keys [A]),
    A entry (fresh order, exchange "", routing-keys [A])]; x-first-death-*
    from A.  B saw exchange x1, routing key A."""
    ch = env.ch
    x1 = env.exchange("x1")
    x2 = env.exchange("x2")
    qc = env.queue("qc")
    qb = env.queue("qb", **{"x-dead-letter-exchange": x2,
                            "x-dead-letter-routing-key": "newkey"})
    qa = env.queue("qa", **{"x-dead-letter-exchange": x1})
    ch.queue_bind(qb, x1)
    ch.queue_bind(qc, x2)
    ch.basic_publish("", qa, b"hop")
    env.wait_count(qa, 1)
    before = time.time()
    env.reject_one(qa, "nack")
    env.wait_count(qb, 1)
    m, _p, _b = env.reject_one(qb)
    assert (m.exchange, m.routing_key) == (x1, qa)
    env.wait_count(qc, 1)
    args, props, body = env.raw_get(qc)
    assert body == b"hop" and args[2:4] == [x2, "newkey"]
    h = props["headers"]
    d = h["x-death"].value
    assert len(d) == 2
    t0 = check_time(d[0], before)
    t1 = check_time(d[1], before)
    assert_same_order(h, {
        "x-death": Typed("A", [rewritten_entry(1, "rejected", qb, x1, [qa], t0),
                               fresh_entry("rejected", qa, "", [qa], t1)]),
        "x-first-death-exchange": S(""),
        "x-first-death-queue": S(qa),
        "x-first-death-reason": S("rejected")})


# ---------------------------------------------------------------- cycles

def test_reject_expire_cycle_counts(env):
    """RabbitMQ 3.10.8: ca (dlx "" -> cb) rejects, cb (ttl 100, dlx "" ->
    ca) expires back.  The CC header is removed by the dead-letter routing
    key on the first hop (its value stays in the ca entry's routing-keys).
    After the message has been rejected n times from ca and expired n times
    from cb the x-death is [cb expired n, ca rejected n]; with n >= 2 both
    entries have sorted keys; x-first-death-* stay those of ca/rejected."""
    ch = env.ch
    ca = uid("ca")
    cb = uid("cb")
    ch.queue_declare(ca, arguments={"x-dead-letter-exchange": "",
                                    "x-dead-letter-routing-key": cb})
    ch.queue_declare(cb, arguments={"x-dead-letter-exchange": "",
                                    "x-dead-letter-routing-key": ca,
                                    "x-message-ttl": 100})
    env.queues += [ca, cb]
    ch.basic_publish("", ca, b"loop", pika.BasicProperties(headers={"CC": ["zz"]}))
    before = time.time()
    seen = []
    for n in range(1, 4):
        env.wait_count(ca, 1)
        m, p, _ = env.reject_one(ca)
        assert (m.exchange, m.routing_key) == ("", ca)
        d = (p.headers or {}).get("x-death", [])
        seen.append([(e["queue"], e["reason"], e["count"]) for e in d])
        if n == 1:
            assert p.headers == {"CC": ["zz"]}
        else:
            assert "CC" not in p.headers
    assert seen == [[], [(cb, "expired", 1), (ca, "rejected", 1)],
                    [(cb, "expired", 2), (ca, "rejected", 2)]]
    env.wait_count(ca, 1)  # back after cb's TTL, 3rd time
    args, props, body = env.raw_get(ca)
    assert body == b"loop" and args[2:4] == ["", ca], args
    h = props["headers"]
    d = h["x-death"].value
    assert len(d) == 2, d
    t0 = check_time(d[0], before)
    t1 = check_time(d[1], before)
    assert_same_order(h, {
        "x-death": Typed("A", [rewritten_entry(3, "expired", cb, "", [cb], t0),
                               rewritten_entry(3, "rejected", ca, "", [ca, "zz"], t1)]),
        "x-first-death-exchange": S(""),
        "x-first-death-queue": S(ca),
        "x-first-death-reason": S("rejected")})


def test_reject_expire_cycle_first_round_order(env):
    """RabbitMQ 3.10.8: after one round of the cycle above, x-death is
    [cb expired 1 (keys sorted), ca rejected 1 (fresh key order)]."""
    ch = env.ch
    ca = uid("ca")
    cb = uid("cb")
    ch.queue_declare(ca, arguments={"x-dead-letter-exchange": "",
                                    "x-dead-letter-routing-key": cb})
    ch.queue_declare(cb, arguments={"x-dead-letter-exchange": "",
                                    "x-dead-letter-routing-key": ca,
                                    "x-message-ttl": 100})
    env.queues += [ca, cb]
    ch.basic_publish("", ca, b"loop", pika.BasicProperties(headers={"CC": ["zz"]}))
    env.wait_count(ca, 1)
    before = time.time()
    env.reject_one(ca)
    env.wait_count(ca, 1)
    args, props, body = env.raw_get(ca)
    assert body == b"loop" and args[2:4] == ["", ca], args
    h = props["headers"]
    d = h["x-death"].value
    assert len(d) == 2, d
    t0 = check_time(d[0], before)
    t1 = check_time(d[1], before)
    assert_same_order(h, {
        "x-death": Typed("A", [rewritten_entry(1, "expired", cb, "", [cb], t0),
                               fresh_entry("rejected", ca, "", [ca, "zz"], t1)]),
        "x-first-death-exchange": S(""),
        "x-first-death-queue": S(ca),
        "x-first-death-reason": S("rejected")})


def test_pure_ttl_cycle_is_dropped(env):
    """RabbitMQ 3.10.8: A with TTL 100 dead-lettering into itself (no
    rejection in the cycle): the message is dropped at its first expiry."""
    ch = env.ch
    q = uid("c")
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": "",
                                   "x-message-ttl": 100})
    env.queues.append(q)
    ch.basic_publish("", q, b"cyc")
    env.wait_count(q, 1)
    time.sleep(0.8)
    assert env.count(q) == 0
    assert env.raw_get(q) is None


# ---------------------------------------------------------------- DLX oddities

def test_missing_dlx_drops_silently(env):
    """RabbitMQ 3.10.8: DLX that does not exist: the rejected message is
    gone, the channel stays open."""
    ch = env.ch
    q = env.queue("n", **{"x-dead-letter-exchange": uid("nonexist")})
    ch.basic_publish("", q, b"x")
    env.wait_count(q, 1)
    env.reject_one(q)
    time.sleep(0.2)
    assert env.count(q) == 0
    assert ch.is_open


def test_default_exchange_dlx_with_routing_key(env):
    """RabbitMQ 3.10.8: x-dead-letter-exchange "" + x-dead-letter-routing-key
    = a queue name: delivered there, get-ok exchange "" and routing key =
    that queue; x-death routing-keys = original keys (incl. CC); CC header
    removed because the routing key was overridden."""
    ch = env.ch
    dlq = env.queue("dlq")
    q = env.queue("a", **{"x-dead-letter-exchange": "",
                          "x-dead-letter-routing-key": dlq})
    ch.basic_publish("", q, b"dd", pika.BasicProperties(
        headers={"CC": ["other"]}, delivery_mode=2))
    env.wait_count(q, 1)
    before = time.time()
    env.reject_one(q)
    env.wait_count(dlq, 1)
    args, props, body = env.raw_get(dlq)
    assert body == b"dd" and args[2:4] == ["", dlq]
    h = props.pop("headers")
    assert props == {"delivery_mode": 2}
    t = check_time(h["x-death"].value[0], before)
    assert_same_order(h, {
        "x-death": Typed("A", [fresh_entry("rejected", q, "", [q, "other"], t)]),
        "x-first-death-exchange": S(""),
        "x-first-death-queue": S(q),
        "x-first-death-reason": S("rejected")})
