"""The x-consistent-hash exchange type, as RabbitMQ's
rabbitmq_consistent_hash_exchange plugin defines it: binding keys are
weights, each message goes to exactly one bound queue chosen by hashing the
routing key, a header (hash-header) or a property (hash-property)."""

import random
import time

import pika
import pytest

from helpers import channel_error, uid

CHX = "x-consistent-hash"


def setup_ring(ch, weights, arguments=None):
    """Declares a consistent-hash exchange with one queue per weight;
    returns (exchange, [queue names])."""
    x = uid("chx")
    ch.exchange_declare(x, CHX, auto_delete=True, arguments=arguments)
    qs = []
    for w in weights:
        q = ch.queue_declare(uid("chq"), exclusive=True).method.queue
        ch.queue_bind(q, x, routing_key=str(w))
        qs.append(q)
    return x, qs


def depth(ch, q):
    return ch.queue_declare(q, passive=True).method.message_count


def depths(ch, qs):
    return [depth(ch, q) for q in qs]


def assert_proportional(counts, weights, total, tol=0.3):
    assert sum(counts) == total, counts
    for c, w in zip(counts, weights):
        fair = total * w / sum(weights)
        assert abs(c - fair) < fair * tol, (counts, weights)


def test_declare_and_redeclare(ch):
    x = uid("chx")
    ch.exchange_declare(x, CHX, auto_delete=True)
    ch.exchange_declare(x, CHX, auto_delete=True)
    ch.exchange_declare(x, CHX, passive=True)
    channel_error(ch, lambda: ch.exchange_declare(x, "direct", auto_delete=True), 406)


