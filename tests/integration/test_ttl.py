"""Message expiry anywhere in the queue, not only at its head.

RabbitMQ expires a message with a per-message TTL only once it reaches the
head of the queue; warren keeps a heap of deadlines per queue and expires
each message on time wherever it is (dead-lettered with reason "expired"),
so a short-lived message behind a long-lived one does not linger, is never
delivered, and does not count in message_count.  These tests need that
behaviour and skip against an external broker (RabbitMQ does not have it).
"""

import os
import random
import struct
import threading
import time

import pika
import pytest

import rawamqp
from helpers import pump, uid, wait_until

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("AMQP_URL")),
    reason="expiry behind the head is a warren extension")


def setup_dlx(ch):
    """A queue whose DLX is a fanout exchange bound to a dead-letter queue;
    returns (queue, dead-letter queue)."""
    dlx, dlq, q = uid("dlx"), uid("dlq"), uid("q")
    ch.exchange_declare(dlx, "fanout", auto_delete=True)
    ch.queue_declare(dlq, auto_delete=False)
    ch.queue_bind(dlq, dlx)
    return q, dlq, dlx


def declare(ch, q, dlx, **args):
    a = {"x-dead-letter-exchange": dlx}
    a.update(args)
    return ch.queue_declare(q, arguments=a)


def ttl_props(ms, **kw):
    return pika.BasicProperties(expiration=str(ms), **kw)


