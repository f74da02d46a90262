"""Publisher confirms and transactions, plus the consumer ack timeout."""

import os
import time

import pika
import pika.exceptions
import pytest

import rawamqp
from conftest import Broker
from helpers import channel_error, get_all, raw_queue, uid, wait_until


def read_acks(c, upto, channel=1, timeout=10):
    """Read basic.ack/nack frames until every tag 1..upto is covered.
    Returns (acked set, nacked set, frames)."""
    acked, nacked, frames = set(), set(), []
    last = 0
    deadline = time.monotonic() + timeout
    while len(acked | nacked) < upto:
        f = c.read_method(timeout=max(0.1, deadline - time.monotonic()))
        assert f.channel == channel and f.name in ("basic.ack", "basic.nack"), f
        frames.append(f)
        tag, multiple = f.args[0], f.args[1]
        assert tag > last, "confirm tags must increase: %r after %d" % (f, last)
        tags = set(range(1, tag + 1)) - acked - nacked if multiple else {tag}
        assert tags, f
        (acked if f.name == "basic.ack" else nacked).update(tags)
        last = tag
    return acked, nacked, frames


# ---------------------------------------------------------------------------
# Confirms
# ---------------------------------------------------------------------------

def test_confirm_select_ok(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    f = c.rpc(1, "confirm.select", False)
    assert f.name == "confirm.select-ok"
    # selecting twice is fine
    c.rpc(1, "confirm.select", False)


def test_confirm_acks_cover_every_tag(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    q = raw_queue(c)
    c.rpc(1, "confirm.select", False)
    n = 500
    data = b""
    for i in range(n):
        data += rawamqp.method_frame(1, "basic.publish", 0, "", q, False, False)
        data += rawamqp.header_frame(1, 3) + rawamqp.body_frame(1, b"%03d" % (i % 1000))
    c.send(data)
    acked, nacked, frames = read_acks(c, n)
    assert acked == set(range(1, n + 1)) and not nacked
    f = c.rpc(1, "queue.declare", 0, q, True, False, False, False, False, {})
    assert f.args[1] == n


def test_confirm_unroutable_is_acked(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    c.rpc(1, "confirm.select", False)
    c.publish(1, "amq.direct", uid("nobody"), b"x")
    acked, nacked, _ = read_acks(c, 1)
    assert acked == {1}


def test_confirm_nowait(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    q = raw_queue(c)
    c.send_method(1, "confirm.select", True)
    c.publish(1, "", q, b"x")
    acked, _, _ = read_acks(c, 1)
    assert acked == {1}


def test_confirm_tags_count_per_channel(raw):
    c = raw()
    c.handshake()
    q = None
    for ch in (1, 2):
        c.open_channel(ch)
        c.rpc(ch, "confirm.select", False)
        if q is None:
            q = raw_queue(c, ch)
    c.publish(1, "", q, b"a")
    c.publish(1, "", q, b"b")
    acked1, _, _ = read_acks(c, 2, channel=1)
    c.publish(2, "", q, b"c")
    acked2, _, _ = read_acks(c, 1, channel=2)
    assert acked1 == {1, 2} and acked2 == {1}


def test_confirm_with_pika_and_mandatory(conn):
    ch = conn.channel()
    ch.confirm_delivery()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"ok", mandatory=True)
    with pytest.raises(pika.exceptions.UnroutableError) as ei:
        ch.basic_publish("amq.direct", uid("none"), b"nope", mandatory=True)
    msgs = ei.value.messages
    assert len(msgs) == 1 and msgs[0].body == b"nope"
    assert msgs[0].method.reply_code == 312


def test_confirm_nack_on_reject_publish_overflow(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    q = uid("full")
    c.rpc(1, "queue.declare", 0, q, False, False, True, True, False,
          {"x-max-length": 1, "x-overflow": "reject-publish"})
    c.rpc(1, "confirm.select", False)
    c.publish(1, "", q, b"first")
    c.publish(1, "", q, b"second")
    acked, nacked, _ = read_acks(c, 2)
    assert acked == {1} and nacked == {2}
    f = c.rpc(1, "queue.declare", 0, q, True, False, False, False, False, {})
    assert f.args[1] == 1


def test_confirm_select_on_tx_channel_is_406(ch):
    ch.tx_select()
    channel_error(ch, lambda: ch.confirm_delivery(), 406,
                  "PRECONDITION_FAILED - cannot switch from tx to confirm mode")


def test_tx_select_on_confirm_channel_is_406(ch):
    ch.confirm_delivery()
    channel_error(ch, lambda: ch.tx_select(), 406,
                  "PRECONDITION_FAILED - cannot switch from confirm to tx mode")


# ---------------------------------------------------------------------------
# Transactions
# ---------------------------------------------------------------------------

def test_tx_publish_invisible_until_commit(connect):
    c = connect()
    ch = c.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.tx_select()
    ch.basic_publish("", q, b"t1")
    ch.basic_publish("", q, b"t2")
    obs = c.channel()
    time.sleep(0.1)
    assert obs.queue_declare(q, passive=True).method.message_count == 0
    assert obs.basic_get(q)[0] is None
    ch.tx_commit()
    got = get_all(obs, q, auto_ack=True)
    assert [b for _, b in got] == ["t1", "t2"]


def test_tx_rollback_discards_publishes(conn):
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.tx_select()
    ch.basic_publish("", q, b"gone")
    ch.tx_rollback()
    ch.basic_publish("", q, b"kept")
    ch.tx_commit()
    got = get_all(conn.channel(), q, auto_ack=True)
    assert [b for _, b in got] == ["kept"]


def test_tx_acks_applied_at_commit(connect):
    c = connect()
    ch = c.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.confirm_delivery()
    for i in range(3):
        ch.basic_publish("", q, b"%d" % i)
    tx = c.channel()
    tx.tx_select()
    ms = [m for m, _ in get_all(tx, q)]
    tx.basic_ack(ms[0].delivery_tag)
    tx.basic_ack(ms[1].delivery_tag)
    # Not yet committed: closing another view shows nothing changed;
    # a rollback forgets the acks but the messages stay unacked.
    tx.tx_rollback()
    tx.basic_ack(ms[2].delivery_tag)
    tx.tx_commit()
    tx.close()
    # ms[0] and ms[1] were never acked (rolled back): requeued on close
    got = []
    assert wait_until(lambda: got.extend(get_all(ch, q, auto_ack=True)) or len(got) >= 2)
    assert [(b, m.redelivered) for m, b in got] == [("0", True), ("1", True)]


def test_tx_ack_not_applied_before_commit(connect):
    c = connect()
    ch = c.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.confirm_delivery()
    ch.basic_publish("", q, b"only")
    tx = c.channel()
    tx.tx_select()
    m, _, _ = tx.basic_get(q)
    tx.basic_ack(m.delivery_tag)
    tx.close()  # channel closes without commit: the ack never happened
    got = []
    assert wait_until(lambda: got.extend(get_all(ch, q, auto_ack=True)) or got)
    assert [(b, m.redelivered) for m, b in got] == [("only", True)]


def test_tx_commit_ack_then_close_does_not_requeue(connect):
    c = connect()
    ch = c.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.confirm_delivery()
    ch.basic_publish("", q, b"only")
    tx = c.channel()
    tx.tx_select()
    m, _, _ = tx.basic_get(q)
    tx.basic_ack(m.delivery_tag)
    tx.tx_commit()
    tx.close()
    time.sleep(0.2)
    assert ch.queue_declare(q, passive=True).method.message_count == 0


def test_tx_commit_empty_ok(ch):
    ch.tx_select()
    ch.tx_commit()
    ch.tx_rollback()
    ch.tx_commit()


def test_tx_commit_without_select_is_406(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    c.send_method(1, "tx.commit")
    f = c.wait_channel_close(1)
    assert f.args == [406, "PRECONDITION_FAILED - channel is not transactional", 90, 20]


def test_tx_rollback_without_select_is_406(raw):
    c = raw()
    c.handshake()
    c.open_channel(1)
    c.send_method(1, "tx.rollback")
    f = c.wait_channel_close(1)
    assert f.args == [406, "PRECONDITION_FAILED - channel is not transactional", 90, 30]


def test_tx_commit_without_select_pika(ch):
    channel_error(ch, lambda: ch.tx_commit(), 406,
                  "PRECONDITION_FAILED - channel is not transactional")


def test_tx_mandatory_return_at_commit(raw):
    """In a transaction, basic.return for an unroutable mandatory message is
    sent when the transaction commits, before commit-ok."""
    c = raw()
    c.handshake()
    c.open_channel(1)
    c.rpc(1, "tx.select")
    c.publish(1, "amq.direct", uid("nobody"), b"ret", mandatory=True)
    c.send_method(1, "tx.commit")
    f = c.read_method()
    assert f.name == "basic.return", f
    assert f.args[:2] == [312, "NO_ROUTE"]
    c.read_content()
    c.expect("tx.commit-ok", 1)


# ---------------------------------------------------------------------------
# Consumer ack timeout
# ---------------------------------------------------------------------------

@pytest.fixture
def timeout_broker(start_broker):
    url = os.environ.get("AMQP_CONSUMER_TIMEOUT_URL")
    if url:
        return Broker(url)
    if os.environ.get("AMQP_URL"):
        pytest.skip("consumer timeout needs a broker with consumer_timeout = 3000; "
                    "set AMQP_CONSUMER_TIMEOUT_URL")
    return start_broker(config_text="consumer_timeout = 3000\n")


@pytest.mark.parametrize("qtype", ["classic", "quorum"])
def test_consumer_timeout_closes_channel_and_requeues(timeout_broker, qtype):
    """An unacked delivery older than consumer_timeout: the channel is closed
    with 406 PRECONDITION_FAILED and the message requeued (redelivered), for
    classic and quorum queues alike.  RabbitMQ checks on a periodic tick, so
    allow a generous bound."""
    b = timeout_broker
    c = b.raw(timeout=90)
    c.handshake()
    c.open_channel(1)
    q = uid("ct")
    quorum = qtype == "quorum"
    c.rpc(1, "queue.declare", 0, q, False, quorum, False, False, False,
          {"x-queue-type": "quorum"} if quorum else {})
    c.rpc(1, "basic.consume", 0, q, "slow", False, False, False, False, {})
    c.publish(1, "", q, b"slowpoke")
    f = c.expect("basic.deliver", 1)
    c.read_content()
    t0 = time.monotonic()
    f = c.wait_channel_close(1, timeout=90)
    elapsed = time.monotonic() - t0
    assert f.args[0] == 406
    assert f.args[1] == ("PRECONDITION_FAILED - delivery acknowledgement on channel 1 "
                         "timed out. Timeout value used: 3000 ms. This timeout value "
                         "can be configured, see consumers doc guide to learn more")
    assert (f.args[2], f.args[3]) == (0, 0)
    assert elapsed >= 2.5
    # the connection survives; the message is back, redelivered
    c.open_channel(2)
    c.send_method(2, "basic.get", 0, q, True)
    f = c.expect("basic.get-ok", 2)
    assert f.args[1] is True  # redelivered
    _h, body = c.read_content()
    assert body == b"slowpoke"
    c.rpc(2, "queue.delete", 0, q, False, False, False)


def test_consumer_timeout_not_hit_when_acking(timeout_broker):
    b = timeout_broker
    c = b.raw(timeout=30)
    c.handshake()
    c.open_channel(1)
    q = uid("ct")
    c.rpc(1, "queue.declare", 0, q, False, False, False, False, False, {})
    c.rpc(1, "basic.consume", 0, q, "fast", False, False, False, False, {})
    deadline = time.monotonic() + 5
    i = 0
    while time.monotonic() < deadline:
        c.publish(1, "", q, b"m")
        f = c.expect("basic.deliver", 1)
        c.read_content()
        time.sleep(0.5)
        c.send_method(1, "basic.ack", f.args[1], False)
        i += 1
    f = c.rpc(1, "queue.delete", 0, q, False, False, False)
    assert f.args == [0]
