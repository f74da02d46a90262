#!/usr/bin/env python3
"""Write the seed corpora for the frame and method fuzz targets.

The seeds are what a real client and broker exchange (connection
handshake, declares, publishes with content, deliveries, heartbeats) plus
a few deliberately broken inputs, so that libFuzzer starts from inputs
that already reach deep into the decoders.  They are built here, by hand
from the spec's field layouts, rather than by warren's own encoder, so a
bug in the encoder cannot hide in the corpus.

Usage: python3 tools/make_fuzz_corpus.py   (writes tests/fuzz/corpus/seed-*)

Standard library only; the output is deterministic.  Files named crash-*
(inputs the fuzzers once crashed on, kept as regressions) are left alone.
"""

import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FRAME_DIR = os.path.join(ROOT, "tests", "fuzz", "corpus", "frame")
METHOD_DIR = os.path.join(ROOT, "tests", "fuzz", "corpus", "method")


def octet(v):
    return struct.pack(">B", v)


def short(v):
    return struct.pack(">H", v)


def long_(v):
    return struct.pack(">I", v)


def longlong(v):
    return struct.pack(">Q", v)


def shortstr(s):
    if isinstance(s, str):
        s = s.encode()
    return octet(len(s)) + s


def longstr(s):
    if isinstance(s, str):
        s = s.encode()
    return long_(len(s)) + s


def bits(*flags):
    v = 0
    for i, f in enumerate(flags):
        if f:
            v |= 1 << i
    return octet(v)


# Field values, RabbitMQ's type octets.
def fv(kind, value=None):
    if kind == "t":
        return b"t" + octet(1 if value else 0)
    if kind == "b":
        return b"b" + struct.pack(">b", value)
    if kind == "B":
        return b"B" + octet(value)
    if kind == "s":
        return b"s" + struct.pack(">h", value)
    if kind == "u":
        return b"u" + short(value)
    if kind == "I":
        return b"I" + struct.pack(">i", value)
    if kind == "i":
        return b"i" + long_(value)
    if kind == "l":
        return b"l" + struct.pack(">q", value)
    if kind == "f":
        return b"f" + struct.pack(">f", value)
    if kind == "d":
        return b"d" + struct.pack(">d", value)
    if kind == "D":
        return b"D" + octet(value[0]) + long_(value[1])
    if kind == "S":
        return b"S" + longstr(value)
    if kind == "x":
        return b"x" + longstr(value)
    if kind == "T":
        return b"T" + longlong(value)
    if kind == "V":
        return b"V"
    if kind == "F":
        return b"F" + longstr(value)
    if kind == "A":
        return b"A" + longstr(b"".join(value))
    raise ValueError(kind)


def table_content(entries):
    return b"".join(shortstr(k) + v for k, v in entries)


def table(entries):
    return longstr(table_content(entries))


def method(class_id, method_id, args=b""):
    return short(class_id) + short(method_id) + args


def frame(ftype, channel, payload, end=0xCE):
    return octet(ftype) + short(channel) + long_(len(payload)) + payload + octet(end)


def content_header(body_size, flags, props=b"", class_id=60):
    return short(class_id) + short(0) + longlong(body_size) + short(flags) + props


CLIENT_PROPS = table(
    [
        ("product", fv("S", "pika")),
        ("version", fv("S", "1.3.2")),
        ("platform", fv("S", "Python 3.11")),
        (
            "capabilities",
            fv(
                "F",
                table_content(
                    [
                        ("publisher_confirms", fv("t", True)),
                        ("basic.nack", fv("t", True)),
                        ("consumer_cancel_notify", fv("t", True)),
                        ("connection.blocked", fv("t", True)),
                        ("authentication_failure_close", fv("t", True)),
                    ]
                ),
            ),
        ),
        ("information", fv("S", "See https://pika.readthedocs.io")),
    ]
)

EVERY_TYPE = table(
    [
        ("bool", fv("t", True)),
        ("i8", fv("b", -5)),
        ("u8", fv("B", 250)),
        ("i16", fv("s", -300)),
        ("u16", fv("u", 65000)),
        ("i32", fv("I", -70000)),
        ("u32", fv("i", 4000000000)),
        ("i64", fv("l", -(2**62))),
        ("float", fv("f", 1.5)),
        ("double", fv("d", -2.25)),
        ("dec", fv("D", (2, 12345))),
        ("str", fv("S", "hello")),
        ("bytes", fv("x", b"\x00\x01\xff")),
        ("ts", fv("T", 1700000000)),
        ("void", fv("V")),
        ("arr", fv("A", [fv("I", 1), fv("S", "two"), fv("F", b""), fv("A", [])])),
        ("nested", fv("F", table_content([("k", fv("S", "v"))]))),
    ]
)

