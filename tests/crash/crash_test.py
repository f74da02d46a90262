#!/usr/bin/env python3
"""crash_test.py - kill -9 the broker under load, restart it, check the store.

The message store promises (docs/store-format.md): a publisher confirm means
the message is on disk; an ack sent before a later confirm on the same
connection is on disk too; acked messages never return; corruption is
detected, never served; a queue recovers in publish order.  This test holds
warren to those promises the way a crash would test them.

One data directory serves the whole run.  Each round is one broker run:

  1. start warren on the data directory (recovering what the last run left);
  2. verify: read every queue completely and compare with what the clients
     were told in the previous run (see "The model" below); then ack a
     random part of the backlog (made durable by a confirmed marker) and
     leave the rest, so an unconsumed backlog survives several kills;
  3. load: several producers publish persistent messages with confirms to
     two durable queues while consumers ack, nack and reject;
  4. at a random moment (mostly 0.3-2 s into the load, sometimes sooner),
     SIGKILL the broker; in the middle round (and every 25th of a long run)
     stop the clients in an orderly way and send SIGTERM instead.

Now and then a restart is itself killed within 50 ms (often during
recovery) before the restart that is verified.  After the last round the
broker is started once more, verified and stopped.

The model.  For every message the test knows its queue, producer and
sequence number, and tracks:
  - confirmed: the publish was confirmed (basic.ack from the broker);
  - ack: 0 not acked, 1 ack sent ("maybe acked"), 2 ack proven durable.
    A consumer's connection has a second channel in confirm mode; after
    acking it publishes a persistent marker to a durable queue and waits
    for the confirm.  The broker handles a connection's frames in order and
    writes ack records in the same or an earlier group commit than the
    marker, so every ack sent before that confirm is durable.
After a crash, in each queue:
  - a confirmed message that is not (maybe) acked must be present once;
  - a message with a durable ack must not be present;
  - maybe-acked and unconfirmed messages may or may not be present;
  - a message absent at one verification must never appear again;
  - no (producer, sequence) appears twice; every body and its properties
    check out; per producer, sequence numbers increase along the queue.
After a clean stop (clients closed first, then SIGTERM) the state must be
exact, and the redelivered flag is checked: a message delivered in that run
must come back redelivered=true, one published after the consumers had gone
(so never delivered) with redelivered=false.  After a kill -9 every recovered
message may be redelivered=true (documented), so that case is not checked.

Bodies are self-checking: magic, target (one queue, or both through a durable
fanout, which the store keeps as one record listing both queues), producer,
sequence, length, content derived from (producer, sequence) and a CRC-32 of
it all.

Environment:
  WARREN_BIN           the binary (default <repo>/build/warren)
  WARREN_CRASH_ROUNDS  number of rounds (default 20)
  WARREN_CRASH_SEED    seed for the random choices (default: random, printed)
  WARREN_CRASH_KEEP    keep the data directory and logs even on success

Prints one line per round and "N passed, N failed" (N = rounds); exits 1 on
any violation, each described precisely (queue, producer, sequence, what
was expected), and keeps the data directory and broker log for inspection.
"""

import array
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import pika
import pika.exceptions

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "integration"))
import rawamqp  # noqa: E402  (the hand-rolled client: pipelined publishes)

WARREN_BIN = os.environ.get("WARREN_BIN", str(REPO / "build" / "warren"))
ROUNDS = int(os.environ.get("WARREN_CRASH_ROUNDS", "20"))
SEED = int(os.environ.get("WARREN_CRASH_SEED", str(random.randrange(1 << 31))))
KEEP = os.environ.get("WARREN_CRASH_KEEP", "") not in ("", "0")

QUEUES = ["crash-q0", "crash-q1"]
MARKERS = "crash-markers"
FANOUT = "crash-fanout"     # durable, bound to both queues
BOTH = len(QUEUES)          # publish target: the fanout, one record for both queues
PIKA_PRODUCERS = 3          # producers 0..2 use pika, one message at a time
RAW_PRODUCER = 3            # producer 3 pipelines up to WINDOW publishes
WINDOW = 64
VERIFY_CID = 0xFFFF         # the marker sender id of the verify step
BACKLOG_CAP = 1500          # a longer backlog is acked down to about half of this
START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0
JOIN_TIMEOUT = 15.0
PER_KIND = 5                # violations of one kind printed per round

MAGIC = b"WCR1"
HDR = struct.Struct(">4sBBIH")  # magic, target, producer, seq, length
MARKER = struct.Struct(">4sHII")  # magic, consumer id, run, marker seq
MARKER_MAGIC = b"WCM1"


# --------------------------------------------------------------------------
# Self-checking bodies
# --------------------------------------------------------------------------

def content_of(producer, seq):
    rng = random.Random((producer << 32) | seq)
    return rng.randbytes(rng.randrange(2001))


def make_body(target, producer, seq):
    content = content_of(producer, seq)
    head = HDR.pack(MAGIC, target, producer, seq, len(content)) + content
    return head + struct.pack(">I", zlib.crc32(head))


def queues_of(target):
    """The queue indexes a publish to target (a queue index or BOTH) reaches."""
    return range(len(QUEUES)) if target == BOTH else (target,)


