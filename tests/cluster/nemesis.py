#!/usr/bin/python3
"""Jepsen-style fault injection against a 3-node warren cluster.

    /usr/bin/python3 tests/cluster/nemesis.py [--rounds 10] [--seed S]
        [--duration 8] [--producers 2] [--consumers 2] [--warren build/warren]

Each round declares a fresh quorum queue, then for --duration seconds
producers publish with confirms (bodies "P:SEQ", per-producer sequence
numbers) and consumers consume with manual acks, each through a random node
(and a new random node after every error), while a nemesis injects one
fault at a time at random moments: SIGKILL of a node (restarted on its data
dir 1-3 s later), SIGSTOP (SIGCONT 1-3 s later), and when the cluster helper
can (root: network namespaces, see tests/integration/cluster.py) a partition
isolating one node (healed 1-3 s later).  Half of the faults target the
queue's leader.  Then everything heals, producers stop, consumers drain the
queue, and the round checks:

  lost       every confirmed message was delivered at least once
  order      per consumer, the first deliveries (redelivered=false) of each
             producer's confirmed messages come in increasing sequence order
             (an unconfirmed message whose connection died may come later,
             after the producer's next connection's: counted as "late";
             RabbitMQ keeps order per channel)
  leader     exactly one leader, the same on every node, a running node
  queues     every node lists the same queues, and counts the round's queue
             empty after the drain
  metadata   a topology worker declares and deletes the round's exchanges
             (a pool of 6 names) through random nodes meanwhile; after
             healing every node lists the same exchanges, and an exchange
             whose last operation was answered (declare-ok, delete-ok, with
             nothing unanswered after it) is present or absent accordingly

A violation prints the details and the run exits 1 (after the round).
Duplicates (a message delivered more than once) are counted, not
forbidden: quorum queues are at-least-once (docs/quorum-queues.md: a
settle may be lost with a leader).  Deliveries of a message after a
consumer acked it and then closed its channel cleanly are counted apart
("acked-redelivered"); --strict-acks makes them violations.

One line per round, then a summary.  Exit 0: no violation.
"""

import argparse
import os
import random
import socket
import sys
import threading
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "integration"))

import pika  # noqa: E402
import pika.exceptions  # noqa: E402

from cluster import Cluster, PartitionUnsupported  # noqa: E402

QQ = {"x-queue-type": "quorum"}
OP_TIMEOUT = 8.0  # a publish (confirm) or an idle consumer stuck this long is cut


def log(*a):
    print(*a, flush=True)


def _sock_of(conn):
    try:
        return conn._impl._transport._sock
    except Exception:
        return None


class Worker(threading.Thread):
    """A client thread with a watchdog: busy_since set while an operation
    that may hang (a confirm) is in flight; the nemesis loop cuts the socket
    of a worker stuck longer than OP_TIMEOUT."""

    def __init__(self, run, name):
        super().__init__(name=name, daemon=True)
        self.run_ = run
        self.rnd = random.Random(run.rnd.random())
        self.stop_ev = threading.Event()
        self.conn = None
        self.busy_since = None
        self.errors = 0
        self.cuts = 0

    def pick_node(self):
        nodes = self.run_.cluster.nodes
        return nodes[self.rnd.randrange(len(nodes))]

    def connect(self):
        node = self.pick_node()
        return node, node.connect(heartbeat=2, socket_timeout=3,
                                  blocked_connection_timeout=5, stack_timeout=5)

    def cut_if_stuck(self, now):
        b = self.busy_since
        if b is not None and now - b > OP_TIMEOUT and self.conn is not None:
            s = _sock_of(self.conn)
            if s is not None:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                    self.cuts += 1
                except OSError:
                    pass

    def close(self):
        c, self.conn = self.conn, None
        if c is not None:
            try:
                c.close()
            except Exception:
                pass


