"""Exchange types, routing, declare/delete semantics and errors."""

import pika
import pika.exceptions
import pytest

import rawamqp
from rawamqp import Typed, expect_connection_close
from helpers import channel_error, connection_error, drain, uid


def make_queue(ch, name=None):
    return ch.queue_declare(name or "", exclusive=True).method.queue


# ---------------------------------------------------------------------------
# Default, direct, fanout
# ---------------------------------------------------------------------------

def test_default_exchange_routes_by_queue_name(ch):
    q = make_queue(ch)
    ch.basic_publish("", q, b"hello")
    assert drain(ch, q) == ["hello"]
    ch.basic_publish("", uid("nobody"), b"lost")  # unroutable: dropped silently
    assert drain(ch, q) == []


def test_default_exchange_cannot_be_bound(ch):
    q = make_queue(ch)
    channel_error(ch, lambda: ch.queue_bind(q, "", routing_key="x"), 403,
                  "ACCESS_REFUSED - operation not permitted on the default exchange")


def test_default_exchange_cannot_be_declared_or_deleted(connect):
    ch = connect().channel()
    channel_error(ch, lambda: ch.exchange_declare("", "direct"), 403,
                  "ACCESS_REFUSED - operation not permitted on the default exchange")
    ch = connect().channel()
    channel_error(ch, lambda: ch.exchange_delete(""), 403,
                  "ACCESS_REFUSED - operation not permitted on the default exchange")


def test_default_exchange_passive_declare_is_403(ch):
    """Even a passive declare of the default exchange is refused."""
    channel_error(ch, lambda: ch.exchange_declare("", passive=True), 403,
                  "ACCESS_REFUSED - operation not permitted on the default exchange")


def test_direct_exchange(ch):
    x = uid("direct")
    ch.exchange_declare(x, "direct", auto_delete=True)
    q1, q2 = make_queue(ch), make_queue(ch)
    ch.queue_bind(q1, x, "red")
    ch.queue_bind(q2, x, "green")
    ch.queue_bind(q2, x, "red")
    ch.basic_publish(x, "red", b"r")
    ch.basic_publish(x, "green", b"g")
    ch.basic_publish(x, "blue", b"b")
    ch.basic_publish(x, "RED", b"R")
    assert drain(ch, q1) == ["r"]
    assert drain(ch, q2) == ["r", "g"]


def test_direct_double_binding_delivers_once(ch):
    x = uid("direct")
    ch.exchange_declare(x, "direct", auto_delete=True)
    q = make_queue(ch)
    ch.queue_bind(q, x, "k")
    ch.queue_bind(q, x, "k")
    ch.queue_bind(q, x, "k", arguments={"a": 1})  # different binding, same queue
    ch.basic_publish(x, "k", b"once")
    assert drain(ch, q) == ["once"]


def test_fanout_ignores_routing_key(ch):
    x = uid("fan")
    ch.exchange_declare(x, "fanout", auto_delete=True)
    qs = [make_queue(ch) for _ in range(3)]
    for i, q in enumerate(qs):
        ch.queue_bind(q, x, "key-%d" % i)
    ch.basic_publish(x, "whatever", b"m1")
    ch.basic_publish(x, "", b"m2")
    for q in qs:
        assert drain(ch, q) == ["m1", "m2"]


# ---------------------------------------------------------------------------
# Topic
# ---------------------------------------------------------------------------