def route_of(target):
    """(exchange, routing key) of a publish to target."""
    return (FANOUT, "") if target == BOTH else ("", QUEUES[target])


def pick_target(rng):
    """Mostly one queue through the default exchange; one in five to both
    through the fanout (one store record listing both queues)."""
    return BOTH if rng.random() < 0.2 else rng.randrange(len(QUEUES))


def target_name(target):
    return FANOUT if target == BOTH else QUEUES[target]


def message_id(producer, seq):
    return "%d-%d" % (producer, seq)


def check_body(body, props, qi):
    """Returns (key, None) or (key or None, what is wrong)."""
    if len(body) < HDR.size + 4:
        return None, "body of %d bytes is too short to be a test message" % len(body)
    magic, bqi, producer, seq, n = HDR.unpack_from(body, 0)
    key = (producer, seq)
    if magic != MAGIC:
        return None, "bad magic %r (body starts %r)" % (magic, body[:16])
    if zlib.crc32(body[:-4]) != struct.unpack(">I", body[-4:])[0]:
        return key, "CRC mismatch (body of %d bytes)" % len(body)
    if len(body) != HDR.size + n + 4:
        return key, "length %d does not match header length %d" % (len(body), n)
    if body[HDR.size:-4] != content_of(producer, seq):
        return key, "content differs from what producer %d wrote for seq %d" % key
    if qi not in queues_of(bqi):
        return key, "published to %s but found in %s" % (
            target_name(bqi) if bqi <= BOTH else "target %d" % bqi, QUEUES[qi])
    if props is not None:
        if props.delivery_mode != 2:
            return key, "delivery_mode %r, published 2" % props.delivery_mode
        if props.message_id != message_id(producer, seq):
            return key, "message_id %r, published %r" % (props.message_id,
                                                         message_id(producer, seq))
    return key, None


def gone_why(code):
    """Why a message must never appear again, from its compact code."""
    run, durable = code >> 1, code & 1
    if durable:
        return "its ack was confirmed durable in run %d" % (run - 1)
    return "it was absent at the verification at the start of run %d" % run


def make_marker(cid, run, mseq):
    return MARKER.pack(MARKER_MAGIC, cid, run, mseq)


# --------------------------------------------------------------------------
# The broker
# --------------------------------------------------------------------------

def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class HarnessError(Exception):
    """The test itself could not go on (broker would not start, ...)."""


