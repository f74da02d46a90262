"""Resource alarms (warren only: needs special configuration): with the
memory or disk limit crossed, clients get connection.blocked and publishers
stop being read; consumers keep working; when the resource recovers,
connection.unblocked follows."""
import pika
import pytest

from helpers import uid


def wait_for(conn, pred, timeout=5.0):
    import time
    deadline = time.monotonic() + timeout
    while not pred() and time.monotonic() < deadline:
        conn.process_data_events(0.05)
    return pred()


def test_disk_alarm_blocks_publishers_and_consumers_still_work(start_broker):
    # A limit no disk can meet: the alarm is raised at the first check.
    b = start_broker(config_text="disk_free_limit.absolute = 1000000GB\n")
    events = []
    watcher = b.connect()
    watcher.add_on_connection_blocked_callback(
        lambda c, m: events.append(m.method.reason))
    assert wait_for(watcher, lambda: events, timeout=5)
    assert events[0] == "low on disk"
    # A publisher is no longer read once it publishes: its next request
    # gets no answer while the alarm lasts.
    pub = b.raw(timeout=10)
    pub.handshake()
    pub.open_channel(1)
    q = pub.rpc(1, "queue.declare", 0, uid("held"), False, False, False, False, False,
                {}).args[0]
    pub.publish(1, "", q, b"held")
    pub.send_method(1, "queue.declare", 0, q, True, False, False, False, False, {})
    with pytest.raises(OSError):
        pub.read_method(timeout=2)
    # A connection that does not publish keeps working (consumers drain
    # queues while publishers wait), and is not dropped for heartbeats.
    cons = b.connect()
    ch = cons.channel()
    assert ch.queue_declare(q, passive=True).method.message_count == 1
    m, _p, body = ch.basic_get(q, auto_ack=True)
    assert body == b"held"
    ch.queue_delete(q)


def test_memory_alarm_blocks_then_unblocks(start_broker):
    b = start_broker(config_text="vm_memory_high_watermark.absolute = 100000\n")
    events = []
    c = b.connect()
    c.add_on_connection_blocked_callback(lambda conn, m: events.append("blocked"))
    c.add_on_connection_unblocked_callback(lambda conn, m: events.append("unblocked"))
    ch = c.channel()
    q = ch.queue_declare(uid("mem"), auto_delete=True).method.queue
    ch.basic_publish("", q, b"x" * 200000)
    assert wait_for(c, lambda: "blocked" in events)
    # Draining from another connection frees the memory and clears it.
    other = b.connect().channel()
    m, _p, body = other.basic_get(q, auto_ack=True)
    assert body == b"x" * 200000
    assert wait_for(c, lambda: "unblocked" in events)
    assert events == ["blocked", "unblocked"]
