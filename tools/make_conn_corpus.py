#!/usr/bin/env python3
"""Records real client sessions as seeds for the connection fuzzer.

Usage: make_conn_corpus.py AMQP_PORT OUTDIR

Runs a few pika scripts against a broker on 127.0.0.1:AMQP_PORT through a
recording TCP proxy and writes what each client sent, in the fuzz_conn input
format: one chunk-size byte, then the bytes after the 8-byte protocol header.
Needs Debian's python3-pika (run with /usr/bin/python3).
"""
import os
import socket
import sys
import threading

import pika


def proxy(port, record):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def run():
        c, _ = srv.accept()
        u = socket.create_connection(("127.0.0.1", port))

        def pump(a, b, rec):
            while True:
                try:
                    d = a.recv(65536)
                except OSError:
                    d = b""
                if not d:
                    try:
                        b.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    return
                if rec is not None:
                    rec.append(d)
                b.sendall(d)

        t = threading.Thread(target=pump, args=(u, c, None), daemon=True)
        t.start()
        pump(c, u, record)
        t.join(2)
        c.close()
        u.close()
        srv.close()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return srv.getsockname()[1], th


def session(port, fn):
    rec = []
    p, th = proxy(port, rec)
    conn = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", p))
    ch = conn.channel()
    try:
        fn(conn, ch)
    except Exception:
        pass
    try:
        conn.close()
    except Exception:
        pass
    th.join(3)
    return b"".join(rec)


def s_hello(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"hello", pika.BasicProperties(content_type="text/plain"))
    ch.basic_get(q, auto_ack=True)


def s_exchanges(conn, ch):
    for t in ("direct", "fanout", "topic", "headers"):
        ch.exchange_declare("fx." + t, t, auto_delete=True)
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(q, "fx." + t, "a.*.c" if t == "topic" else "k",
                      arguments={"x-match": "any", "h": 1} if t == "headers" else None)
        ch.basic_publish("fx." + t, "a.b.c", b"x", pika.BasicProperties(headers={"h": 1}))
    ch.exchange_bind("fx.direct", "fx.fanout", "k")
    ch.exchange_delete("fx.direct")


def s_confirm(conn, ch):
    ch.confirm_delivery()
    q = ch.queue_declare("fq", durable=True, arguments={"x-max-length": 2, "x-message-ttl": 1000,
                                                         "x-dead-letter-exchange": "amq.fanout"}).method.queue
    for i in range(5):
        ch.basic_publish("", q, b"m%d" % i, pika.BasicProperties(delivery_mode=2, expiration="500",
                         headers={"n": i, "l": [1, "a"], "t": {"x": True}}), mandatory=True)
    ch.basic_publish("", "nowhere", b"r", mandatory=True)
    ch.queue_delete(q)


def s_consume(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_qos(prefetch_count=2)
    for i in range(4):
        ch.basic_publish("", q, b"c%d" % i)
    n = [0]

    def cb(c, m, p, b):
        n[0] += 1
        if n[0] == 1:
            c.basic_nack(m.delivery_tag, requeue=True)
        elif n[0] == 2:
            c.basic_reject(m.delivery_tag, requeue=False)
        else:
            c.basic_ack(m.delivery_tag, multiple=True)
    tag = ch.basic_consume(q, cb)
    conn.process_data_events(0.3)
    ch.basic_cancel(tag)
    ch.basic_recover(requeue=True)


def s_tx_errors(conn, ch):
    ch.tx_select()
    ch.basic_publish("", "txq", b"t")
    ch.tx_rollback()
    ch.tx_commit()
    ch2 = conn.channel()
    ch2.queue_declare("missing-q", passive=True)


def s_big(conn, ch):
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"z" * 20000)
    ch.basic_get(q, auto_ack=False)
    ch.queue_purge(q)


def main():
    port = int(sys.argv[1])
    out = sys.argv[2]
    os.makedirs(out, exist_ok=True)
    for name, fn in [("hello", s_hello), ("exchanges", s_exchanges), ("confirm", s_confirm),
                     ("consume", s_consume), ("tx_errors", s_tx_errors), ("big", s_big)]:
        data = session(port, fn)
        assert data[:8] == b"AMQP\x00\x00\x09\x01", name
        body = data[8:]
        for chunk, suffix in ((255, ""), (3, "-split")):
            with open(os.path.join(out, name + suffix), "wb") as f:
                f.write(bytes([chunk]) + body)
    with open(os.path.join(out, "bad-header"), "wb") as f:
        f.write(b"HAMQP\x01\x01\x00\x09")


if __name__ == "__main__":
    main()
