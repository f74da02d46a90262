"""Dead-letter replay and queue moves survive kill -9 (issue 11): a
durable message being replayed is never lost; at worst it is in both the
dead-letter queue and its target after the crash (at-least-once).

Each round fills a durable dead-letter queue with confirmed persistent
messages, starts a replay over the HTTP API, kills warren with SIGKILL
after a delay that grows from round to round (so the kill lands before,
during and after the copies are written and synced), restarts it on the
same data directory and checks that every message id is still there."""
import base64
import http.client
import json
import threading
import time

import pika
import pytest

from conftest import free_port, start_warren
from helpers import uid

N = 3000
DELAYS = [0.0, 0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, None]  # None: no kill, a clean stop


def post(port, path, body, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    auth = base64.b64encode(b"guest:guest").decode()
    c.request("POST", path, body=json.dumps(body),
              headers={"Authorization": "Basic " + auth, "Content-Type": "application/json"})
    r = c.getresponse()
    return r.status, r.read()


def ids_in(ch, q):
    got = []
    while True:
        m, p, _b = ch.basic_get(q, auto_ack=True)
        if m is None:
            return got
        got.append(p.message_id)


@pytest.mark.parametrize("delay", DELAYS)
def test_replay_survives_kill(broker, delay):
    if broker.external:
        pytest.skip("kills its own warren")
    mport, port = free_port(), free_port()
    b = start_warren(port=port, **{"management.tcp.port": mport})
    data_dir = b.data_dir
    dlq, target = uid("dlq"), uid("back")
    move = DELAYS.index(delay) % 2 == 1  # every other round moves instead
    try:
        c = b.connect()
        ch = c.channel()
        ch.confirm_delivery()
        ch.queue_declare(dlq, durable=True)
        ch.queue_declare(target, durable=True)
        body = b"x" * 512
        for i in range(N):
            ch.basic_publish("", dlq, body, pika.BasicProperties(
                delivery_mode=2, message_id=str(i),
                headers={"x-first-death-queue": target, "x-first-death-reason": "rejected",
                         "x-first-death-exchange": ""}))
        c.close()
        path = "/api/queues/%%2F/%s/%s" % (dlq, "move" if move else "replay")
        req = {"destination": target} if move else {}
        result = {}
        def call():
            try:
                result["r"] = post(mport, path, req)
            except OSError as e:  # killed under the request
                result["r"] = (0, str(e))
        t = threading.Thread(target=call, daemon=True)
        t.start()
        if delay is None:
            t.join(30)
            assert result["r"][0] == 200, result
            b.stop()
        else:
            time.sleep(delay)
            b.kill()
            t.join(5)
    finally:
        if b.proc is not None:
            b.kill()
    b2 = start_warren(data_dir=data_dir, port=port)
    try:
        c = b2.connect()
        ch = c.channel()
        left, moved = ids_in(ch, dlq), ids_in(ch, target)
        c.close()
    finally:
        b2.stop()
    everything = set(left) | set(moved)
    print("delay %s %s: %d left, %d in target, %d in both" % (
        delay, "move" if move else "replay", len(left), len(moved),
        len(set(left) & set(moved))))
    lost = set(str(i) for i in range(N)) - everything
    assert not lost, "%d messages lost (delay %s): %s" % (len(lost), delay, sorted(lost)[:10])
    # Each queue holds each message at most once; a message may be in both.
    assert len(left) == len(set(left)) and len(moved) == len(set(moved))
    if delay is None:
        assert (len(left), len(moved)) == (0, N)