TOPIC_CASES = [
    # (binding pattern, routing key, should match)
    ("a.b.c", "a.b.c", True),
    ("a.b.c", "a.b", False),
    ("a.b.c", "a.b.c.d", False),
    ("a.*.c", "a.b.c", True),
    ("a.*.c", "a.c", False),
    ("a.*.c", "a..c", True),          # * matches an empty word
    ("a.*", "a.", True),
    ("a.*", "a", False),
    ("*", "", False),                 # the empty key has zero words
    ("*", ".", False),                # "." is two empty words
    ("*", "a", True),
    ("*", "a.b", False),
    ("*.*", "a.b", True),
    ("*.*", ".", True),
    ("#", "", True),
    ("#", "a.b.c", True),
    ("#", "..", True),
    ("a.#", "a", True),
    ("a.#", "a.b", True),
    ("a.#", "a.b.c", True),
    ("a.#", "b.a", False),
    ("a.#", "ab", False),
    ("#.a", "a", True),
    ("#.a", "x.y.a", True),
    ("#.a", "x.y.ab", False),
    ("a.#.b", "a.b", True),
    ("a.#.b", "a.x.b", True),
    ("a.#.b", "a.x.y.b", True),
    ("a.#.b", "a.x.y.c", False),
    ("a.#.b", "a.b.b", True),
    ("#.#", "", True),
    ("#.#", "a", True),
    ("#.#", "a.b.c", True),
    ("#.*", "", False),
    ("#.*", "a", True),
    ("#.*", "a.b", True),
    ("*.#", "a", True),
    ("*.#", "", False),
    ("*.#.*", "a", False),
    ("*.#.*", "a.b", True),
    ("*.#.*", "a.b.c.d", True),
    ("a.*.#", "a", False),
    ("a.*.#", "a.b", True),
    ("a.*.#", "a.b.c", True),
    ("", "", True),
    ("", "a", False),
    ("a..b", "a..b", True),
    ("a..b", "a.b", False),
    ("a.", "a.", True),
    ("a.", "a", False),
    (".a", ".a", True),
    ("*.a", ".a", True),
    ("a*", "a*", True),               # * only special as a whole word
    ("a*", "ab", False),
    ("a#", "a#", True),
    ("a#", "abc", False),
    ("#.b.#", "b", True),
    ("#.b.#", "a.b.c", True),
    ("#.b.#", "a.c", False),
    ("a.#.#.b", "a.b", True),
    ("a.#.#.b", "a.x.y.b", True),
    ("#.#.#", "", True),
    ("*.*.*", "a..", True),
    ("a.#", "a.", True),
    ("*", "a.", False),
    ("usd.#.nyse.*", "usd.x.y.nyse.ibm", True),
    ("usd.#.nyse.*", "usd.nyse.ibm", True),
    ("usd.#.nyse.*", "usd.nyse", False),
]


def test_topic_matching(ch):
    x = uid("topic")
    ch.exchange_declare(x, "topic", auto_delete=True)
    queues = []
    for i, (pattern, key, match) in enumerate(TOPIC_CASES):
        q = make_queue(ch)
        ch.queue_bind(q, x, pattern)
        queues.append(q)
    keys = sorted(set(k for _, k, _ in TOPIC_CASES))
    for key in keys:
        ch.basic_publish(x, key, key.encode())
    failures = []
    for (pattern, key, match), q in zip(TOPIC_CASES, queues):
        got = drain(ch, q, limit=200)
        expected = [k for k in keys if _should_match(pattern, k)]
        if (key in got) != match:
            failures.append((pattern, key, match, got))
        assert sorted(got) == sorted(expected), (pattern, got, expected)
    assert failures == []


def _should_match(pattern, key):
    """Reference topic matcher (AMQP 0-9-1 / RabbitMQ semantics)."""
    # RabbitMQ splits on "." but the empty string is zero words, not one
    # empty word ("a." is two words: "a" and "").
    p = pattern.split(".") if pattern else []
    k = key.split(".") if key else []

    def m(i, j):
        if i == len(p):
            return j == len(k)
        if p[i] == "#":
            return any(m(i + 1, jj) for jj in range(j, len(k) + 1))
        if j == len(k):
            return False
        return (p[i] == "*" or p[i] == k[j]) and m(i + 1, j + 1)

    return m(0, 0)


def test_reference_matcher_agrees_with_table():
    for pattern, key, match in TOPIC_CASES:
        assert _should_match(pattern, key) == match, (pattern, key)


def test_topic_multiple_bindings_one_copy(ch):
    x = uid("topic")
    ch.exchange_declare(x, "topic", auto_delete=True)
    q = make_queue(ch)
    for pattern in ("a.*", "#", "a.b", "*.b", "a.#"):
        ch.queue_bind(q, x, pattern)
    ch.basic_publish(x, "a.b", b"one")
    assert drain(ch, q) == ["one"]