QUEUE_ARGS = table(
    [
        ("x-message-ttl", fv("I", 60000)),
        ("x-dead-letter-exchange", fv("S", "dlx")),
        ("x-max-length", fv("l", 1000)),
        ("x-queue-type", fv("S", "classic")),
    ]
)


def deep_table(depth):
    """A table nested `depth` levels: {"a": {"a": ...}}."""
    inner = b""
    for _ in range(depth - 1):
        inner = shortstr("a") + b"F" + longstr(inner)
    return longstr(inner)


def method_payloads():
    """Method frame payloads, by seed name."""
    m = {}
    m["connection-start"] = method(
        10, 10,
        octet(0) + octet(9)
        + table([("product", fv("S", "RabbitMQ")), ("capabilities",
                 fv("F", table_content([("publisher_confirms", fv("t", True))])))])
        + longstr("PLAIN AMQPLAIN") + longstr("en_US"),
    )
    m["connection-start-ok"] = method(
        10, 11, CLIENT_PROPS + shortstr("PLAIN") + longstr(b"\0guest\0guest") + shortstr("en_US")
    )
    m["connection-tune"] = method(10, 30, short(2047) + long_(131072) + short(60))
    m["connection-tune-ok"] = method(10, 31, short(2047) + long_(131072) + short(60))
    m["connection-open"] = method(10, 40, shortstr("/") + shortstr("") + bits(False))
    m["connection-close"] = method(
        10, 50, short(320) + shortstr("CONNECTION_FORCED - shutdown") + short(0) + short(0)
    )
    m["connection-blocked"] = method(10, 60, shortstr("low on memory"))
    m["connection-update-secret"] = method(10, 70, longstr("new-token") + shortstr("refresh"))
    m["channel-open"] = method(20, 10, shortstr(""))
    m["channel-close"] = method(
        20, 40, short(404) + shortstr("NOT_FOUND - no queue 'q'") + short(50) + short(10)
    )
    m["exchange-declare"] = method(
        40, 10,
        short(0) + shortstr("logs") + shortstr("topic")
        + bits(False, True, False, False, False) + table([("alternate-exchange", fv("S", "ae"))]),
    )
    m["exchange-bind"] = method(
        40, 30, short(0) + shortstr("dst") + shortstr("src") + shortstr("a.#") + bits(False)
        + table([])
    )
    m["queue-declare"] = method(
        50, 10, short(0) + shortstr("orders") + bits(False, True, False, False, False) + QUEUE_ARGS
    )
    m["queue-declare-every-type"] = method(
        50, 10, short(0) + shortstr("") + bits(False, False, True, True, False) + EVERY_TYPE
    )
    m["queue-bind-headers"] = method(
        50, 20,
        short(0) + shortstr("q") + shortstr("amq.headers") + shortstr("") + bits(False)
        + table([("x-match", fv("S", "all")), ("format", fv("S", "pdf")), ("n", fv("B", 7))]),
    )
    m["basic-qos"] = method(60, 10, long_(0) + short(100) + bits(False))
    m["basic-consume"] = method(
        60, 20, short(0) + shortstr("orders") + shortstr("ctag-1")
        + bits(False, False, True, False) + table([("x-priority", fv("I", 5))])
    )
    m["basic-publish"] = method(
        60, 40, short(0) + shortstr("amq.topic") + shortstr("orders.created") + bits(True, False)
    )
    m["basic-deliver"] = method(
        60, 60, shortstr("amq.ctag-xyz") + longlong(42) + bits(True) + shortstr("")
        + shortstr("orders")
    )
    m["basic-ack-multiple"] = method(60, 80, longlong(2**40 + 3) + bits(True))
    m["basic-nack"] = method(60, 120, longlong(7) + bits(False, True))
    m["confirm-select"] = method(85, 10, bits(False))
    m["tx-commit"] = method(90, 20)
    return m


def write_dir(path, seeds):
    os.makedirs(path, exist_ok=True)
    for name in os.listdir(path):
        if name.startswith("seed-"):
            os.remove(os.path.join(path, name))
    for name, data in sorted(seeds.items()):
        with open(os.path.join(path, "seed-" + name), "wb") as f:
            f.write(data)