def wait_dead(ch, dlq, timeout=3.0):
    """Polls dlq until a message arrives; (time it arrived, props, body)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m, p, body = ch.basic_get(dlq, auto_ack=True)
        if m is not None:
            return time.monotonic(), p, body
        time.sleep(0.005)
    return None, None, None


def count(ch, q):
    return ch.queue_declare(q, passive=True).method.message_count


def test_short_ttl_behind_long_is_dead_lettered_on_time(ch):
    q, dlq, dlx = setup_dlx(ch)
    declare(ch, q, dlx)
    ch.basic_publish("", q, b"long", ttl_props(60000))
    t0 = time.monotonic()
    ch.basic_publish("", q, b"short", ttl_props(100))
    assert count(ch, q) == 2
    t, p, body = wait_dead(ch, dlq)
    assert body == b"short"
    took = t - t0
    assert 0.08 <= took <= 0.4, took
    xd = p.headers["x-death"][0]
    assert xd["reason"] == "expired"
    assert xd["queue"] == q
    assert xd["original-expiration"] == "100"
    assert p.headers["x-first-death-reason"] == "expired"
    assert p.expiration is None
    # The long one stays, and is the only one counted and delivered.
    assert count(ch, q) == 1
    m, _, body = ch.basic_get(q, auto_ack=True)
    assert body == b"long"
    assert count(ch, q) == 0
    m, _, _ = ch.basic_get(dlq, auto_ack=True)
    assert m is None


def test_many_interleaved_expire_and_counts_drop(ch):
    q, dlq, dlx = setup_dlx(ch)
    declare(ch, q, dlx)
    for i in range(20):
        ttl = 150 if i % 2 else 60000
        ch.basic_publish("", q, str(i).encode(), ttl_props(ttl))
    assert count(ch, q) == 20
    assert wait_until(lambda: count(ch, q) == 10, timeout=2.0)
    dead = []
    assert wait_until(lambda: dead.extend(_drain(ch, dlq)) or len(dead) == 10, timeout=2.0)
    assert sorted(int(b) for b in dead) == list(range(1, 20, 2))
    assert _drain(ch, q) == [str(i).encode() for i in range(0, 20, 2)]


def _drain(ch, q):
    out = []
    while True:
        m, _, body = ch.basic_get(q, auto_ack=True)
        if m is None:
            return out
        out.append(body)


def test_expired_never_delivered_to_late_consumer(conn):
    ch = conn.channel()
    q = uid("q")
    ch.queue_declare(q)  # no DLX: expired messages are dropped
    ch.basic_publish("", q, b"a", ttl_props(60000))
    ch.basic_publish("", q, b"b", ttl_props(100))
    ch.basic_publish("", q, b"c")
    ch.basic_publish("", q, b"d", ttl_props(120))
    ch.basic_publish("", q, b"e", ttl_props(60000))
    time.sleep(0.4)
    assert count(ch, q) == 3
    got = []
    ch.basic_consume(q, lambda c, m, p, b: got.append(b), auto_ack=True)
    pump(conn, lambda: len(got) >= 3, timeout=2.0)
    pump(conn, lambda: False, timeout=0.2)
    assert got == [b"a", b"c", b"e"]


def test_queue_ttl_and_message_ttl_take_the_minimum(ch):
    q, dlq, dlx = setup_dlx(ch)
    declare(ch, q, dlx, **{"x-message-ttl": 150})
    ch.basic_publish("", q, b"long", ttl_props(60000))   # queue TTL wins
    ch.basic_publish("", q, b"short", ttl_props(50))     # message TTL wins
    t0 = time.monotonic()
    t, _, body = wait_dead(ch, dlq)
    assert body == b"short" and t - t0 < 0.12, t - t0
    t, _, body = wait_dead(ch, dlq)
    assert body == b"long" and 0.12 <= t - t0 < 0.4, t - t0
    assert count(ch, q) == 0


def test_requeued_message_keeps_its_deadline(ch):
    q, dlq, dlx = setup_dlx(ch)
    declare(ch, q, dlx)
    t0 = time.monotonic()
    ch.basic_publish("", q, b"x", ttl_props(600))
    ch.basic_publish("", q, b"long", ttl_props(60000))
    m, _, body = ch.basic_get(q)
    assert body == b"x"
    time.sleep(0.4)
    ch.basic_nack(m.delivery_tag, requeue=True)
    assert count(ch, q) == 2
    t, p, body = wait_dead(ch, dlq)
    assert body == b"x"
    # Expired 600 ms after publishing, not 600 ms after the requeue.
    assert 0.55 <= t - t0 <= 0.85, t - t0
    assert p.headers["x-death"][0]["reason"] == "expired"
    assert count(ch, q) == 1


def test_requeued_after_deadline_expires_at_once(ch):
    q, dlq, dlx = setup_dlx(ch)
    declare(ch, q, dlx)
    ch.basic_publish("", q, b"x", ttl_props(100))
    m, _, body = ch.basic_get(q)
    assert body == b"x"
    time.sleep(0.3)  # the deadline passes while the message is out
    ch.basic_nack(m.delivery_tag, requeue=True)
    t0 = time.monotonic()
    t, _, body = wait_dead(ch, dlq)
    assert body == b"x" and t - t0 < 0.2
    assert count(ch, q) == 0
    m, _, _ = ch.basic_get(q, auto_ack=True)
    assert m is None


def test_priority_queue_expires_behind_the_head(ch):
    q, dlq, dlx = setup_dlx(ch)
    declare(ch, q, dlx, **{"x-max-priority": 5})
    ch.basic_publish("", q, b"high-long", ttl_props(60000, priority=5))
    ch.basic_publish("", q, b"low-long", ttl_props(60000, priority=0))
    t0 = time.monotonic()
    ch.basic_publish("", q, b"mid-short", ttl_props(100, priority=2))
    t, _, body = wait_dead(ch, dlq)
    assert body == b"mid-short" and 0.08 <= t - t0 <= 0.4, t - t0
    assert count(ch, q) == 2
    assert _drain(ch, q) == [b"high-long", b"low-long"]


def test_purge_and_delivery_leave_no_stale_expiry(ch):
    q, dlq, dlx = setup_dlx(ch)
    declare(ch, q, dlx)
    for i in range(10):
        ch.basic_publish("", q, b"p%d" % i, ttl_props(150))
    ch.queue_purge(q)
    ch.basic_publish("", q, b"d", ttl_props(150))
    m, _, body = ch.basic_get(q, auto_ack=True)
    assert body == b"d"
    ch.basic_publish("", q, b"late", ttl_props(60000))
    time.sleep(0.4)
    # Nothing was dead-lettered by the leftovers of purged and delivered
    # messages, and the live one is intact.
    m, _, _ = ch.basic_get(dlq, auto_ack=True)
    assert m is None
    assert count(ch, q) == 1


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the whole line.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(xs, p):
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def test_100k_random_ttls_expire_on_time_with_flat_cpu(broker, connect, raw):
    if broker.proc is None:
        pytest.skip("needs the broker's pid")
    n = 100000
    setup = connect()
    ch = setup.channel()
    q, dlq, dlx = setup_dlx(ch)
    declare(ch, q, dlx)

    # The dead-letter queue is read from a raw socket in a thread: pika
    # would add more lag of its own than the broker's expiry takes.
    received = []  # (time.time() when read, body)
    cons = raw(timeout=10.0)
    cons.handshake()
    cons.open_channel(1)
    cons.rpc(1, "basic.consume", 0, dlq, "", False, True, False, False, {})

    def consume():
        buf = bytearray(cons.buf)
        cons.sock.settimeout(30)
        while len(received) < n:
            chunk = cons.sock.recv(1 << 20)
            if not chunk:
                return
            t = time.time()
            buf += chunk
            off = 0
            while len(buf) - off >= 8:
                ftype, _, size = struct.unpack_from(">BHI", buf, off)
                if len(buf) - off < size + 8:
                    break
                if ftype == 3:
                    received.append((t, bytes(buf[off + 7:off + 7 + size])))
                off += size + 8
            del buf[:off]

    th = threading.Thread(target=consume, daemon=True)
    th.start()

    r = raw(timeout=10.0)
    r.handshake()
    r.open_channel(1)
    rng = random.Random(12345)
    pid = broker.proc.pid
    cpu0 = cpu_seconds(pid)
    batch = 2000
    t_pub = time.time()
    sent_at = []  # per batch: time.time() just before it was sent
    for start in range(0, n, batch):
        frames = []
        for i in range(start, start + batch):
            ttl = rng.randint(100, 2000)
            body = struct.pack(">II", i, ttl)
            exp = rawamqp.shortstr(str(ttl))
            frames.append(rawamqp.method_frame(1, "basic.publish", 0, "", q, False, False))
            frames.append(rawamqp.header_frame(1, len(body), flags=1 << 8, props=exp))
            frames.append(rawamqp.body_frame(1, body))
        data = b"".join(frames)
        sent_at.append(time.time())
        r.send(data)
    t_pubd = time.time() - t_pub
    th.join(timeout=60)
    cpu = cpu_seconds(pid) - cpu0
    assert len(received) == n, len(received)
    late, ids = [], set()
    for t, b in received:
        i, ttl = struct.unpack(">II", b)
        ids.add(i)
        late.append((t - sent_at[i // batch]) * 1000.0 - ttl)
    late.sort()
    assert len(ids) == n
    p50, p99, mx, mn = pct(late, 0.5), pct(late, 0.99), late[-1], late[0]
    report = ("100k expiries: publish %.2fs, lateness ms min %.1f p50 %.1f p99 %.1f max %.1f,"
              " broker CPU %.2fs" % (t_pubd, mn, p50, p99, mx, cpu))
    print(report)
    with open(os.environ.get("WARREN_TTL_REPORT", "/dev/null"), "a") as f:
        f.write(report + "\n")
    # Never early (the client stamps its deadline before the broker sees the
    # message), and on time: the bounds are generous for a loaded test
    # machine (the reader shares the Python process with the publisher).
    assert mn > -5.0, report
    # Under the sanitizer build (scripts/test.sh sets ASAN_OPTIONS) warren
    # runs several times slower: the timing bounds are for normal builds.
    if not os.environ.get("ASAN_OPTIONS"):
        assert p50 < 100.0, report
        assert p99 < 300.0, report
        assert mx < 1000.0, report
    # Publishing, expiring, dead-lettering and delivering 100k messages:
    # an O(n) scan per expiry would take minutes.  The sanitizer build
    # needs about 5 s on a loaded machine (5.38 s seen in CI rehearsal).
    assert cpu < (15.0 if os.environ.get("ASAN_OPTIONS") else 5.0), report
    assert count(ch, q) == 0
    setup.close()