def test_topic_unbind(ch):
    x = uid("topic")
    ch.exchange_declare(x, "topic", auto_delete=True)
    q = make_queue(ch)
    ch.queue_bind(q, x, "a.*")
    ch.queue_bind(q, x, "#.c")
    ch.queue_unbind(q, x, "a.*")
    ch.basic_publish(x, "a.b", b"ab")
    ch.basic_publish(x, "a.c", b"ac")
    assert drain(ch, q) == ["ac"]


# ---------------------------------------------------------------------------
# Headers
# ---------------------------------------------------------------------------

HEADERS_BINDINGS = {
    "all-default": {"a": 1, "b": "x"},
    "all": {"x-match": "all", "a": 1, "b": "x"},
    "any": {"x-match": "any", "a": 1, "b": "x"},
    "all-with-x": {"x-match": "all-with-x", "a": 1, "x-foo": "bar"},
    "any-with-x": {"x-match": "any-with-x", "x-foo": "bar", "zz": 1},
    "all-ignores-x": {"x-match": "all", "a": 1, "x-foo": "bar"},
    "any-ignores-x": {"x-match": "any", "x-foo": "bar", "zz": 1},
    "empty-all": {},
    "empty-any": {"x-match": "any"},
}

HEADERS_CASES = [
    # (message headers, set of binding names that must get the message)
    ({"a": 1, "b": "x"}, {"all-default", "all", "any", "empty-all", "all-ignores-x"}),
    ({"a": 1}, {"any", "empty-all", "all-ignores-x"}),
    ({"b": "x"}, {"any", "empty-all"}),
    ({"a": 2, "b": "x"}, {"any", "empty-all"}),
    ({"a": 1, "b": "x", "c": 3}, {"all-default", "all", "any", "empty-all", "all-ignores-x"}),
    ({"a": 1, "x-foo": "bar"}, {"any", "all-with-x", "any-with-x", "empty-all",
                                "all-ignores-x"}),
    ({"x-foo": "bar"}, {"any-with-x", "empty-all"}),
    ({"zz": 1}, {"any-with-x", "any-ignores-x", "empty-all"}),
    ({}, {"empty-all"}),
    (None, {"empty-all"}),
]


def test_headers_exchange_matching(ch):
    x = uid("hdr")
    ch.exchange_declare(x, "headers", auto_delete=True)
    queues = {}
    for bname, args in HEADERS_BINDINGS.items():
        q = make_queue(ch)
        ch.queue_bind(q, x, "", arguments=args)
        queues[bname] = q
    for i, (headers, _) in enumerate(HEADERS_CASES):
        ch.basic_publish(x, "ignored", str(i).encode(),
                         pika.BasicProperties(headers=headers))
    got = {b: set(int(v) for v in drain(ch, q)) for b, q in queues.items()}
    for i, (headers, expected) in enumerate(HEADERS_CASES):
        actual = {b for b, msgs in got.items() if i in msgs}
        assert actual == expected, (headers, actual, expected)


def test_headers_void_binding_value_matches_presence(raw):
    """A binding argument of type void matches any value of that header."""
    c = raw()
    c.handshake()
    c.open_channel(1)
    x = uid("hdr")
    q = uid("q")
    c.rpc(1, "exchange.declare", 0, x, "headers", False, False, True, False, False, {})
    c.rpc(1, "queue.declare", 0, q, False, False, True, True, False, {})
    c.rpc(1, "queue.bind", 0, q, x, "", False,
          {"x-match": "all", "present": Typed("V", None)})

    def props(headers):
        # property flags: headers is bit 13
        return 1 << 13, rawamqp.table(headers)

    for i, h in enumerate([{"present": 1}, {"present": "str"}, {"other": 1}, {},
                           {"present": Typed("V", None)}]):
        flags, pb = props(h)
        c.publish(1, x, "", str(i).encode(), flags=flags, props=pb)
    got = []
    while True:
        c.send_method(1, "basic.get", 0, q, True)
        f = c.read_method()
        if f.name == "basic.get-empty":
            break
        _h, body = c.read_content()
        got.append(body)
    assert got == [b"0", b"1", b"4"]