class Producer(Worker):
    def __init__(self, run, pid):
        super().__init__(run, "producer-%d" % pid)
        self.pid = pid
        self.seq = 0
        self.confirmed = set()
        self.attempted = 0
        self.via = []  # (first seq, node index, time): where each session published

    def run(self):
        q = self.run_.queue
        while not self.stop_ev.is_set():
            try:
                node, self.conn = self.connect()
                self.via.append((self.seq + 1, node.idx, time.monotonic() - self.run_.t0))
                ch = self.conn.channel()
                ch.confirm_delivery()
                while not self.stop_ev.is_set():
                    self.seq += 1
                    seq = self.seq
                    self.attempted += 1
                    self.busy_since = time.monotonic()
                    ch.basic_publish("", q, ("%d:%d" % (self.pid, seq)).encode(),
                                     pika.BasicProperties(delivery_mode=2,
                                                          message_id="%d:%d" % (self.pid, seq)),
                                     mandatory=True)
                    self.busy_since = None
                    self.confirmed.add(seq)
            except Exception:
                self.busy_since = None
                self.errors += 1
                self.close()
                self.stop_ev.wait(0.2)
        self.close()


class Consumer(Worker):
    def __init__(self, run, cid):
        super().__init__(run, "consumer-%d" % cid)
        self.cid = cid
        self.sessions = []  # [{"node", "deliveries": [(p, seq, redelivered)], "clean": bool}]

    def run(self):
        q = self.run_.queue
        while not self.stop_ev.is_set():
            sess = {"node": None, "deliveries": [], "acked": set(), "clean": False}
            self.sessions.append(sess)
            try:
                node, self.conn = self.connect()
                sess["node"] = node.name
                ch = self.conn.channel()
                ch.basic_qos(prefetch_count=20)
                idle_since = time.monotonic()
                for m, props, body in ch.consume(q, inactivity_timeout=0.3):
                    now = time.monotonic()
                    if m is None:
                        # Idle while others deliver: maybe a stuck node.
                        if now - idle_since > OP_TIMEOUT and self.run_.progress_since(idle_since):
                            raise RuntimeError("idle consumer on %s" % node.name)
                        if self.stop_ev.is_set():
                            break
                        continue
                    idle_since = now
                    p, s = body.decode().split(":")
                    key = (int(p), int(s))
                    sess["deliveries"].append((key[0], key[1], bool(m.redelivered)))
                    self.run_.note_delivery(key)
                    ch.basic_ack(m.delivery_tag)
                    sess["acked"].add(key)
                    if self.stop_ev.is_set():
                        break
                try:
                    ch.cancel()
                except Exception:
                    pass
                ch.close()
                sess["clean"] = True
            except Exception:
                self.errors += 1
                self.stop_ev.wait(0.2)
            finally:
                self.close()


class Topologist(Worker):
    """Declares and deletes exchanges of a small pool, one operation at a
    time, remembering per name the last answered operation and whether an
    unanswered one (an error, a cut) came after it."""

    def __init__(self, run):
        super().__init__(run, "topologist")
        self.names = ["%s-x%d" % (run.queue, i) for i in range(6)]
        self.known = {}  # name -> (exists after the last answered op, unknown op after it)
        self.ops = 0

    def run(self):
        while not self.stop_ev.is_set():
            try:
                _node, self.conn = self.connect()
                ch = self.conn.channel()
                while not self.stop_ev.is_set():
                    name = self.rnd.choice(self.names)
                    declare = self.rnd.random() < 0.6
                    prev = self.known.get(name, (False, False))
                    self.known[name] = (prev[0], True)  # in doubt until answered
                    self.busy_since = time.monotonic()
                    if declare:
                        ch.exchange_declare(name, "fanout", durable=True)
                    else:
                        ch.exchange_delete(name)
                    self.busy_since = None
                    self.known[name] = (declare, False)
                    self.ops += 1
                    self.stop_ev.wait(self.rnd.uniform(0.02, 0.2))
            except Exception:
                self.busy_since = None
                self.errors += 1
                self.close()
                self.stop_ev.wait(0.2)
        self.close()


def exchange_names(node, prefix):
    out = node.warrenctl("list_exchanges", "--no-table-headers", "-q", "name")
    return tuple(sorted(x for x in out.split() if x.startswith(prefix)))