def test_routing_key_weights_1_2_3(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    weights = [1, 2, 3]
    x, qs = setup_ring(ch, weights)
    rnd = random.Random(7)
    n = 3000
    for _ in range(n):
        ch.basic_publish(x, "%016x" % rnd.getrandbits(64), b"m")
    assert_proportional(depths(ch, qs), weights, n)


def test_same_routing_key_same_queue(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    x, qs = setup_ring(ch, [1, 1, 1, 1])
    for key in ["order-17", "customer-42", "", "a.b.c"]:
        before = depths(ch, qs)
        for _ in range(50):
            ch.basic_publish(x, key, b"m")
        after = depths(ch, qs)
        grown = [a - b for a, b in zip(after, before)]
        assert sorted(grown) == [0, 0, 0, 50], (key, grown)


def test_each_message_goes_to_exactly_one_queue(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    x, qs = setup_ring(ch, [5, 5])
    for i in range(200):
        ch.basic_publish(x, "k%d" % i, b"m")
    counts = depths(ch, qs)
    assert sum(counts) == 200 and min(counts) > 0, counts


def test_empty_exchange_is_unroutable(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    x = uid("chx")
    ch.exchange_declare(x, CHX)
    try:
        with pytest.raises(pika.exceptions.UnroutableError):
            ch.basic_publish(x, "k", b"m", mandatory=True)
    finally:
        ch.exchange_delete(x)


def test_unbind_moves_only_that_queues_keys(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    x, qs = setup_ring(ch, [1, 1, 1])
    keys = ["key-%d" % i for i in range(300)]

    def where(key):
        before = depths(ch, qs)
        ch.basic_publish(x, key, b"m")
        after = depths(ch, qs)
        return [i for i in range(3) if after[i] != before[i]][0]

    first = {k: where(k) for k in keys[:60]}
    ch.queue_unbind(qs[2], x, routing_key="1")
    for k, i in first.items():
        j = where(k)
        assert j != 2
        if i != 2:
            assert j == i, k


def test_hash_header(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    weights = [1, 2, 3]
    x, qs = setup_ring(ch, weights, arguments={"hash-header": "user"})
    n = 3000
    rnd = random.Random(11)
    for _ in range(n):
        props = pika.BasicProperties(headers={"user": "u%016x" % rnd.getrandbits(64)})
        # The routing key is fixed: only the header may spread messages.
        ch.basic_publish(x, "same", b"m", properties=props)
    assert_proportional(depths(ch, qs), weights, n)

    # One header value always lands in one queue.
    before = depths(ch, qs)
    for i in range(40):
        props = pika.BasicProperties(headers={"user": "alice"})
        ch.basic_publish(x, "rk-%d" % i, b"m", properties=props)
    grown = [a - b for a, b in zip(depths(ch, qs), before)]
    assert sorted(grown) == [0, 0, 40], grown


def test_hash_header_missing_goes_to_one_queue(conn):
    """RabbitMQ 3.10's plugin hashes a missing header as 'undefined': every
    such message is routed, all to the same queue."""
    ch = conn.channel()
    ch.confirm_delivery()
    x, qs = setup_ring(ch, [1, 1, 1], arguments={"hash-header": "user"})
    for i in range(30):
        props = pika.BasicProperties(headers={"other": "v%d" % i}) if i % 2 else None
        ch.basic_publish(x, "k%d" % i, b"m", properties=props, mandatory=True)
    d = depths(ch, qs)
    assert sum(d) == 30 and sorted(d) == [0, 0, 30], d


@pytest.mark.parametrize("prop", ["message_id", "correlation_id", "timestamp"])
def test_hash_property(conn, prop):
    ch = conn.channel()
    ch.confirm_delivery()
    weights = [1, 2, 3]
    x, qs = setup_ring(ch, weights, arguments={"hash-property": prop})
    n = 3000
    base = int(time.time())

    def props_for(i):
        if prop == "timestamp":
            return pika.BasicProperties(timestamp=base + i * 7919)
        return pika.BasicProperties(**{prop: "id-%d-%d" % (i, i * 31)})

    for i in range(n):
        ch.basic_publish(x, "same", b"m", properties=props_for(i))
    assert_proportional(depths(ch, qs), weights, n)

    # The same property value always lands in the same queue.
    before = depths(ch, qs)
    for i in range(30):
        ch.basic_publish(x, "rk-%d" % i, b"m", properties=props_for(5))
    grown = [a - b for a, b in zip(depths(ch, qs), before)]
    assert sorted(grown) == [0, 0, 30], grown


def test_hash_property_missing_goes_to_one_queue(conn):
    # The plugin hashes the absent value as a constant: one fixed queue.
    ch = conn.channel()
    ch.confirm_delivery()
    x, qs = setup_ring(ch, [1, 1, 1], arguments={"hash-property": "message_id"})
    for i in range(30):
        ch.basic_publish(x, "rk-%d" % i, b"m")
    assert sorted(depths(ch, qs)) == [0, 0, 30]


def test_dead_lettering_through_consistent_hash(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    x, qs = setup_ring(ch, [1, 1])
    src = ch.queue_declare(
        uid("chsrc"), exclusive=True,
        arguments={"x-dead-letter-exchange": x, "x-message-ttl": 0},
    ).method.queue
    for i in range(20):
        ch.basic_publish("", src, b"m")
    # All carry routing key src: they expire into one queue of the ring.
    deadline = time.monotonic() + 5
    while sum(depths(ch, qs)) < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(depths(ch, qs)) == [0, 20]


# Validation, as the plugin's validate/1 and validate_binding/2.


@pytest.mark.parametrize("key,text", [
    ("abc", 'PRECONDITION_FAILED - The binding key must be an integer: <<"abc">>'),
    ("1.5", 'PRECONDITION_FAILED - The binding key must be an integer: <<"1.5">>'),
    ("", 'PRECONDITION_FAILED - The binding key must be an integer: <<>>'),
    ("0", "PRECONDITION_FAILED - The binding key must be greater than 0"),
    ("-2", "PRECONDITION_FAILED - The binding key must be greater than 0"),
])
def test_bad_weight_is_406(ch, key, text):
    x = uid("chx")
    ch.exchange_declare(x, CHX, auto_delete=True)
    q = ch.queue_declare("", exclusive=True).method.queue
    channel_error(ch, lambda: ch.queue_bind(q, x, routing_key=key), 406, text)


def test_unsupported_property_is_406(ch):
    channel_error(
        ch, lambda: ch.exchange_declare(uid("chx"), CHX, arguments={"hash-property": "app_id"}),
        406, "PRECONDITION_FAILED - Unsupported property: app_id")


def test_header_and_property_exclusive_406(ch):
    args = {"hash-header": "h", "hash-property": "message_id"}
    channel_error(
        ch, lambda: ch.exchange_declare(uid("chx"), CHX, arguments=args), 406,
        "PRECONDITION_FAILED - hash-header and hash-property are mutually exclusive")