def test_headers_integer_types_compare_by_value(raw):
    """A binding value 1 (signed 32) matches header value 1 sent as 64-bit
    or 8-bit; strings do not match numbers."""
    c = raw()
    c.handshake()
    c.open_channel(1)
    x = uid("hdr")
    q = uid("q")
    c.rpc(1, "exchange.declare", 0, x, "headers", False, False, True, False, False, {})
    c.rpc(1, "queue.declare", 0, q, False, False, True, True, False, {})
    c.rpc(1, "queue.bind", 0, q, x, "", False, {"n": Typed("I", 1)})
    for i, v in enumerate([Typed("I", 1), Typed("l", 1), Typed("b", 1),
                           Typed("S", "1"), Typed("I", 2)]):
        c.publish(1, x, "", str(i).encode(), flags=1 << 13,
                  props=rawamqp.table({"n": v}))
    got = []
    while True:
        c.send_method(1, "basic.get", 0, q, True)
        f = c.read_method()
        if f.name == "basic.get-empty":
            break
        _h, body = c.read_content()
        got.append(body)
    assert got == [b"0", b"1", b"2"]


def test_headers_invalid_x_match_is_406(ch):
    x = uid("hdr")
    ch.exchange_declare(x, "headers", auto_delete=True)
    q = make_queue(ch)
    channel_error(ch, lambda: ch.queue_bind(q, x, "", arguments={"x-match": "some"}),
                  406, "PRECONDITION_FAILED - Invalid x-match field value "
                  "<<\"some\">>; expected all, any, all-with-x, or any-with-x")


def test_headers_unbind_with_args(ch):
    x = uid("hdr")
    ch.exchange_declare(x, "headers", auto_delete=True)
    q = make_queue(ch)
    ch.queue_bind(q, x, "", arguments={"a": 1})
    ch.queue_bind(q, x, "", arguments={"b": 2})
    ch.queue_unbind(q, x, "", arguments={"a": 1})
    ch.basic_publish(x, "", b"a", pika.BasicProperties(headers={"a": 1}))
    ch.basic_publish(x, "", b"b", pika.BasicProperties(headers={"b": 2}))
    assert drain(ch, q) == ["b"]


# ---------------------------------------------------------------------------
# Predeclared exchanges
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("xname,xtype", [
    ("amq.direct", "direct"), ("amq.fanout", "fanout"), ("amq.topic", "topic"),
    ("amq.headers", "headers"), ("amq.match", "headers"),
])
def test_predeclared_exchanges_exist_and_are_durable(connect, xname, xtype):
    ch = connect().channel()
    ch.exchange_declare(xname, passive=True)
    # The reserved-prefix check applies only to new exchanges: an equivalent
    # redeclare of a predeclared exchange is accepted...
    ch.exchange_declare(xname, xtype, durable=True)
    # ...and a non-durable one is inequivalent, which shows it is durable.
    channel_error(ch, lambda: ch.exchange_declare(xname, xtype, durable=False),
                  406, "PRECONDITION_FAILED - inequivalent arg 'durable' for "
                  "exchange '%s' in vhost '/': received 'false' but current is "
                  "'true'" % xname)
    ch = connect().channel()
    other = "fanout" if xtype != "fanout" else "direct"
    channel_error(ch, lambda: ch.exchange_declare(xname, other, durable=True),
                  406, "PRECONDITION_FAILED - inequivalent arg 'type' for "
                  "exchange '%s' in vhost '/': received '%s' but current is "
                  "'%s'" % (xname, other, xtype))


def test_predeclared_amq_direct_routes(ch):
    q = make_queue(ch)
    ch.queue_bind(q, "amq.direct", q)
    ch.basic_publish("amq.direct", q, b"d")
    assert drain(ch, q) == ["d"]
    ch.queue_unbind(q, "amq.direct", q)


