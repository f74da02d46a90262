"""A tiny hand-rolled AMQP 0-9-1 client for tests that need to misbehave.

pika refuses to send malformed frames, interleave content of several channels
or stop reading, so the bad-input tests use this module instead.  It encodes
and decodes only what the tests need: frames, the method arguments of the
methods listed in METHODS, field tables (every type RabbitMQ knows) and a
content header with raw property bytes.  Nothing here is clever: every read is
bounded by a socket timeout so a hung broker fails the test instead of the run.
"""

import decimal
import socket
import struct
import time

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_END = 0xCE

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8

# (class, method) -> (name, argument signature).  Signature letters:
#   o octet, s short, l long, L longlong, S shortstr, X longstr,
#   T field table, b bit (consecutive bits share octets).
METHODS = {
    (10, 10): ("connection.start", "ooTXX"),
    (10, 11): ("connection.start-ok", "TSXS"),
    (10, 20): ("connection.secure", "X"),
    (10, 21): ("connection.secure-ok", "X"),
    (10, 30): ("connection.tune", "sls"),
    (10, 31): ("connection.tune-ok", "sls"),
    (10, 40): ("connection.open", "SSb"),
    (10, 41): ("connection.open-ok", "S"),
    (10, 50): ("connection.close", "sSss"),
    (10, 51): ("connection.close-ok", ""),
    (10, 60): ("connection.blocked", "S"),
    (10, 61): ("connection.unblocked", ""),
    (10, 70): ("connection.update-secret", "XS"),
    (10, 71): ("connection.update-secret-ok", ""),
    (20, 10): ("channel.open", "S"),
    (20, 11): ("channel.open-ok", "X"),
    (20, 20): ("channel.flow", "b"),
    (20, 21): ("channel.flow-ok", "b"),
    (20, 40): ("channel.close", "sSss"),
    (20, 41): ("channel.close-ok", ""),
    (40, 10): ("exchange.declare", "sSSbbbbbT"),
    (40, 11): ("exchange.declare-ok", ""),
    (40, 20): ("exchange.delete", "sSbb"),
    (40, 21): ("exchange.delete-ok", ""),
    (40, 30): ("exchange.bind", "sSSSbT"),
    (40, 31): ("exchange.bind-ok", ""),
    (40, 40): ("exchange.unbind", "sSSSbT"),
    (40, 51): ("exchange.unbind-ok", ""),
    (50, 10): ("queue.declare", "sSbbbbbT"),
    (50, 11): ("queue.declare-ok", "Sll"),
    (50, 20): ("queue.bind", "sSSSbT"),
    (50, 21): ("queue.bind-ok", ""),
    (50, 30): ("queue.purge", "sSb"),
    (50, 31): ("queue.purge-ok", "l"),
    (50, 40): ("queue.delete", "sSbbb"),
    (50, 41): ("queue.delete-ok", "l"),
    (50, 50): ("queue.unbind", "sSSST"),
    (50, 51): ("queue.unbind-ok", ""),
    (60, 10): ("basic.qos", "lsb"),
    (60, 11): ("basic.qos-ok", ""),
    (60, 20): ("basic.consume", "sSSbbbbT"),
    (60, 21): ("basic.consume-ok", "S"),
    (60, 30): ("basic.cancel", "Sb"),
    (60, 31): ("basic.cancel-ok", "S"),
    (60, 40): ("basic.publish", "sSSbb"),
    (60, 50): ("basic.return", "sSSS"),
    (60, 60): ("basic.deliver", "SLbSS"),
    (60, 70): ("basic.get", "sSb"),
    (60, 71): ("basic.get-ok", "LbSSl"),
    (60, 72): ("basic.get-empty", "S"),
    (60, 80): ("basic.ack", "Lb"),
    (60, 90): ("basic.reject", "Lb"),
    (60, 100): ("basic.recover-async", "b"),
    (60, 110): ("basic.recover", "b"),
    (60, 111): ("basic.recover-ok", ""),
    (60, 120): ("basic.nack", "Lbb"),
    (85, 10): ("confirm.select", "b"),
    (85, 11): ("confirm.select-ok", ""),
    (90, 10): ("tx.select", ""),
    (90, 11): ("tx.select-ok", ""),
    (90, 20): ("tx.commit", ""),
    (90, 21): ("tx.commit-ok", ""),
    (90, 30): ("tx.rollback", ""),
    (90, 31): ("tx.rollback-ok", ""),
}
BY_NAME = {name: (key, sig) for key, (name, sig) in METHODS.items()}


