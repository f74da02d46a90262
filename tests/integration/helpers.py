"""Small helpers shared by the integration tests (no fixtures here)."""

import time
import uuid

import pika.exceptions
import pytest


def uid(prefix="t"):
    """A unique name for a queue or exchange, so tests never share state."""
    return "%s-%s" % (prefix, uuid.uuid4().hex[:12])


def channel_error(ch, fn, code, text=None):
    """Run fn (which must fail on the channel), assert code and text."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        fn()
    assert ei.value.reply_code == code, ei.value
    if text is not None:
        assert ei.value.reply_text == text, ei.value
    return ei.value


def connection_error(fn, code, text_prefix=None):
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as ei:
        fn()
    assert ei.value.reply_code == code, ei.value
    if text_prefix is not None:
        assert ei.value.reply_text.startswith(text_prefix), ei.value
    return ei.value


def drain(ch, q, limit=100):
    """All bodies currently in q (auto-ack), as a list of str."""
    out = []
    for _ in range(limit):
        m, p, body = ch.basic_get(q, auto_ack=True)
        if m is None:
            break
        out.append(body.decode())
    return out


def get_all(ch, q, auto_ack=False):
    out = []
    while True:
        m, p, body = ch.basic_get(q, auto_ack=auto_ack)
        if m is None:
            return out
        out.append((m, body.decode()))


def wait_until(pred, timeout=5.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


def pump(conn, until, timeout=5.0):
    """Process pika events until until() is true or timeout; returns until()."""
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    return until()


def queue_exists(connect, q):
    ch = connect().channel()
    try:
        ch.queue_declare(q, passive=True)
        ch.close()
        return True
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code == 404
        return False


def raw_queue(c, ch=1):
    return c.rpc(ch, "queue.declare", 0, "", False, False, True, True, False,
                 {}).args[0]