def test_predeclared_exchange_cannot_be_deleted(ch):
    channel_error(ch, lambda: ch.exchange_delete("amq.direct"), 403,
                  "ACCESS_REFUSED - deletion of system exchange 'amq.direct' "
                  "in vhost '/' not allowed")


# ---------------------------------------------------------------------------
# Declare and delete
# ---------------------------------------------------------------------------

def test_passive_declare_missing_is_404(ch):
    x = uid("nope")
    channel_error(ch, lambda: ch.exchange_declare(x, passive=True), 404,
                  "NOT_FOUND - no exchange '%s' in vhost '/'" % x)


def test_passive_declare_existing_ignores_other_fields(ch):
    x = uid("x")
    ch.exchange_declare(x, "fanout", auto_delete=True)
    ch.exchange_declare(x, "topic", passive=True, durable=True)
    ch.exchange_delete(x)


def test_durable_exchange_declare_and_equivalent_redeclare(ch):
    x = uid("dur")
    ch.exchange_declare(x, "direct", durable=True)
    ch.exchange_declare(x, "direct", durable=True)
    ch.exchange_declare(x, passive=True)
    ch.exchange_delete(x)


def test_redeclare_different_type_is_406(connect):
    ch = connect().channel()
    x = uid("x")
    ch.exchange_declare(x, "direct", auto_delete=True)
    channel_error(ch, lambda: ch.exchange_declare(x, "fanout", auto_delete=True), 406,
                  "PRECONDITION_FAILED - inequivalent arg 'type' for exchange "
                  "'%s' in vhost '/': received 'fanout' but current is 'direct'" % x)
    ch = connect().channel()
    ch.exchange_delete(x)


def test_redeclare_different_durable_is_406(connect):
    ch = connect().channel()
    x = uid("x")
    ch.exchange_declare(x, "direct")
    channel_error(ch, lambda: ch.exchange_declare(x, "direct", durable=True), 406,
                  "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange "
                  "'%s' in vhost '/': received 'true' but current is 'false'" % x)
    connect().channel().exchange_delete(x)


def test_redeclare_different_auto_delete_is_406(connect):
    ch = connect().channel()
    x = uid("x")
    ch.exchange_declare(x, "direct")
    channel_error(ch, lambda: ch.exchange_declare(x, "direct", auto_delete=True), 406,
                  "PRECONDITION_FAILED - inequivalent arg 'auto_delete' for exchange "
                  "'%s' in vhost '/': received 'true' but current is 'false'" % x)
    connect().channel().exchange_delete(x)


def test_redeclare_different_alternate_exchange_is_406(connect):
    ch = connect().channel()
    x = uid("x")
    ch.exchange_declare(x, "direct", arguments={"alternate-exchange": "ae1"})
    channel_error(
        ch, lambda: ch.exchange_declare(x, "direct",
                                        arguments={"alternate-exchange": "ae2"}),
        406, "PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for "
        "exchange '%s' in vhost '/': received 'ae2' but current is 'ae1'" % x)
    connect().channel().exchange_delete(x)


def test_redeclare_with_other_different_args_is_accepted(ch):
    """Only alternate-exchange is compared on redeclare; other arguments
    are ignored (RabbitMQ)."""
    x = uid("x")
    ch.exchange_declare(x, "direct", arguments={"foo": 1})
    ch.exchange_declare(x, "direct", arguments={"foo": 2, "bar": "z"})
    ch.exchange_declare(x, "direct")
    ch.exchange_delete(x)


def test_declare_reserved_amq_prefix_is_403(ch):
    channel_error(ch, lambda: ch.exchange_declare("amq.foo", "direct"), 403,
                  "ACCESS_REFUSED - exchange name 'amq.foo' contains reserved "
                  "prefix 'amq.*'")


def test_passive_declare_amq_prefix_missing_is_404(ch):
    channel_error(ch, lambda: ch.exchange_declare("amq.nothere", passive=True), 404,
                  "NOT_FOUND - no exchange 'amq.nothere' in vhost '/'")