class ConnectionClosedByPeer(Exception):
    """The broker closed the TCP connection: kind is "eof" or "reset"."""

    def __init__(self, msg, kind="eof"):
        super().__init__(msg)
        self.kind = kind


# --------------------------------------------------------------------------
# Field values and tables
# --------------------------------------------------------------------------

class Typed:
    """A field value with an explicit AMQP type letter, e.g. Typed('u', 7)."""

    def __init__(self, kind, value):
        self.kind = kind
        self.value = value

    def __repr__(self):
        return "Typed(%r, %r)" % (self.kind, self.value)

    def __eq__(self, other):
        return (isinstance(other, Typed) and self.kind == other.kind
                and self.value == other.value)


def shortstr(s):
    if isinstance(s, str):
        s = s.encode("utf-8")
    assert len(s) < 256
    return struct.pack(">B", len(s)) + s


def longstr(s):
    if isinstance(s, str):
        s = s.encode("utf-8")
    return struct.pack(">I", len(s)) + s


def field_value(v):
    """Encode one field value with its type letter."""
    if isinstance(v, Typed):
        k, x = v.kind, v.value
        if k == "t":
            return b"t" + struct.pack(">B", 1 if x else 0)
        if k == "b":
            return b"b" + struct.pack(">b", x)
        if k == "B":
            return b"B" + struct.pack(">B", x)
        if k == "s":
            return b"s" + struct.pack(">h", x)
        if k == "u":
            return b"u" + struct.pack(">H", x)
        if k == "I":
            return b"I" + struct.pack(">i", x)
        if k == "i":
            return b"i" + struct.pack(">I", x)
        if k == "l":
            return b"l" + struct.pack(">q", x)
        if k == "f":
            return b"f" + struct.pack(">f", x)
        if k == "d":
            return b"d" + struct.pack(">d", x)
        if k == "D":
            places, raw = x
            return b"D" + struct.pack(">Bi", places, raw)
        if k == "S":
            return b"S" + longstr(x)
        if k == "x":
            return b"x" + longstr(x)
        if k == "T":
            return b"T" + struct.pack(">Q", x)
        if k == "F":
            return b"F" + table(x)
        if k == "A":
            return b"A" + array(x)
        if k == "V":
            return b"V"
        raise ValueError("unknown field type %r" % k)
    if v is None:
        return b"V"
    if isinstance(v, bool):
        return b"t" + struct.pack(">B", 1 if v else 0)
    if isinstance(v, int):
        if -2 ** 31 <= v < 2 ** 31:
            return b"I" + struct.pack(">i", v)
        return b"l" + struct.pack(">q", v)
    if isinstance(v, float):
        return b"d" + struct.pack(">d", v)
    if isinstance(v, str):
        return b"S" + longstr(v)
    if isinstance(v, bytes):
        return b"x" + longstr(v)
    if isinstance(v, dict):
        return b"F" + table(v)
    if isinstance(v, (list, tuple)):
        return b"A" + array(v)
    raise TypeError("cannot encode %r" % (v,))


def table(d):
    """Encode a field table (dict name -> value), length prefix included."""
    body = b"".join(shortstr(k) + field_value(v) for k, v in (d or {}).items())
    return struct.pack(">I", len(body)) + body


def array(items):
    body = b"".join(field_value(v) for v in items)
    return struct.pack(">I", len(body)) + body


def decode_value(buf, off):
    k = chr(buf[off])
    off += 1
    fixed = {"t": ">B", "b": ">b", "B": ">B", "s": ">h", "u": ">H", "I": ">i",
             "i": ">I", "l": ">q", "f": ">f", "d": ">d", "T": ">Q"}
    if k in fixed:
        fmt = fixed[k]
        (x,) = struct.unpack_from(fmt, buf, off)
        off += struct.calcsize(fmt)
        if k == "t":
            x = bool(x)
        return Typed(k, x), off
    if k == "D":
        places, raw = struct.unpack_from(">Bi", buf, off)
        return Typed("D", (places, raw)), off + 5
    if k in "Sx":
        (n,) = struct.unpack_from(">I", buf, off)
        off += 4
        return Typed(k, bytes(buf[off:off + n])), off + n
    if k == "F":
        t, off = decode_table(buf, off)
        return Typed("F", t), off
    if k == "A":
        (n,) = struct.unpack_from(">I", buf, off)
        off += 4
        end = off + n
        items = []
        while off < end:
            v, off = decode_value(buf, off)
            items.append(v)
        return Typed("A", items), off
    if k == "V":
        return Typed("V", None), off
    raise ValueError("unknown field type %r at %d" % (k, off - 1))