def main():
    mp = method_payloads()

    # Method target: payloads as they are, plus broken ones.
    methods = dict(mp)
    methods["bad-unknown-method"] = method(60, 99, b"\x01\x02")
    methods["bad-trailing-byte"] = mp["basic-publish"] + b"\x00"
    methods["bad-truncated-start-ok"] = mp["connection-start-ok"][:-3]
    methods["bad-table-type"] = method(
        50, 10, short(0) + shortstr("q") + bits() + longstr(shortstr("a") + b"Z")
    )
    methods["bad-deep-table"] = method(50, 10, short(0) + shortstr("q") + bits() + deep_table(150))
    methods["props-all"] = short(0xFFFC) + (
        shortstr("application/json") + shortstr("gzip") + table([("h", fv("S", "v"))])
        + octet(2) + octet(9) + shortstr("corr") + shortstr("reply") + shortstr("60000")
        + shortstr("id-1") + longlong(1700000000) + shortstr("t") + shortstr("guest")
        + shortstr("app") + shortstr("cluster")
    )
    write_dir(METHOD_DIR, methods)

    # Frame target: whole frames and short conversations.
    body = b"hello, warren"
    publish_conv = (
        frame(1, 1, mp["basic-publish"])
        + frame(2, 1, content_header(len(body), 0x9000, shortstr("text/plain") + octet(2)))
        + frame(3, 1, body)
    )
    frames = {}
    frames["handshake"] = (
        frame(1, 0, mp["connection-start-ok"])
        + frame(1, 0, mp["connection-tune-ok"])
        + frame(1, 0, mp["connection-open"])
        + frame(1, 1, mp["channel-open"])
    )
    frames["publish-with-content"] = publish_conv
    frames["declare-bind-consume"] = (
        frame(1, 1, mp["exchange-declare"])
        + frame(1, 1, mp["queue-declare"])
        + frame(1, 1, mp["queue-bind-headers"])
        + frame(1, 1, mp["basic-qos"])
        + frame(1, 1, mp["basic-consume"])
    )
    frames["deliver"] = (
        frame(1, 1, mp["basic-deliver"])
        + frame(2, 1, content_header(0, 0))
        + frame(1, 1, mp["basic-ack-multiple"])
    )
    frames["header-all-props"] = frame(2, 1, short(60) + short(0) + longlong(5)
                                       + methods["props-all"])
    frames["header-headers-every-type"] = frame(
        2, 1, content_header(3, 0x2000, EVERY_TYPE)
    ) + frame(3, 1, b"abc")
    frames["heartbeat"] = frame(8, 0, b"")
    frames["heartbeats-and-close"] = (
        frame(8, 0, b"") + frame(8, 0, b"") + frame(1, 0, mp["connection-close"])
    )
    frames["confirm-tx"] = (
        frame(1, 2, mp["confirm-select"]) + frame(1, 3, mp["tx-commit"])
        + frame(1, 2, mp["basic-nack"])
    )
    frames["blocked-unblocked"] = frame(1, 0, mp["connection-blocked"]) + frame(1, 0, method(10, 61))
    frames["start-tune"] = frame(1, 0, mp["connection-start"]) + frame(1, 0, mp["connection-tune"])
    frames["empty-body"] = frame(3, 1, b"")
    frames["bad-end-octet"] = frame(1, 0, mp["connection-tune-ok"], end=0xCD)
    frames["bad-type"] = frame(4, 0, b"xx")
    frames["bad-oversized"] = octet(3) + short(1) + long_(0xFFFFFFFF) + b"partial"
    frames["bad-protocol-header"] = b"AMQP\x00\x00\x09\x01"
    frames["bad-partial-frame"] = publish_conv[:-5]
    frames["bad-method-unknown"] = frame(1, 1, methods["bad-unknown-method"])
    frames["bad-header-continuation"] = frame(2, 1, content_header(1, 0x0001, b""))
    frames["bad-header-deep-table"] = frame(2, 1, content_header(1, 0x2000, deep_table(200)))
    frames["bad-method-trailing"] = frame(1, 1, methods["bad-trailing-byte"])
    write_dir(FRAME_DIR, frames)
    print("wrote %d method seeds, %d frame seeds" % (len(methods), len(frames)))


if __name__ == "__main__":
    main()