class Broker:
    RECOVERED = re.compile(r"recovered (\d+) queues, (\d+) exchanges and (\d+) messages "
                           r"from .* in ([0-9.]+) ms")

    def __init__(self, data_dir, log_path):
        self.data_dir = data_dir
        self.log_path = log_path
        self.proc = None
        self.port = None
        self.log_offset = 0
        self.scan_pos = 0   # how far errors_since_scan() has looked

    def start(self, wait=True):
        """Starts warren; with wait, until it listens.  Returns the number of
        starts that failed because another process took the free port
        first (each of them recovered the store, then exited)."""
        for attempt in range(3):
            if not self._start(wait):
                return attempt
            self.proc.wait(STOP_TIMEOUT)
            self.proc = None
        raise HarnessError("warren found its port taken three times:\n%s" % self.log_tail())

    def _start(self, wait):
        """Returns True if the port was taken (warren has exited)."""
        self.port = free_port()
        with open(self.log_path, "ab") as f:
            f.write(b"---- start on port %d\n" % self.port)
            self.log_offset = self.scan_pos = f.tell()
            # Info level, for the "recovered ..." line with the recovery time.
            self.proc = subprocess.Popen(
                [WARREN_BIN, "--listen", "127.0.0.1:%d" % self.port, "--data-dir",
                 self.data_dir, "--set", "log.console.level=info"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=f)
        if not wait:
            return False
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                if "address already in use" in self.log_since_start():
                    return True
                raise HarnessError("warren exited with %s before listening:\n%s"
                                   % (self.proc.returncode, self.log_tail()))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return False
            except OSError:
                if time.monotonic() > deadline:
                    self.kill()
                    raise HarnessError("warren did not listen within %.0f s:\n%s"
                                       % (START_TIMEOUT, self.log_tail()))
                time.sleep(0.02)

    def log_since_start(self):
        with open(self.log_path, "rb") as f:
            f.seek(self.log_offset)
            return f.read().decode("utf-8", "replace")

    def errors_since_scan(self):
        """Error lines this broker logged since the last call (or start)."""
        with open(self.log_path, "rb") as f:
            f.seek(self.scan_pos)
            text = f.read()
        self.scan_pos += len(text)
        return store_warnings(text.decode("utf-8", "replace"))[1]

    def log_tail(self, n=3000):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-n:]

    def recovery(self):
        """(queues, exchanges, messages, ms) from the log, or None."""
        m = self.RECOVERED.search(self.log_since_start())
        if m is None:
            return None
        return int(m.group(1)), int(m.group(2)), int(m.group(3)), float(m.group(4))

    def kill(self):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(STOP_TIMEOUT)
            self.proc = None

    def terminate(self):
        """SIGTERM; returns the exit status (or a description)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)
            rc = "no exit within %.0f s of SIGTERM (killed)" % STOP_TIMEOUT
        self.proc = None
        return rc

    def connect(self):
        p = pika.ConnectionParameters(
            "127.0.0.1", self.port, connection_attempts=1, socket_timeout=5,
            blocked_connection_timeout=10, heartbeat=0)
        return pika.BlockingConnection(p)


# --------------------------------------------------------------------------
# The model of what the clients were told
# --------------------------------------------------------------------------

class Msg:
    __slots__ = ("confirmed", "ack", "last_run", "last_by", "pub_run", "undelivered", "nacked")

    def __init__(self, run):
        self.confirmed = False
        self.ack = 0            # 0 none, 1 ack sent (maybe), 2 ack proven durable
        self.last_run = 0       # the last run in which a client received it
        self.last_by = None     # and who: "consumer N" or "the verify drain"
        self.pub_run = run
        self.undelivered = False  # published with no consumer left (clean rounds)
        self.nacked = False


class Model:
    def __init__(self):
        self.lock = threading.Lock()
        self.msgs = [dict() for _ in QUEUES]     # key -> Msg: may be present
        # Per queue and producer, indexed by seq: nonzero (see gone_why)
        # once the message is known gone from that queue and must never
        # appear there again.  Arrays, not dicts: nearly every message ends
        # up here.
        self.gone = [[array.array("I") for _ in range(RAW_PRODUCER + 1)] for _ in QUEUES]
        self.next_seq = [1] * (RAW_PRODUCER + 1)
        self.violations = []
        self.run = 0
        self.killed = False
        self.no_consumers = False
        # markers: run -> {cid: [published mseqs]}, and the confirmed ones
        self.markers_pub = {}
        self.markers_conf = {}
        self.marker_removal = {}  # run -> how that run's verify removed older markers
        self.stats = {}

    def reset_stats(self):
        self.stats = dict(confirmed=0, inflight=0, nacked=0, acked=0, durable=0,
                          delivered=0, requeued=0)

    def gone_code(self, qi, key):
        arr = self.gone[qi][key[0]] if key[0] <= RAW_PRODUCER else ()
        return arr[key[1]] if key[1] < len(arr) else 0

    def set_gone(self, qi, key, code):
        arr = self.gone[qi][key[0]]
        if key[1] >= len(arr):
            arr.extend(array.array("I", [0]) * (key[1] + 1 - len(arr)))
        arr[key[1]] = code

    def violate(self, text):
        with self.lock:
            self.violations.append(text)

    # -- producers --
    def publishing(self, target, producer):
        with self.lock:
            seq = self.next_seq[producer]
            self.next_seq[producer] += 1
            for qi in queues_of(target):
                m = Msg(self.run)
                m.undelivered = self.no_consumers
                self.msgs[qi][(producer, seq)] = m
            self.stats["inflight"] += 1
            return seq

    def confirmed(self, target, key):
        with self.lock:
            for qi in queues_of(target):
                m = self.msgs[qi].get(key)
                if m is not None:
                    m.confirmed = True
            self.stats["confirmed"] += 1
            self.stats["inflight"] -= 1

    def nacked(self, target, key):
        with self.lock:
            for qi in queues_of(target):
                m = self.msgs[qi].get(key)
                if m is not None:
                    m.nacked = True
            self.stats["nacked"] += 1
            self.stats["inflight"] -= 1

    # -- consumers --
    def delivered(self, who, qi, key, redelivered):
        """A client received key from queue qi; returns a violation or None."""
        with self.lock:
            self.stats["delivered"] += 1
            why = self.gone_code(qi, key)
            if why:
                return "%s: %s producer %d seq %d delivered, but %s" % (
                    who, QUEUES[qi], key[0], key[1], gone_why(why))
            m = self.msgs[qi].get(key)
            if m is None:
                return "%s: %s producer %d seq %d delivered but never published" % (
                    who, QUEUES[qi], key[0], key[1])
            if m.ack:
                # The verification at the start of the run reset every
                # message present to not acked, so this ack is from this run.
                return ("%s: %s producer %d seq %d delivered again after it was acked in "
                        "this run%s" % (who, QUEUES[qi], key[0], key[1],
                                        " (ack confirmed durable)" if m.ack == 2 else ""))
            if m.last_run == self.run and not redelivered:
                return ("%s: %s producer %d seq %d delivered a second time in run %d "
                        "with redelivered=false" % (who, QUEUES[qi], key[0], key[1],
                                                    self.run))
            m.last_run = self.run
            m.last_by = who
            return None

    def requeued(self):
        with self.lock:
            self.stats["requeued"] += 1

    def ack_sent(self, qi, keys):
        with self.lock:
            for key in keys:
                m = self.msgs[qi].get(key)
                if m is not None and m.ack == 0:
                    m.ack = 1
                    self.stats["acked"] += 1

    def acks_durable(self, pairs):
        with self.lock:
            for qi, key in pairs:
                m = self.msgs[qi].get(key)
                if m is not None and m.ack != 2:
                    m.ack = 2
                    self.stats["durable"] += 1

    def marker_publishing(self, cid):
        with self.lock:
            per = self.markers_pub.setdefault(self.run, {}).setdefault(cid, [])
            mseq = len(per) + 1
            per.append(mseq)
            return self.run, mseq

    def marker_confirmed(self, cid, run, mseq):
        with self.lock:
            self.markers_conf.setdefault(run, {}).setdefault(cid, set()).add(mseq)


# --------------------------------------------------------------------------
# Clients (threads; each has its own connection)
# --------------------------------------------------------------------------

CONN_ERRORS = (pika.exceptions.AMQPError, OSError, socket.timeout,
               rawamqp.ConnectionClosedByPeer, AssertionError)


class Load:
    """The clients of one run and their stop signals."""

    def __init__(self, broker, model, rng):
        self.broker = broker
        self.model = model
        self.rng = rng
        self.stop_consumers = threading.Event()
        self.stop_producers = threading.Event()
        self.consumer_threads = []
        self.producer_threads = []
        self.deadline = time.monotonic() + 60.0  # a bound on every client loop

    def failed(self, who, e):
        # Errors are expected once the broker has been killed.
        if not self.model.killed:
            self.model.violate("%s failed while the broker was up: %s: %s"
                               % (who, type(e).__name__, e))

    def start(self, idle_queue=None):
        """Starts the clients; idle_queue gets no consumer this run, so
        what is published to it is never delivered before the kill."""
        for p in range(PIKA_PRODUCERS):
            self.producer_threads.append(self._thread(self.pika_producer, p))
        self.producer_threads.append(self._thread(self.raw_producer, RAW_PRODUCER))
        cid = 0
        for qi in range(len(QUEUES)):
            if qi == idle_queue:
                continue
            for _ in range(self.rng.choice((1, 2))):
                self.consumer_threads.append(self._thread(self.consumer, cid, qi))
                cid += 1

    def _thread(self, fn, *args):
        seed = self.rng.randrange(1 << 30)
        t = threading.Thread(target=fn, args=args + (random.Random(seed),), daemon=True)
        t.start()
        return t

    def join(self, threads):
        end = time.monotonic() + JOIN_TIMEOUT
        for t in threads:
            t.join(max(0.0, end - time.monotonic()))
            if t.is_alive():
                self.model.violate("a client thread did not finish within %.0f s "
                                   "(hung on the broker?)" % JOIN_TIMEOUT)
                return

    # -- producers --
    def pika_producer(self, producer, rng):
        who = "producer %d" % producer
        try:
            conn = self.broker.connect()
            ch = conn.channel()
            ch.confirm_delivery()
            while not self.stop_producers.is_set() and time.monotonic() < self.deadline:
                target = pick_target(rng)
                seq = self.model.publishing(target, producer)
                props = pika.BasicProperties(delivery_mode=2,
                                             message_id=message_id(producer, seq))
                exchange, rkey = route_of(target)
                try:
                    ch.basic_publish(exchange, rkey, make_body(target, producer, seq), props)
                except pika.exceptions.NackError:
                    self.model.nacked(target, (producer, seq))
                    continue
                self.model.confirmed(target, (producer, seq))
                if rng.random() < 0.02:
                    time.sleep(rng.uniform(0, 0.01))
            conn.close()
        except CONN_ERRORS as e:
            self.failed(who, e)

    def raw_producer(self, producer, rng):
        """Pipelines publishes (up to WINDOW unconfirmed), so a kill finds
        many in flight and confirms arrive as multiple acks."""
        who = "producer %d (pipelined)" % producer
        out = {}  # delivery tag -> (target, key)
        try:
            c = rawamqp.RawConnection("127.0.0.1", self.broker.port, timeout=5.0)
            c.handshake()
            c.open_channel(1)
            c.rpc(1, "confirm.select", False)
            tag = 0
            lowest = 1
            while time.monotonic() < self.deadline:
                stopping = self.stop_producers.is_set()
                if not stopping and len(out) < WINDOW:
                    for _ in range(rng.randint(1, WINDOW - len(out))):
                        target = pick_target(rng)
                        seq = self.model.publishing(target, producer)
                        mid = message_id(producer, seq).encode()
                        # delivery-mode (0x1000) and message-id (0x0080)
                        props = bytes([2, len(mid)]) + mid
                        exchange, rkey = route_of(target)
                        c.publish(1, exchange, rkey, make_body(target, producer, seq),
                                  flags=0x1080, props=props)
                        tag += 1
                        out[tag] = (target, (producer, seq))
                if stopping and not out:
                    break
                f = c.read_method(timeout=5.0)
                if f.type != rawamqp.FRAME_METHOD or f.name not in ("basic.ack", "basic.nack"):
                    raise AssertionError("unexpected frame %r" % f)
                dtag, multiple = f.args[0], f.args[1]
                done = range(lowest, dtag + 1) if multiple else [dtag]
                for t in done:
                    item = out.pop(t, None)
                    if item is None:
                        continue
                    if f.name == "basic.ack":
                        self.model.confirmed(*item)
                    else:
                        self.model.nacked(*item)
                lowest = min(out) if out else tag + 1
                # Pause between bursts: enough load to keep several in
                # flight, not so much that the backlog outgrows the round.
                time.sleep(rng.uniform(0, 0.006))
            c.send_method(0, "connection.close", 200, "bye", 0, 0)
            c.expect("connection.close-ok", 0)
            c.close()
        except CONN_ERRORS as e:
            self.failed(who, e)

    # -- consumers --
    def consumer(self, cid, qi, rng):
        who = "consumer %d on %s" % (cid, QUEUES[qi])
        model = self.model
        pending = []      # (delivery tag, key) delivered, not settled, in tag order
        unproven = []     # (qi, key) acked since the last confirmed marker
        first_seq = {}    # producer -> last seq delivered with redelivered=false
        slow = rng.choice((0.0, 0.0005, 0.002, 0.005))
        settle_p = rng.uniform(0.2, 0.9)
        # Some consumers start late, so a backlog that was never delivered
        # meets the kill.
        delay = rng.uniform(0.2, 1.5) if rng.random() < 0.3 else 0.0

        def on_message(ch, method, props, body):
            key, bad = check_body(body, props, qi)
            if bad:
                model.violate("%s: delivery (tag %d, %s): %s" % (
                    who, method.delivery_tag,
                    "producer %d seq %d" % key if key else "unknown message", bad))
                if key is None:
                    return
            v = model.delivered(who, qi, key, method.redelivered)
            if v:
                model.violate(v)
            if not method.redelivered:
                last = first_seq.get(key[0], 0)
                if key[1] <= last:
                    model.violate("%s: %s producer %d: seq %d delivered (first time) after "
                                  "seq %d: not in publish order" % (who, QUEUES[qi], key[0],
                                                                    key[1], last))
                first_seq[key[0]] = key[1]
            pending.append((method.delivery_tag, key))

        def prove(mch):
            run, mseq = model.marker_publishing(cid)
            proving = list(unproven)
            mch.basic_publish("", MARKERS, make_marker(cid, run, mseq),
                              pika.BasicProperties(delivery_mode=2))
            model.marker_confirmed(cid, run, mseq)
            model.acks_durable(proving)
            del unproven[:len(proving)]

        if delay and self.stop_consumers.wait(delay):
            return
        try:
            conn = self.broker.connect()
            ch = conn.channel()
            ch.basic_qos(prefetch_count=rng.choice((1, 10, 50, 200)))
            mch = conn.channel()
            mch.confirm_delivery()
            ch.basic_consume(QUEUES[qi], on_message_callback=on_message, auto_ack=False)
            last_marker = time.monotonic()
            while not self.stop_consumers.is_set() and time.monotonic() < self.deadline:
                conn.process_data_events(time_limit=0.002)
                if pending and rng.random() < settle_p:
                    r = rng.random()
                    i = rng.randrange(len(pending))
                    tag, key = pending[i]
                    # The model counts an ack as (maybe) sent before the
                    # call: pika may hand the frame to the kernel and then
                    # raise because the broker died, and the broker may
                    # have applied the ack before it was killed.
                    if r < 0.45:
                        model.ack_sent(qi, [key])
                        ch.basic_ack(tag)
                        del pending[i]
                        unproven.append((qi, key))
                    elif r < 0.8:
                        # multiple=true settles every pending tag <= tag
                        keys = [k for _, k in pending[:i + 1]]
                        model.ack_sent(qi, keys)
                        ch.basic_ack(tag, multiple=True)
                        del pending[:i + 1]
                        unproven.extend((qi, k) for k in keys)
                    elif r < 0.92:
                        ch.basic_nack(tag, multiple=False, requeue=True)
                        del pending[i]
                        model.requeued()
                    else:
                        ch.basic_reject(tag, requeue=True)
                        del pending[i]
                        model.requeued()
                now = time.monotonic()
                if unproven and (len(unproven) >= 20 or now - last_marker > 0.05):
                    prove(mch)
                    last_marker = now
                if slow:
                    time.sleep(slow)
            # Orderly stop (clean rounds): prove the last acks, then close,
            # which requeues what is still pending.
            if unproven:
                prove(mch)
            conn.close()
        except CONN_ERRORS as e:
            self.failed(who, e)


# --------------------------------------------------------------------------
# Verification after a restart
# --------------------------------------------------------------------------

def drain(conn, ch, queue, limit_s=60.0):
    """Consumes every ready message of queue (manual ack, no prefetch limit)
    and returns [(method, props, body)] in delivery order.  The messages
    stay unacked on ch."""
    n = ch.queue_declare(queue, durable=True, passive=True).method.message_count
    got = []
    ch.basic_qos(prefetch_count=0)
    tag = ch.basic_consume(queue, on_message_callback=lambda c, m, p, b: got.append((m, p, b)),
                           auto_ack=False)
    deadline = time.monotonic() + limit_s
    while len(got) < n and time.monotonic() < deadline:
        conn.process_data_events(time_limit=0.05)
    conn.process_data_events(time_limit=0.02)  # anything beyond n would show here
    ch.basic_cancel(tag)
    if len(got) < n:
        raise HarnessError("%s: only %d of %d messages delivered within %.0f s"
                           % (queue, len(got), n, limit_s))
    return got, n


class Verifier:
    def __init__(self, broker, model, rng):
        self.broker = broker
        self.model = model
        self.rng = rng

    def run(self, prev_run, clean, first, check_redelivered):
        """Checks the state left by prev_run, then acks part of the backlog.
        Returns a dict of counts for the round line."""
        model = self.model
        out = dict(present=0, redelivered=0, verify_acked=0, markers=0)
        conn = self.broker.connect()
        ch = conn.channel()
        if first:
            ch.exchange_declare(FANOUT, "fanout", durable=True)
            for q in QUEUES:
                ch.queue_declare(q, durable=True)
                ch.queue_bind(q, FANOUT)
        else:
            # The binding is checked by the fanout's messages: each must
            # reach both queues.
            try:
                ch.exchange_declare(FANOUT, "fanout", durable=True, passive=True)
            except pika.exceptions.ChannelClosedByBroker as e:
                model.violate("durable exchange %s missing after restart: %s" % (FANOUT, e))
                ch = conn.channel()
                ch.exchange_declare(FANOUT, "fanout", durable=True)
                for q in QUEUES:
                    ch.queue_declare(q, durable=True)
                    ch.queue_bind(q, FANOUT)
        ch.close()
        for q in QUEUES + [MARKERS]:
            ch = conn.channel()
            if first:
                ch.queue_declare(q, durable=True)
            else:
                try:
                    ch.queue_declare(q, durable=True, passive=True)
                except pika.exceptions.ChannelClosedByBroker as e:
                    model.violate("durable queue %s missing after restart: %s" % (q, e))
                    ch = conn.channel()
                    ch.queue_declare(q, durable=True)
            ch.close()
        if first:
            conn.close()
            return out
        when = "after clean restart" if clean else "after kill -9"
        chans = []
        for qi, q in enumerate(QUEUES):
            ch = conn.channel()
            got, n = drain(conn, ch, q)
            if len(got) != n:
                model.violate("%s: %s: queue.declare counted %d ready messages, a consumer "
                              "received %d" % (when, q, n, len(got)))
            chans.append((ch, got))
            self.check_queue(qi, got, prev_run, clean, when, out, check_redelivered)
        out["markers"] = self.check_markers(conn, prev_run, when)

        # Ack part of the backlog; the rest stays (requeued when the
        # channels close) for the next rounds.
        durable = []
        frac = self.rng.uniform(0.2, 0.8)
        for qi, (ch, got) in enumerate(chans):
            keep = [i for i in range(len(got))]
            if len(got) > BACKLOG_CAP:
                frac = max(frac, 1.0 - BACKLOG_CAP / 2 / len(got))
            acked = []
            if got and self.rng.random() < 0.3:
                # multiple=true over a prefix
                k = self.rng.randrange(len(got))
                ch.basic_ack(got[k][0].delivery_tag, multiple=True)
                acked.extend(range(k + 1))
                keep = keep[k + 1:]
            for i in keep:
                if self.rng.random() < frac:
                    ch.basic_ack(got[i][0].delivery_tag)
                    acked.append(i)
            keys = []
            for i in acked:
                key, _ = check_body(got[i][2], None, qi)
                if key is not None:
                    keys.append(key)
            model.ack_sent(qi, keys)
            durable.extend((qi, k) for k in keys)
            out["verify_acked"] += len(keys)
        mch = conn.channel()
        mch.confirm_delivery()
        run, mseq = model.marker_publishing(VERIFY_CID)
        mch.basic_publish("", MARKERS, make_marker(VERIFY_CID, run, mseq),
                          pika.BasicProperties(delivery_mode=2))
        model.marker_confirmed(VERIFY_CID, run, mseq)
        model.acks_durable(durable)
        conn.close()  # requeues the unacked rest
        return out

    def check_queue(self, qi, got, prev_run, clean, when, out, check_redelivered):
        model = self.model
        q = QUEUES[qi]
        seen = {}
        last = {}
        with model.lock:
            msgs = model.msgs[qi]
            for pos, (method, props, body) in enumerate(got):
                key, bad = check_body(body, props, qi)
                if bad:
                    model.violations.append("%s: %s message #%d (%s): %s" % (
                        when, q, pos, "producer %d seq %d" % key if key else "unknown", bad))
                if key is None:
                    continue
                p, s = key
                tag = "%s: %s producer %d seq %d" % (when, q, p, s)
                if key in seen:
                    model.violations.append("%s present twice (positions %d and %d)"
                                            % (tag, seen[key], pos))
                    continue
                seen[key] = pos
                if s <= last.get(p, 0):
                    model.violations.append("%s at position %d comes after seq %d: per-producer "
                                            "publish order broken" % (tag, pos, last[p]))
                last[p] = s
                out["present"] += 1
                if method.redelivered:
                    out["redelivered"] += 1
                why = model.gone_code(qi, key)
                if why:
                    model.violations.append("%s present, but %s" % (tag, gone_why(why)))
                    continue
                m = msgs.get(key)
                if m is None:
                    model.violations.append("%s present but never published" % tag)
                    continue
                if m.ack == 2:
                    model.violations.append("%s present, but its ack was confirmed durable in "
                                            "run %d (acked message returned)" % (tag, prev_run))
                elif clean and m.ack == 1:
                    model.violations.append("%s present, but it was acked before the orderly "
                                            "shutdown (acked message returned)" % tag)
                if check_redelivered and m.last_run == prev_run and not method.redelivered:
                    model.violations.append("%s (published in run %d): redelivered=false, but "
                                            "%s received it in run %d before the clean "
                                            "shutdown" % (tag, m.pub_run, m.last_by, prev_run))
                if (check_redelivered and m.undelivered and m.last_run != prev_run
                        and method.redelivered):
                    model.violations.append("%s: redelivered=true, but it was published after "
                                            "the consumers had gone and never delivered"
                                            % tag)
            # What is missing?
            for key, m in msgs.items():
                if key in seen:
                    continue
                p, s = key
                tag = "%s: %s producer %d seq %d" % (when, q, p, s)
                if m.ack == 0 and m.confirmed:
                    model.violations.append(
                        "%s missing: confirmed in run %d, never acked (expected exactly once)"
                        % (tag, m.pub_run))
                elif clean and m.ack == 0 and not m.nacked:
                    model.violations.append(
                        "%s missing: published in run %d, never acked, and the clients "
                        "stopped in order before the clean shutdown" % (tag, m.pub_run))
            # The new exact state: what is present stays (it is durable now:
            # recovery syncs before anything new is confirmed), what is absent
            # must never appear again.
            run_now = model.run
            for key in list(msgs):
                if key not in seen:
                    m = msgs.pop(key)
                    model.set_gone(qi, key, run_now * 2 + (1 if m.ack == 2 else 0))
            for key in seen:
                m = msgs.get(key)
                if m is None:
                    continue
                m.confirmed = True
                m.ack = 0
                m.nacked = False
                m.undelivered = False
                m.last_run = run_now
                m.last_by = "the verify drain"

    def check_markers(self, conn, prev_run, when):
        """Markers of earlier runs were removed (alternately by purge and by
        a no-ack drain); every confirmed marker of prev_run must be there."""
        model = self.model
        ch = conn.channel()
        got, n = drain(conn, ch, MARKERS)
        seen = set()
        last = {}
        for pos, (method, props, body) in enumerate(got):
            if len(body) != MARKER.size or body[:4] != MARKER_MAGIC:
                model.violate("%s: %s message #%d is not a marker: %r" % (when, MARKERS, pos,
                                                                         body[:32]))
                continue
            _, cid, run, mseq = MARKER.unpack(body)
            tag = "%s: %s marker (consumer %d, run %d, #%d)" % (when, MARKERS, cid, run, mseq)
            if run != prev_run:
                model.violate("%s present, but the markers of run %d were removed (%s) in "
                              "run %d" % (tag, run, model.marker_removal.get(run + 1, "?"),
                                          run + 1))
            elif not 1 <= mseq <= len(model.markers_pub.get(run, {}).get(cid, [])):
                model.violate("%s present but never published" % tag)
            if (cid, run, mseq) in seen:
                model.violate("%s present twice" % tag)
            seen.add((cid, run, mseq))
            if (cid, run) in last and mseq <= last[(cid, run)]:
                model.violate("%s after #%d: publish order broken" % (tag, last[(cid, run)]))
            last[(cid, run)] = mseq
        for cid, mseqs in model.markers_conf.get(prev_run, {}).items():
            for mseq in sorted(mseqs):
                if (cid, prev_run, mseq) not in seen:
                    model.violate("%s: %s marker (consumer %d, run %d, #%d) missing: confirmed, "
                                  "never consumed" % (when, MARKERS, cid, prev_run, mseq))
        if self.rng.random() < 0.5:
            model.marker_removal[model.run] = "by queue.purge"
            ch.close()  # requeue, then purge
            ch = conn.channel()
            purged = ch.queue_purge(MARKERS).method.message_count
            if purged != n:
                model.violate("%s: purge of %s removed %d messages, %d were there"
                              % (when, MARKERS, purged, n))
        else:
            model.marker_removal[model.run] = "by acks, made durable by a confirmed marker"
            for method, _, _ in got:
                ch.basic_ack(method.delivery_tag)
        ch.close()
        return len(got)


# --------------------------------------------------------------------------
# The rounds
# --------------------------------------------------------------------------

def report(bad):
    """Prints violations, a few of each kind (kinds differ in more than
    their numbers), so that one flood does not hide another kind."""
    kinds = {}
    for line in bad:
        kinds.setdefault(re.sub(r"\d+", "#", line), []).append(line)
    for lines in kinds.values():
        for line in lines[:PER_KIND]:
            print("    VIOLATION: " + line)
        if len(lines) > PER_KIND:
            print("    ... and %d more like this" % (len(lines) - PER_KIND))


def store_warnings(log):
    torn = len(re.findall(r"torn record|corrupt tail", log))
    errors = [ln for ln in log.splitlines()
              if "[error]" in ln or "Sanitizer" in ln or "runtime error:" in ln]
    return torn, errors


def main():
    if not os.access(WARREN_BIN, os.X_OK):
        print("crash test: warren binary not found at %s (build it or set WARREN_BIN)"
              % WARREN_BIN)
        return 2
    rng = random.Random(SEED)
    work = tempfile.mkdtemp(prefix="warren-crash-")
    data_dir = os.path.join(work, "data")
    log_path = os.path.join(work, "warren.log")
    broker = Broker(data_dir, log_path)
    model = Model()
    clean_rounds = {ROUNDS // 2} | {i for i in range(25, ROUNDS, 25)}
    print("crash test: %d rounds, seed %d, binary %s, data %s"
          % (ROUNDS, SEED, WARREN_BIN, data_dir))
    sys.stdout.flush()
    passed = failed = 0
    t_start = time.monotonic()
    try:
        # What the round line reports about the run that just ended.
        prev_clean, prev_at, prev_stats, round_start = False, 0.0, {}, 0
        for rnd in range(1, ROUNDS + 2):
            # Start the run: recover, verify what the previous run left.
            model.run = rnd
            model.killed = False
            model.no_consumers = False
            # Now and then the broker is killed again within its first 50 ms,
            # often in the middle of recovery (which cuts torn tails, deletes
            # dead segments and starts a new one): recovery must survive
            # its own crash.  Not after an orderly stop, whose strict
            # redelivered check needs the clean-shutdown mark intact.
            twice = rnd > 1 and not prev_clean and rng.random() < 0.15
            if twice:
                broker.start(wait=False)
                time.sleep(rng.uniform(0.0, 0.05))
                broker.kill()
            # A start that lost its port to another process has recovered
            # the store and consumed the clean-shutdown mark: the redelivered
            # flags are then those of a crash.
            lost_port = broker.start()
            rec = broker.recovery()
            verifier = Verifier(broker, model, rng)
            v = verifier.run(rnd - 1, prev_clean, first=(rnd == 1),
                             check_redelivered=prev_clean and not lost_port)
            log = broker.log_since_start()
            if rnd > 1:
                torn, _ = store_warnings(log)
                for ln in broker.errors_since_scan():
                    model.violate("broker logged an error after restart: %s" % ln)
                if rec is None:
                    model.violate("no 'recovered ...' line in the broker log after restart")
                elif rec[2] != v["present"] + v["markers"]:
                    model.violate("broker recovered %d messages, the queues held %d (%d in %s, "
                                  "%d markers)" % (rec[2], v["present"] + v["markers"],
                                                   v["present"], "/".join(QUEUES),
                                                   v["markers"]))
                st = prev_stats
                bad = model.violations[round_start:]
                print("round %d/%d %s%s at %.2fs: confirmed %d (+%d in flight%s), acked durable %d "
                      "(+%d maybe), requeued %d; present after restart %d, redelivered %d, "
                      "markers %d, torn tails %d, recovery %s: %s"
                      % (rnd - 1, ROUNDS, "SIGTERM" if prev_clean else "kill -9",
                         " (and again in recovery)" if twice else "", prev_at,
                         st["confirmed"], st["inflight"],
                         ", %d nacked" % st["nacked"] if st["nacked"] else "",
                         st["durable"], st["acked"] - st["durable"], st["requeued"],
                         v["present"], v["redelivered"], v["markers"], torn,
                         "%.1f ms" % rec[3] if rec else "?",
                         "FAIL" if bad else "ok"))
                report(bad)
                sys.stdout.flush()
                if bad:
                    failed += 1
                else:
                    passed += 1
            if rnd == ROUNDS + 1:
                rc = broker.terminate()
                errors = broker.errors_since_scan()
                if rc != 0 or errors:
                    print("final stop: warren exited with %s%s" % (
                        rc, "".join("\n    " + ln for ln in errors)))
                    failed += 1
                break

            # The load, then a kill (or an orderly stop).
            round_start = len(model.violations)
            model.reset_stats()
            load = Load(broker, model, rng)
            # Before and during a clean round, one queue gets no consumers:
            # its messages come back after the kill never delivered, are
            # delivered only by the verify drain of the clean round, and the
            # verification after the clean restart checks that this delivery
            # was remembered (redelivered=true) while what the clean round
            # published there comes back redelivered=false.
            idle = rnd in clean_rounds or rnd + 1 in clean_rounds
            load.start(idle_queue=1 if idle else None)
            at = rng.uniform(0.3, 2.0) if rng.random() < 0.9 else rng.uniform(0.0, 0.3)
            time.sleep(at)
            prev_at = at
            prev_clean = rnd in clean_rounds
            if prev_clean:
                load.stop_consumers.set()
                load.join(load.consumer_threads)
                model.no_consumers = True
                time.sleep(0.3)
                load.stop_producers.set()
                load.join(load.producer_threads)
                rc = broker.terminate()
                if rc != 0:
                    model.violate("SIGTERM: warren exited with %s" % rc)
                for ln in broker.errors_since_scan():
                    model.violate("broker logged an error before the orderly stop: %s" % ln)
                if not os.path.exists(os.path.join(data_dir, "vhosts", "1", "clean-shutdown")):
                    model.violate("no clean-shutdown marker after an orderly stop")
            else:
                model.killed = True
                broker.kill()
                for ln in broker.errors_since_scan():
                    model.violate("broker logged an error under load: %s" % ln)
                load.stop_consumers.set()
                load.stop_producers.set()
                load.join(load.consumer_threads + load.producer_threads)
            prev_stats = dict(model.stats)
    except HarnessError as e:
        print("crash test: harness error: %s" % e)
        failed += 1
    except KeyboardInterrupt:
        print("crash test: interrupted")
        failed += 1
    finally:
        if broker.proc is not None:
            broker.kill()
    elapsed = time.monotonic() - t_start
    print("crash test: %.1f s, seed %d" % (elapsed, SEED))
    print("%d passed, %d failed" % (passed, failed))
    if failed or KEEP:
        print("kept data directory and broker log in %s" % work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