def decode_table(buf, off):
    (n,) = struct.unpack_from(">I", buf, off)
    off += 4
    end = off + n
    out = {}
    while off < end:
        klen = buf[off]
        key = bytes(buf[off + 1:off + 1 + klen]).decode("utf-8")
        off += 1 + klen
        out[key], off = decode_value(buf, off)
    return out, off


def plain(v):
    """Strip Typed wrappers recursively (longstrs become str when UTF-8)."""
    if isinstance(v, Typed):
        if v.kind == "F":
            return {k: plain(x) for k, x in v.value.items()}
        if v.kind == "A":
            return [plain(x) for x in v.value]
        if v.kind == "S":
            try:
                return v.value.decode("utf-8")
            except UnicodeDecodeError:
                return v.value
        return v.value
    if isinstance(v, dict):
        return {k: plain(x) for k, x in v.items()}
    return v


# --------------------------------------------------------------------------
# Method arguments
# --------------------------------------------------------------------------

def encode_args(sig, args):
    out = []
    bits = []

    def flush_bits():
        if bits:
            octet = 0
            for i, bit in enumerate(bits):
                if bit:
                    octet |= 1 << i
            out.append(struct.pack(">B", octet))
            del bits[:]

    assert len(sig) == len(args), (sig, args)
    for t, a in zip(sig, args):
        if t == "b":
            if len(bits) == 8:
                flush_bits()
            bits.append(bool(a))
            continue
        flush_bits()
        if t == "o":
            out.append(struct.pack(">B", a))
        elif t == "s":
            out.append(struct.pack(">H", a))
        elif t == "l":
            out.append(struct.pack(">I", a))
        elif t == "L":
            out.append(struct.pack(">Q", a))
        elif t == "S":
            out.append(shortstr(a))
        elif t == "X":
            out.append(longstr(a))
        elif t == "T":
            out.append(a if isinstance(a, bytes) else table(a))
        else:
            raise ValueError(t)
    flush_bits()
    return b"".join(out)


def decode_args(sig, buf, off=0):
    out = []
    bitoff = 8
    octet = 0
    for t in sig:
        if t == "b":
            if bitoff == 8:
                octet = buf[off]
                off += 1
                bitoff = 0
            out.append(bool(octet & (1 << bitoff)))
            bitoff += 1
            continue
        bitoff = 8
        if t == "o":
            out.append(buf[off])
            off += 1
        elif t == "s":
            out.append(struct.unpack_from(">H", buf, off)[0])
            off += 2
        elif t == "l":
            out.append(struct.unpack_from(">I", buf, off)[0])
            off += 4
        elif t == "L":
            out.append(struct.unpack_from(">Q", buf, off)[0])
            off += 8
        elif t == "S":
            n = buf[off]
            out.append(bytes(buf[off + 1:off + 1 + n]).decode("utf-8", "replace"))
            off += 1 + n
        elif t == "X":
            (n,) = struct.unpack_from(">I", buf, off)
            out.append(bytes(buf[off + 4:off + 4 + n]))
            off += 4 + n
        elif t == "T":
            tbl, off = decode_table(buf, off)
            out.append(tbl)
    return out


def method_payload(name, *args):
    """The payload of a method frame: class id, method id, arguments."""
    (cls, mid), sig = BY_NAME[name]
    return struct.pack(">HH", cls, mid) + encode_args(sig, args)


def frame(ftype, channel, payload, end=FRAME_END):
    return struct.pack(">BHI", ftype, channel, len(payload)) + payload + bytes([end])


def method_frame(channel, name, *args):
    return frame(FRAME_METHOD, channel, method_payload(name, *args))


def header_frame(channel, body_size, class_id=60, flags=0, props=b""):
    payload = struct.pack(">HHQH", class_id, 0, body_size, flags) + props
    return frame(FRAME_HEADER, channel, payload)


def body_frame(channel, data):
    return frame(FRAME_BODY, channel, data)


class Frame:
    def __init__(self, ftype, channel, payload):
        self.type = ftype
        self.channel = channel
        self.payload = payload
        self.name = None
        self.args = None
        if ftype == FRAME_METHOD:
            cls, mid = struct.unpack_from(">HH", payload, 0)
            self.class_id, self.method_id = cls, mid
            name, sig = METHODS.get((cls, mid), ("unknown(%d,%d)" % (cls, mid), ""))
            self.name = name
            self.args = decode_args(sig, payload, 4)
        elif ftype == FRAME_HEADER:
            self.class_id, _w, self.body_size, self.flags = struct.unpack_from(">HHQH", payload, 0)
            self.props = payload[14:]

    def __repr__(self):
        if self.type == FRAME_METHOD:
            return "<Frame ch=%d %s %r>" % (self.channel, self.name, self.args)
        return "<Frame type=%d ch=%d len=%d>" % (self.type, self.channel, len(self.payload))


