"""Single active consumer (x-single-active-consumer): only one consumer
gets messages, the first registered; when it goes, the next one takes
over, in order, with nothing lost."""
import time

from helpers import uid


def wait(conn, pred, timeout=3):
    deadline = time.monotonic() + timeout
    while not pred() and time.monotonic() < deadline:
        conn.process_data_events(0.05)
    return pred()


def test_only_first_consumer_gets_messages_then_next_takes_over(connect):
    c = connect()
    setup = c.channel()
    q = uid("sac")
    setup.queue_declare(q, arguments={"x-single-active-consumer": True})
    cha, chb = c.channel(), c.channel()
    a, b = [], []
    cha.basic_consume(q, lambda c_, m, p, body: a.append((m.delivery_tag, body)))
    chb.basic_consume(q, lambda c_, m, p, body: b.append((m.delivery_tag, body)))
    setup.confirm_delivery()
    for i in range(5):
        setup.basic_publish("", q, b"%d" % i)
    assert wait(c, lambda: len(a) == 5)
    c.process_data_events(0.3)
    assert [x for _t, x in a] == [b"0", b"1", b"2", b"3", b"4"] and b == []
    cha.basic_ack(a[1][0])
    # The active consumer's channel closes with deliveries out: they go
    # back in order, and the next consumer takes over.
    cha.close()
    setup.basic_publish("", q, b"5")
    assert wait(c, lambda: len(b) == 5)
    assert [x for _t, x in b] == [b"0", b"2", b"3", b"4", b"5"]
    setup.queue_delete(q)