def test_unknown_exchange_type_is_503_connection_error(conn):
    ch = conn.channel()
    x = uid("x")
    connection_error(lambda: ch.exchange_declare(x, "no-such-type"), 503,
                     "COMMAND_INVALID - unknown exchange type 'no-such-type'")


def test_unknown_exchange_type_raw(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    c.send_method(1, "exchange.declare", 0, uid("x"), "bogus", False, False, False,
                  False, False, {})
    expect_connection_close(c, 503, "COMMAND_INVALID - unknown exchange type 'bogus'",
                            40, 10)


def test_delete_exchange(connect):
    ch = connect().channel()
    x = uid("x")
    ch.exchange_declare(x, "fanout")
    ch.exchange_delete(x)
    channel_error(ch, lambda: ch.exchange_declare(x, passive=True), 404)


def test_delete_missing_exchange_is_ok(ch):
    """exchange.delete of a missing exchange succeeds (RabbitMQ 3.x)."""
    ch.exchange_delete(uid("never"))
    assert ch.is_open


def test_delete_if_unused(connect):
    ch = connect().channel()
    x = uid("x")
    ch.exchange_declare(x, "fanout")
    q = make_queue(ch)
    ch.queue_bind(q, x)
    channel_error(ch, lambda: ch.exchange_delete(x, if_unused=True), 406,
                  "PRECONDITION_FAILED - exchange '%s' in vhost '/' in use" % x)
    ch = connect().channel()
    ch.exchange_delete(x, if_unused=False)
    ch.exchange_declare(x, "fanout")
    ch.exchange_delete(x, if_unused=True)  # unused now: ok


def test_delete_if_unused_counts_exchange_source_bindings(connect):
    ch = connect().channel()
    src, dst = uid("src"), uid("dst")
    ch.exchange_declare(src, "fanout")
    ch.exchange_declare(dst, "fanout")
    ch.exchange_bind(dst, src)
    channel_error(ch, lambda: ch.exchange_delete(src, if_unused=True), 406)
    ch = connect().channel()
    # dst is only a destination: not "in use" as a source
    ch.exchange_delete(dst, if_unused=True)
    ch.exchange_delete(src, if_unused=True)


def test_deleting_exchange_removes_its_bindings(ch):
    x = uid("x")
    ch.exchange_declare(x, "fanout")
    q = make_queue(ch)
    ch.queue_bind(q, x)
    ch.exchange_delete(x)
    ch.exchange_declare(x, "fanout")
    ch.basic_publish(x, "", b"m")
    assert drain(ch, q) == []
    ch.exchange_delete(x)


def test_auto_delete_exchange_deleted_when_last_binding_goes(connect):
    ch = connect().channel()
    x = uid("ad")
    ch.exchange_declare(x, "direct", auto_delete=True)
    # not deleted while it never had a binding
    ch.exchange_declare(x, passive=True)
    q = make_queue(ch)
    ch.queue_bind(q, x, "a")
    ch.queue_bind(q, x, "b")
    ch.queue_unbind(q, x, "a")
    ch.exchange_declare(x, passive=True)
    ch.queue_unbind(q, x, "b")
    channel_error(ch, lambda: ch.exchange_declare(x, passive=True), 404)


def test_auto_delete_exchange_deleted_when_bound_queue_deleted(connect):
    ch = connect().channel()
    x = uid("ad")
    ch.exchange_declare(x, "fanout", auto_delete=True)
    q = uid("q")
    ch.queue_declare(q)
    ch.queue_bind(q, x)
    ch.queue_delete(q)
    channel_error(ch, lambda: ch.exchange_declare(x, passive=True), 404)


def test_auto_delete_exchange_deleted_when_e2e_binding_goes(connect):
    ch = connect().channel()
    src, dst = uid("src"), uid("dst")
    ch.exchange_declare(src, "fanout", auto_delete=True)
    ch.exchange_declare(dst, "fanout")
    ch.exchange_bind(dst, src)
    ch.exchange_unbind(dst, src)
    channel_error(ch, lambda: ch.exchange_declare(src, passive=True), 404)
    connect().channel().exchange_delete(dst)


def test_internal_exchange_publish_is_403(connect):
    ch = connect().channel()
    x = uid("int")
    ch.exchange_declare(x, "fanout", internal=True)
    ch.basic_publish(x, "", b"nope")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare("", exclusive=True)  # sync point
    assert ei.value.reply_code == 403
    assert ei.value.reply_text == ("ACCESS_REFUSED - cannot publish to internal "
                                   "exchange '%s' in vhost '/'" % x)
    connect().channel().exchange_delete(x)


def test_internal_exchange_raw_publish_close_fields(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    x = uid("int")
    c.rpc(1, "exchange.declare", 0, x, "fanout", False, False, True, True, False, {})
    c.publish(1, x, "", b"body")
    f = c.wait_channel_close(1)
    assert f.args == [403, "ACCESS_REFUSED - cannot publish to internal exchange "
                      "'%s' in vhost '/'" % x, 60, 40]


def test_internal_exchange_reachable_via_e2e_binding(ch):
    src, inner = uid("src"), uid("inner")
    ch.exchange_declare(src, "fanout", auto_delete=True)
    ch.exchange_declare(inner, "fanout", internal=True, auto_delete=True)
    q = make_queue(ch)
    ch.queue_bind(q, inner)
    ch.exchange_bind(inner, src)
    ch.basic_publish(src, "", b"via")
    assert drain(ch, q) == ["via"]


def test_publish_to_missing_exchange_is_404(connect):
    ch = connect().channel()
    x = uid("missing")
    ch.basic_publish(x, "", b"x")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare("", exclusive=True)
    assert ei.value.reply_code == 404
    assert ei.value.reply_text == "NOT_FOUND - no exchange '%s' in vhost '/'" % x


def test_exchange_declare_nowait(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    x = uid("nw")
    c.send_method(1, "exchange.declare", 0, x, "direct", False, False, True, False,
                  True, {})
    # no declare-ok: the next reply is for the passive declare
    f = c.rpc(1, "exchange.declare", 0, x, "direct", True, False, False, False,
              False, {}, reply="exchange.declare-ok")
    assert f.name == "exchange.declare-ok"
    c.rpc(1, "exchange.delete", 0, x, False, False)


# ---------------------------------------------------------------------------
# Exchange-to-exchange bindings
# ---------------------------------------------------------------------------

def test_exchange_to_exchange_routing(ch):
    src, mid, dst = uid("src"), uid("mid"), uid("dst")
    ch.exchange_declare(src, "topic")
    ch.exchange_declare(mid, "direct", auto_delete=True)
    ch.exchange_declare(dst, "fanout", auto_delete=True)
    ch.exchange_bind(mid, src, "a.*")
    ch.exchange_bind(dst, mid, "a.b")
    q1, q2 = make_queue(ch), make_queue(ch)
    ch.queue_bind(q1, mid, "a.c")
    ch.queue_bind(q2, dst)
    ch.basic_publish(src, "a.b", b"ab")
    ch.basic_publish(src, "a.c", b"ac")
    ch.basic_publish(src, "x.b", b"xb")
    assert drain(ch, q1) == ["ac"]
    assert drain(ch, q2) == ["ab"]
    ch.exchange_unbind(mid, src, "a.*")
    ch.basic_publish(src, "a.b", b"ab2")
    assert drain(ch, q2) == []
    ch.exchange_delete(src)


def test_exchange_bind_cycle_delivers_once(ch):
    a, b = uid("a"), uid("b")
    ch.exchange_declare(a, "fanout", auto_delete=True)
    ch.exchange_declare(b, "fanout", auto_delete=True)
    ch.exchange_bind(b, a)
    ch.exchange_bind(a, b)
    ch.exchange_bind(a, a)
    q = make_queue(ch)
    ch.queue_bind(q, a)
    ch.queue_bind(q, b)
    ch.basic_publish(a, "", b"1")
    ch.basic_publish(b, "", b"2")
    assert drain(ch, q) == ["1", "2"]


def test_exchange_bind_diamond_delivers_once(ch):
    top, l, r = uid("top"), uid("l"), uid("r")
    for x in (top, l, r):
        ch.exchange_declare(x, "fanout", auto_delete=True)
    ch.exchange_bind(l, top)
    ch.exchange_bind(r, top)
    q = make_queue(ch)
    ch.queue_bind(q, l)
    ch.queue_bind(q, r)
    ch.basic_publish(top, "", b"d")
    assert drain(ch, q) == ["d"]


def test_exchange_bind_missing_source_is_404(connect):
    ch = connect().channel()
    dst, missing = uid("dst"), uid("missing")
    ch.exchange_declare(dst, "fanout", auto_delete=True)
    channel_error(ch, lambda: ch.exchange_bind(dst, missing), 404,
                  "NOT_FOUND - no exchange '%s' in vhost '/'" % missing)


def test_exchange_bind_missing_destination_is_404(connect):
    ch = connect().channel()
    src, missing = uid("src"), uid("missing")
    ch.exchange_declare(src, "fanout", auto_delete=True)
    channel_error(ch, lambda: ch.exchange_bind(missing, src), 404,
                  "NOT_FOUND - no exchange '%s' in vhost '/'" % missing)


def test_exchange_unbind_missing_binding_is_ok(ch):
    a, b = uid("a"), uid("b")
    ch.exchange_declare(a, "fanout", auto_delete=True)
    ch.exchange_declare(b, "fanout", auto_delete=True)
    ch.exchange_unbind(b, a, "nope")
    assert ch.is_open


# ---------------------------------------------------------------------------
# Alternate exchange
# ---------------------------------------------------------------------------

def test_alternate_exchange_gets_unroutable(ch):
    ae, x = uid("ae"), uid("x")
    ch.exchange_declare(ae, "fanout", auto_delete=True)
    ch.exchange_declare(x, "direct", auto_delete=True,
                        arguments={"alternate-exchange": ae})
    qa, qx = make_queue(ch), make_queue(ch)
    ch.queue_bind(qa, ae)
    ch.queue_bind(qx, x, "known")
    ch.basic_publish(x, "known", b"k")
    ch.basic_publish(x, "unknown", b"u")
    assert drain(ch, qx) == ["k"]
    assert drain(ch, qa) == ["u"]


def test_alternate_exchange_with_mandatory_no_return(ch):
    ae, x = uid("ae"), uid("x")
    ch.exchange_declare(ae, "fanout", auto_delete=True)
    ch.exchange_declare(x, "direct", auto_delete=True,
                        arguments={"alternate-exchange": ae})
    qa = make_queue(ch)
    ch.queue_bind(qa, ae)
    returned = []
    ch.add_on_return_callback(lambda *a: returned.append(a))
    ch.confirm_delivery()
    ch.basic_publish(x, "nowhere", b"m", mandatory=True)
    ch.connection.process_data_events(0.2)
    assert returned == []
    assert drain(ch, qa) == ["m"]


def test_missing_alternate_exchange_drops_and_returns_mandatory(ch):
    x = uid("x")
    ch.exchange_declare(x, "direct", auto_delete=True,
                        arguments={"alternate-exchange": uid("ghost")})
    q = make_queue(ch)
    ch.queue_bind(q, x, "k")
    ch.confirm_delivery()
    with pytest.raises(pika.exceptions.UnroutableError):
        ch.basic_publish(x, "other", b"m", mandatory=True)
    ch.basic_publish(x, "k", b"ok", mandatory=True)
    assert drain(ch, q) == ["ok"]


def test_alternate_exchange_chain(ch):
    ae2, ae1, x = uid("ae2"), uid("ae1"), uid("x")
    ch.exchange_declare(ae2, "fanout", auto_delete=True)
    ch.exchange_declare(ae1, "direct", auto_delete=True,
                        arguments={"alternate-exchange": ae2})
    ch.exchange_declare(x, "direct", auto_delete=True,
                        arguments={"alternate-exchange": ae1})
    q = make_queue(ch)
    ch.queue_bind(q, ae2)
    ch.basic_publish(x, "zzz", b"chained")
    assert drain(ch, q) == ["chained"]