# --------------------------------------------------------------------------
# The connection
# --------------------------------------------------------------------------

class RawConnection:
    """One TCP connection speaking frames by hand.  Every read is bounded."""

    def __init__(self, host, port, timeout=5.0):
        """host and port, or (unix=PATH) host None and port a socket path."""
        if host is None:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.settimeout(timeout)
            self.sock.connect(port)
        else:
            self.sock = socket.create_connection((host, port), timeout=timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = bytearray()
        self.start = None
        self.tune = None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- bytes ------------------------------------------------------------
    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, n, deadline):
        while len(self.buf) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("timed out waiting for %d bytes" % n)
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                raise ConnectionClosedByPeer("connection reset", "reset")
            if not chunk:
                raise ConnectionClosedByPeer("EOF after %d bytes" % len(self.buf))
            self.buf += chunk

    def read_bytes(self, n, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        self._fill(n, deadline)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_until_eof(self, timeout=None):
        """Read everything until the peer closes; returns the bytes read."""
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            self._fill(1 << 62, deadline)
        except ConnectionClosedByPeer:
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    # -- frames -----------------------------------------------------------
    def send_frame(self, ftype, channel, payload):
        self.send(frame(ftype, channel, payload))

    def send_method(self, channel, name, *args):
        self.send(method_frame(channel, name, *args))

    def read_frame(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        self._fill(7, deadline)
        ftype, channel, size = struct.unpack_from(">BHI", self.buf, 0)
        self._fill(7 + size + 1, deadline)
        payload = bytes(self.buf[7:7 + size])
        end = self.buf[7 + size]
        del self.buf[:7 + size + 1]
        if end != FRAME_END:
            raise AssertionError("bad frame end octet from broker: %#x" % end)
        return Frame(ftype, channel, payload)

    def read_method(self, timeout=None, skip_heartbeats=True):
        while True:
            f = self.read_frame(timeout)
            if f.type == FRAME_HEARTBEAT and skip_heartbeats:
                continue
            return f

    def expect(self, name, channel=None, timeout=None):
        f = self.read_method(timeout)
        assert f.type == FRAME_METHOD and f.name == name, "expected %s, got %r" % (name, f)
        if channel is not None:
            assert f.channel == channel, f
        return f

    def rpc(self, channel, name, *args, reply=None):
        self.send_method(channel, name, *args)
        return self.expect(reply or name + "-ok", channel)

    # -- connection setup ---------------------------------------------------
    def handshake(self, user="guest", password="guest", vhost="/",
                  mechanism="PLAIN", channel_max=0, frame_max=131072,
                  heartbeat=0, open_vhost=True):
        self.send(PROTOCOL_HEADER)
        self.start = self.expect("connection.start", 0)
        if mechanism == "PLAIN":
            response = b"\x00" + user.encode() + b"\x00" + password.encode()
        elif mechanism == "AMQPLAIN":
            response = table({"LOGIN": user, "PASSWORD": password})[4:]
        else:
            raise ValueError(mechanism)
        client_props = {"product": "warren-rawamqp",
                        "capabilities": {"authentication_failure_close": True,
                                         "consumer_cancel_notify": True,
                                         "basic.nack": True,
                                         "publisher_confirms": True}}
        self.send_method(0, "connection.start-ok", client_props, mechanism,
                         response, "en_US")
        f = self.read_method()
        if f.name != "connection.tune":
            return f
        self.tune = f.args
        smax, fmax, hb = f.args
        self.channel_max = channel_max or smax
        self.frame_max = frame_max
        self.send_method(0, "connection.tune-ok", self.channel_max, frame_max, heartbeat)
        if open_vhost:
            self.send_method(0, "connection.open", vhost, "", False)
            return self.read_method()
        return f

    def open_channel(self, channel):
        return self.rpc(channel, "channel.open", "")

    def publish(self, channel, exchange, routing_key, body, mandatory=False,
                props=b"", flags=0, frame_max=None):
        """Send basic.publish + header + body frames split at frame_max."""
        fmax = frame_max or getattr(self, "frame_max", 131072)
        chunk = fmax - 8
        data = method_frame(channel, "basic.publish", 0, exchange, routing_key,
                            mandatory, False)
        data += header_frame(channel, len(body), flags=flags, props=props)
        for i in range(0, len(body), chunk):
            data += body_frame(channel, body[i:i + chunk])
        self.send(data)

    def read_content(self, timeout=None):
        """After a deliver/get-ok/return: read the header and body frames."""
        h = self.read_method(timeout)
        assert h.type == FRAME_HEADER, h
        body = b""
        while len(body) < h.body_size:
            f = self.read_method(timeout)
            assert f.type == FRAME_BODY, f
            body += f.payload
        return h, body

    def wait_close(self, timeout=None):
        """Read until connection.close (returned, close-ok sent) or EOF (None).

        Other frames are skipped.  Returns the close Frame or None if the
        socket was closed without a connection.close.
        """
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no connection.close within timeout")
            try:
                f = self.read_frame(left)
            except ConnectionClosedByPeer:
                return None
            if f.type == FRAME_METHOD and f.name == "connection.close":
                try:
                    self.send_method(0, "connection.close-ok")
                except OSError:
                    pass
                return f

    def wait_channel_close(self, channel, timeout=None):
        """Read until channel.close on `channel` (close-ok sent)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no channel.close within timeout")
            f = self.read_frame(left)
            if f.type == FRAME_METHOD and f.name == "connection.close":
                raise AssertionError("expected channel.close, got %r" % f)
            if f.type == FRAME_METHOD and f.name == "channel.close" and f.channel == channel:
                self.send_method(channel, "channel.close-ok")
                return f

    def assert_eof(self, timeout=None):
        """Assert the broker closes the socket (any remaining bytes ignored)."""
        self.read_until_eof(timeout)

    def is_open(self, timeout=0.3):
        """True if the socket is still open (no EOF within `timeout`)."""
        try:
            self.sock.settimeout(timeout)
            chunk = self.sock.recv(65536, socket.MSG_PEEK)
            return bool(chunk)
        except socket.timeout:
            return True
        except OSError:
            return False


class Transcript:
    """What the broker sent on a connection, frame by frame, with times.

    events is a list of (seconds since mark(), label, Frame) where label is
    the method name, "heartbeat", "header" or "body"; end is how the socket
    ended while recording: None (still open), "eof" or "reset", at end_t.
    Used to assert the order and timing of frames in the handshake,
    heartbeats and close, the same way against warren and RabbitMQ.
    """

    def __init__(self, conn):
        self.conn = conn
        self.events = []
        self.end = None
        self.end_t = None
        self.mark()

    def mark(self):
        self.t0 = time.monotonic()

    def now(self):
        return time.monotonic() - self.t0

    def record(self, until_t, stop=None):
        """Read frames until until_t seconds after mark(), the socket ends,
        or stop(label) is true for a frame read.  Returns self."""
        while self.end is None:
            left = self.t0 + until_t - time.monotonic()
            if left <= 0:
                break
            try:
                f = self.conn.read_frame(left)
            except socket.timeout:
                break
            except ConnectionClosedByPeer as e:
                self.end, self.end_t = e.kind, self.now()
                break
            label = {FRAME_HEARTBEAT: "heartbeat", FRAME_HEADER: "header",
                     FRAME_BODY: "body"}.get(f.type, f.name)
            self.events.append((self.now(), label, f))
            if stop is not None and stop(label):
                break
        return self

    def labels(self):
        return [label for _, label, _ in self.events]

    def times(self, label):
        return [t for t, lab, _ in self.events if lab == label]

    def __repr__(self):
        rows = ["%.3f %s" % (t, lab) for t, lab, _ in self.events]
        if self.end:
            rows.append("%.3f %s" % (self.end_t, self.end))
        return "<Transcript " + "; ".join(rows) + ">"


def expect_connection_close(conn, code, text_prefix=None, class_id=None,
                            method_id=None, timeout=None):
    """Assert the broker sends connection.close with `code`, then closes."""
    f = conn.wait_close(timeout)
    assert f is not None, "broker closed the socket without connection.close"
    rcode, rtext, rcls, rmid = f.args
    assert rcode == code, f
    if text_prefix is not None:
        assert rtext.startswith(text_prefix), f
    if class_id is not None:
        assert rcls == class_id, f
    if method_id is not None:
        assert rmid == method_id, f
    return f


def decimal_value(places, raw):
    return decimal.Decimal(raw).scaleb(-places)