class Round:
    def __init__(self, cluster, rnd, idx, args):
        self.cluster = cluster
        self.rnd = rnd
        self.idx = idx
        self.args = args
        self.queue = "nemesis-%d-%d" % (idx, rnd.randrange(1 << 30))
        self.lock = threading.Lock()
        self.delivered = {}  # key -> count
        self.last_delivery = time.monotonic()
        self.faults = []
        self.t0 = time.monotonic()

    def note_delivery(self, key):
        with self.lock:
            self.delivered[key] = self.delivered.get(key, 0) + 1
            self.last_delivery = time.monotonic()

    def progress_since(self, t):
        return self.last_delivery > t

    # -- the nemesis --

    def target(self):
        nodes = self.cluster.nodes
        if self.rnd.random() < 0.5:
            try:
                name = self.cluster.leader(self.queue, timeout=2)
                return self.cluster.node(name)
            except AssertionError:
                pass
        return nodes[self.rnd.randrange(len(nodes))]

    def fault(self, workers):
        kinds = ["kill", "stop"] + (["partition"] if self.cluster.can_partition else [])
        kind = self.rnd.choice(kinds)
        node = self.target()
        hold = self.rnd.uniform(1.0, 3.0)
        self.faults.append("%s n%d %.1fs@%.1f" % (kind, node.idx, hold,
                                                 time.monotonic() - self.t0))
        if kind == "kill":
            node.kill()
            self.sleep(hold, workers)
            node.start()
        elif kind == "stop":
            node.pause()
            self.sleep(hold, workers)
            node.resume()
        else:
            self.cluster.isolate(node)
            self.sleep(hold, workers)
            self.cluster.heal()

    def sleep(self, secs, workers):
        end = time.monotonic() + secs
        while True:
            now = time.monotonic()
            for w in workers:
                w.cut_if_stuck(now)
            if now >= end:
                return
            time.sleep(min(0.1, end - now))

    def heal_all(self):
        if self.cluster.can_partition:
            self.cluster.heal()
        for n in self.cluster.nodes:
            n.resume()
            if not n.running:
                n.start()

    # -- one round --

    def run(self):
        c = self.cluster
        violations = []
        with c.nodes[self.rnd.randrange(3)].connect() as conn:
            conn.channel().queue_declare(self.queue, durable=True, arguments=QQ)
        c.leader(self.queue, timeout=15)
        producers = [Producer(self, i) for i in range(self.args.producers)]
        consumers = [Consumer(self, i) for i in range(self.args.consumers)]
        topo = Topologist(self)
        workers = producers + consumers + [topo]
        for w in workers:
            w.start()
        end = time.monotonic() + self.args.duration
        try:
            while time.monotonic() < end:
                self.sleep(self.rnd.uniform(0.3, 1.5), workers)
                if time.monotonic() < end - 1:
                    self.fault(workers)
        finally:
            self.heal_all()
        for p in producers + [topo]:
            p.stop_ev.set()
        for p in producers + [topo]:
            while p.is_alive():
                p.join(0.2)
                p.cut_if_stuck(time.monotonic())
        confirmed = {(p.pid, s) for p in producers for s in p.confirmed}
        # Drain: until every confirmed message was seen and the queue is empty.
        deadline = time.monotonic() + self.args.drain
        empty = False
        while time.monotonic() < deadline:
            self.sleep(0.5, consumers)
            with self.lock:
                missing = confirmed - set(self.delivered)
            if not missing:
                try:
                    counts = {n: v.get(self.queue, {}).get("messages")
                              for n, v in c.queue_views().items()}
                    if set(counts.values()) == {0}:
                        empty = True
                        break
                except Exception:
                    pass
        for w in consumers:
            w.stop_ev.set()
        for w in consumers:
            while w.is_alive():
                w.join(0.2)
                w.cut_if_stuck(time.monotonic())

        # -- checks --
        with self.lock:
            delivered = dict(self.delivered)
        lost = sorted(confirmed - set(delivered))
        if lost:
            def via(p, s):
                prod = producers[p]
                v = [x for x in prod.via if x[0] <= s]
                return "n%d(session from t=%.1fs)" % (v[-1][1], v[-1][2]) if v else "?"
            detail = {}
            for p, s in lost:
                detail.setdefault(via(p, s), []).append("%d:%d" % (p, s))
            violations.append("lost %d confirmed message(s) (published through: %s); faults %s"
                              % (len(lost), {k: v[:8] + (["..."] if len(v) > 8 else [])
                                             for k, v in detail.items()}, self.faults))
        dups = sum(n - 1 for n in delivered.values() if n > 1)
        dup_msgs = sum(1 for n in delivered.values() if n > 1)
        # Order of first deliveries, per consumer session and producer,
        # among confirmed messages: a confirm that came before the next
        # publish puts the message ahead of it.  An unconfirmed message (its
        # publisher's connection died first) may be enqueued later, after
        # messages of the publisher's next connection: as in RabbitMQ, order
        # holds per channel.  Those are counted as "late".
        order_bad = []
        late = 0
        for w in consumers:
            for sess in w.sessions:
                last = {}
                for p, s, redelivered in sess["deliveries"]:
                    if redelivered:
                        continue
                    if (p, s) not in confirmed:
                        if p in last and s <= last[p]:
                            late += 1
                        continue
                    if p in last and s <= last[p]:
                        order_bad.append("consumer %d on %s: producer %d seq %d after %d"
                                         % (w.cid, sess["node"], p, s, last[p]))
                    last[p] = max(last.get(p, 0), s)
        if order_bad:
            violations.append("order: %d inversion(s), e.g. %s" % (len(order_bad), order_bad[:5]))
        # Redelivered after an ack on a channel that then closed cleanly.
        acked_clean = {}
        acked_redelivered = []
        all_sessions = sorted((s for w in consumers for s in w.sessions),
                              key=lambda s: id(s))
        for w in consumers:
            for sess in w.sessions:
                if sess["clean"]:
                    for k in sess["acked"]:
                        acked_clean[k] = acked_clean.get(k, 0) + 1
        for k, n in delivered.items():
            if k in acked_clean and n > 1:
                acked_redelivered.append(k)
        if self.args.strict_acks and acked_redelivered:
            violations.append("delivered again after an ack on a cleanly closed channel: %s"
                              % acked_redelivered[:10])
        del all_sessions
        # Leader and queue lists.
        leader = None
        try:
            leader = c.leader(self.queue, timeout=20)
        except AssertionError as e:
            violations.append("leader: %s" % e)
        try:
            views = c.queue_views()
            lists = {n: tuple(sorted(v)) for n, v in views.items()}
            if len(set(lists.values())) != 1:
                violations.append("queue lists differ: %s" % lists)
            counts = {n: v.get(self.queue, {}).get("messages") for n, v in views.items()}
            if not empty and set(counts.values()) != {0}:
                violations.append("queue not drained in %.0fs: counts %s" % (self.args.drain, counts))
        except Exception as e:
            violations.append("list_queues: %s" % e)
        # Metadata: the same exchanges everywhere, as last answered.
        prefix = self.queue + "-x"
        lists = {}
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                lists = {n.name: exchange_names(n, prefix) for n in c.nodes}
                if len(set(lists.values())) == 1:
                    break
            except Exception as e:
                lists = {"error": repr(e)}
            time.sleep(0.3)
        if len(set(lists.values())) != 1:
            violations.append("exchange lists differ: %s" % lists)
        else:
            have = set(next(iter(lists.values())))
            wrong = ["%s %s" % (name, "missing" if exists else "present")
                     for name, (exists, doubt) in sorted(topo.known.items())
                     if not doubt and exists != (name in have)]
            if wrong:
                violations.append("exchanges not as last answered: %s" % wrong)
        try:
            with c.nodes[self.rnd.randrange(3)].connect() as conn:
                ch = conn.channel()
                for name in topo.names:
                    ch.exchange_delete(name)
        except Exception as e:
            violations.append("exchange cleanup: %r" % e)
        stats = {
            "late": late,
            "topology_ops": topo.ops,
            "attempted": sum(p.attempted for p in producers),
            "confirmed": len(confirmed),
            "delivered": len(delivered),
            "deliveries": sum(delivered.values()),
            "dups": dups,
            "dup_msgs": dup_msgs,
            "acked_redelivered": len(acked_redelivered),
            "lost": len(lost),
            "client_errors": sum(w.errors for w in workers),
            "cuts": sum(w.cuts for w in workers),
        }
        # Delete the round's queue (deletion is replicated) when all is well.
        if not violations:
            try:
                with c.nodes[self.rnd.randrange(3)].connect() as conn:
                    conn.channel().queue_delete(self.queue)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    if all(self.queue not in v for v in c.queue_views().values()):
                        break
                    time.sleep(0.2)
                else:
                    violations.append("deleted queue still listed: %s" % {
                        n: self.queue in v for n, v in c.queue_views().items()})
            except Exception as e:
                violations.append("delete: %r" % e)
        return stats, leader, violations


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--duration", type=float, default=8.0, help="seconds of faults per round")
    ap.add_argument("--drain", type=float, default=12.0, help="max seconds to drain after healing")
    ap.add_argument("--producers", type=int, default=2)
    ap.add_argument("--consumers", type=int, default=2)
    ap.add_argument("--warren", default=os.environ.get("WARREN_BIN"))
    ap.add_argument("--no-netns", action="store_true", help="no partitions (all on 127.0.0.1)")
    ap.add_argument("--strict-acks", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the data dirs and logs")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 32)
    rnd = random.Random(seed)
    cl = Cluster(3, binary=args.warren, netns=False if args.no_netns else None)
    log("nemesis: seed %d, %d rounds of %.0fs, nodes %s, partitions %s, dir %s"
        % (seed, args.rounds, args.duration, [n.name for n in cl.nodes],
           "yes" if cl.can_partition else "no (SIGSTOP only)", cl.tmp))
    total = {}
    failed = []
    t0 = time.monotonic()
    try:
        for i in range(1, args.rounds + 1):
            r = Round(cl, random.Random(rnd.random()), i, args)
            try:
                stats, leader, violations = r.run()
            except Exception:
                stats, leader, violations = {}, None, ["round crashed: " + traceback.format_exc()]
            for k, v in stats.items():
                total[k] = total.get(k, 0) + v
            log("round %d: %s confirmed %s/%s delivered %s dups %s acked-redelivered %s lost %s "
                "late-unconfirmed %s topology-ops %s client-errors %s faults [%s] leader %s -> %s"
                % (i, r.queue, stats.get("confirmed"), stats.get("attempted"),
                   stats.get("delivered"), stats.get("dups"), stats.get("acked_redelivered"),
                   stats.get("lost"), stats.get("late"), stats.get("topology_ops"),
                   stats.get("client_errors"),
                   ", ".join(r.faults), leader, "VIOLATION" if violations else "ok"))
            for v in violations:
                log("  VIOLATION (seed %d, round %d): %s" % (seed, i, v))
            if violations:
                failed.append((i, violations))
                r.heal_all()
    finally:
        keep = args.keep or bool(failed)
        cl.close(keep_tmp=keep)
    log("summary: seed %d, %d rounds in %.0fs, confirmed %d, delivered %d, duplicate deliveries "
        "%d (%.2f%%), acked-redelivered %d, lost %d, violations in %d round(s)%s"
        % (seed, args.rounds, time.monotonic() - t0, total.get("confirmed", 0),
           total.get("delivered", 0), total.get("dups", 0),
           100.0 * total.get("dups", 0) / max(1, total.get("deliveries", 0)),
           total.get("acked_redelivered", 0), total.get("lost", 0), len(failed),
           (" %s; logs kept in %s" % ([i for i, _ in failed], cl.tmp)) if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
