"""A cluster of warren nodes for tests: start, stop, restart, kill, pause,
partition.

    from cluster import Cluster
    with Cluster(3) as c:            # started; stopped and cleaned up on exit
        a, b, c3 = c.nodes
        conn = a.connect()           # pika.BlockingConnection to node a
        c.leader("q")                # "warren@IP:PORT" from every node's view
        c.kill(a); c.restart(a)      # SIGKILL, then start on the same data dir
        c.pause(b); c.resume(b)      # SIGSTOP / SIGCONT
        c.partition([a], [b, c3]); c.heal()

Each node gets its own data dir, AMQP port and cluster port (ephemeral free
ports), one shared secret file, and a config file naming every node
(docs/configuration.md, the cluster.* keys).  Processes are handled only by
their pid.

Partitions.  This machine has no iptables or nft, and tc has no drop action
(no act_gact module), so packets between two loopback ports cannot be
filtered; and nodes dial each other at the addresses named in the config, so
a fault-injecting TCP proxy between them is not possible either.  What works
as root is network namespaces (iproute2's `ip`, Debian package iproute2):
with netns=True (the default when running as root and `ip netns add` works)
every node runs in its own namespace `ip netns exec wNNNNnI warren ...`,
reached through a veth pair on a bridge in the root namespace, at its own
address 10.X.Y.I (the bridge, where the tests' clients live, is 10.X.Y.254).
partition(A, B) adds `blackhole` routes inside the namespaces, so nodes in A
and nodes in B cannot exchange a packet in either direction, while every
node stays reachable from the tests; heal() removes them.  Everything added
(routes, namespaces, veths, the bridge) is removed by close(), which runs
on exit of the `with`, from a finally, and from atexit for anything a crash
left behind.  Without root (netns=False) every node listens on 127.0.0.1 and
partition() raises PartitionUnsupported: use pause() (SIGSTOP) instead,
which a peer cannot tell from a partition of that node from everyone.
"""

import atexit
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pika

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0

_live = set()  # clusters not closed yet, for atexit


@atexit.register
def _close_all():
    for c in list(_live):
        try:
            c.close()
        except Exception:
            pass


def _on_sigterm(signum, frame):
    raise SystemExit(128 + signum)  # so finally/atexit clean up


try:  # a script killed by timeout(1) still cleans up (pytest keeps its own)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
except ValueError:  # not the main thread
    pass


class PartitionUnsupported(RuntimeError):
    pass


def warren_bin():
    return os.environ.get("WARREN_BIN", str(REPO / "build" / "warren"))


def warrenctl_bin(warren=None):
    """warrenctl next to the warren binary (cmake builds both into one dir),
    else build/warrenctl."""
    w = Path(warren or warren_bin())
    cand = w.parent / "warrenctl"
    return str(cand if cand.exists() else REPO / "build" / "warrenctl")


def free_port(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _ip(*args, check=True):
    r = subprocess.run(["ip"] + list(args), capture_output=True, text=True, timeout=20)
    if check and r.returncode != 0:
        raise RuntimeError("ip %s: %s" % (" ".join(args), r.stderr.strip()))
    return r


def netns_available():
    """Whether this process can create network namespaces (root + ip)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    name = "wprobe%d" % os.getpid()
    if _ip("netns", "add", name, check=False).returncode != 0:
        return False
    _ip("netns", "del", name, check=False)
    return True


class Node:
    def __init__(self, cluster, idx, host, amqp_port, cluster_port, netns=None):
        self.cluster = cluster
        self.idx = idx
        self.host = host
        self.amqp_port = amqp_port
        self.cluster_port = cluster_port
        self.http_port = free_port()  # the management API
        self.netns = netns
        self.name = "warren@%s:%d" % (host, cluster_port)
        self.dir = os.path.join(cluster.tmp, "n%d" % idx)
        self.data_dir = os.path.join(self.dir, "data")
        self.config = os.path.join(self.dir, "warren.conf")
        self.log = os.path.join(self.dir, "warren.log")
        self.proc = None
        self.paused = False
        os.makedirs(self.data_dir, exist_ok=True)

    def __repr__(self):
        return "<node %d %s%s>" % (self.idx, self.name, "" if self.running else " down")

    def http(self, method, path, body=None, timeout=10):
        """One management API request as guest; (status, parsed JSON or None)."""
        import base64
        import http.client
        conn = http.client.HTTPConnection(self.host, self.http_port, timeout=timeout)
        try:
            headers = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, path, data, headers)
            r = conn.getresponse()
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
        finally:
            conn.close()

    @property
    def url(self):
        return "amqp://guest:guest@%s:%d/" % (self.host, self.amqp_port)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def params(self, **kw):
        p = pika.URLParameters(self.url)
        kw.setdefault("connection_attempts", 1)
        kw.setdefault("socket_timeout", 5)
        kw.setdefault("blocked_connection_timeout", 10)
        for k, v in kw.items():
            setattr(p, k, v)
        return p

    def connect(self, **kw):
        return pika.BlockingConnection(self.params(**kw))

    def stderr(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    # -- process control (by pid only) --

    def start(self, wait=True):
        assert not self.running, "%r already running" % self
        cmd = [self.cluster.binary, "--config", self.config]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns] + cmd  # ip execs: same pid
        with open(self.log, "ab") as errf:
            errf.write(b"=== start %s\n" % time.strftime("%H:%M:%S").encode())
            errf.flush()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=errf)
        self.paused = False
        if wait:
            self.wait_listening()

    def wait_listening(self, timeout=START_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("%r exited with %s before listening:\n%s"
                                   % (self, self.proc.returncode, self.stderr()[-4000:]))
            try:
                socket.create_connection((self.host, self.amqp_port), timeout=0.5).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("%r did not listen within %.0fs:\n%s"
                                       % (self, timeout, self.stderr()[-4000:]))
                time.sleep(0.05)

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM (SIGCONT first if paused), wait; SIGKILL after timeout.
        Returns the exit status (or "killed")."""
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is None:
            if self.paused:
                self.resume()
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
                rc = "killed after %ss" % timeout
        self.proc = None
        return rc

    def kill(self):
        """SIGKILL, as a crash would."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)
            self.proc = None
        self.paused = False

    def pause(self):
        assert self.running
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self):
        if self.proc is not None and self.paused:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    # -- administration --

    def ctl(self, command, *args, vhost="/", timeout=10, **options):
        """One request on the node's control socket; the reply as a dict."""
        path = os.path.join(self.data_dir, "warren.sock")
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(timeout)
            s.connect(path)
            req = {"command": command, "args": list(args), "vhost": vhost,
                   "options": {k.replace("_", "-"): v for k, v in options.items()}}
            s.sendall((json.dumps(req) + "\n").encode())
            return json.loads(s.makefile("rb").readline())

    def warrenctl(self, *args, timeout=15):
        """Runs warrenctl -n DATA_DIR ARGS; returns stdout (raises on failure)."""
        r = subprocess.run([self.cluster.warrenctl, "-n", self.data_dir] + list(args),
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError("warrenctl %s on %r: rc %d %s%s"
                               % (" ".join(args), self, r.returncode, r.stdout, r.stderr))
        return r.stdout

    def queues(self, vhost="/", timeout=10):
        """{name: {"type", "leader", "members" (list), "messages"}} from
        `warrenctl list_queues name type leader members messages`."""
        out = self.warrenctl("list_queues", "-p", vhost, "--no-table-headers", "-q",
                             "name", "type", "leader", "members", "messages",
                             timeout=timeout)
        res = {}
        for line in out.splitlines():
            if not line.strip():
                continue
            cols = line.split("\t")
            if len(cols) < 5:
                continue
            name, qtype, leader, members, messages = cols[:5]
            members = members.strip("[]")
            res[name] = {
                "type": qtype,
                "leader": leader,
                "members": [m.strip().strip("'\"") for m in members.split(",") if m.strip()],
                "messages": int(messages) if messages.strip().lstrip("-").isdigit() else None,
            }
        return res


class Cluster:
    def __init__(self, n=3, binary=None, netns=None, config="", start=True,
                 log_level="warning"):
        self.binary = binary or warren_bin()
        if not os.access(self.binary, os.X_OK):
            raise RuntimeError("warren binary not found at %s" % self.binary)
        self.warrenctl = warrenctl_bin(self.binary)
        self.tmp = tempfile.mkdtemp(prefix="warren-cluster-")
        self.secret = os.path.join(self.tmp, "secret")
        with open(self.secret, "wb") as f:
            f.write(os.urandom(24).hex().encode())  # 48 bytes
        os.chmod(self.secret, 0o600)
        self.extra_config = config
        self.log_level = log_level
        self.netns = netns_available() if netns is None else netns
        self._routes = []  # (netns, dest) blackhole routes added
        self._namespaces = []
        self._bridge = None
        self.nodes = []
        self.closed = False
        _live.add(self)
        try:
            if self.netns:
                self._setup_netns(n)
            else:
                for i in range(1, n + 1):
                    self.nodes.append(Node(self, i, "127.0.0.1", free_port(), free_port()))
            for node in self.nodes:
                self._write_config(node)
            if start:
                self.start()
        except BaseException:
            self.close()
            raise

    # -- network namespaces --

    def _setup_netns(self, n):
        used = _ip("-4", "-o", "addr").stdout + _ip("-4", "route").stdout
        rnd = random.Random(os.getpid() ^ int(time.time() * 1000))
        for _ in range(100):
            net = "10.%d.%d" % (rnd.randint(200, 250), rnd.randint(1, 254))
            if net + "." not in used:
                break
        tag = "w%04x%02x" % (os.getpid() & 0xFFFF, rnd.randint(0, 255))
        self._bridge = tag + "b"
        _ip("link", "add", self._bridge, "type", "bridge")
        _ip("addr", "add", net + ".254/24", "dev", self._bridge)
        _ip("link", "set", self._bridge, "up")
        for i in range(1, n + 1):
            ns = "%sn%d" % (tag, i)
            _ip("netns", "add", ns)
            self._namespaces.append(ns)
            host_if = "%sh%d" % (tag, i)
            _ip("link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("link", "set", host_if, "master", self._bridge, "up")
            addr = "%s.%d" % (net, i)
            _ip("-n", ns, "addr", "add", addr + "/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            # Separate namespaces: the well-known ports are free in each.
            self.nodes.append(Node(self, i, addr, 5672, 25672, netns=ns))

    def _write_config(self, node):
        lines = [
            "listeners.tcp.default = %s:%d" % (node.host, node.amqp_port),
            "cluster.listener = %s:%d" % (node.host, node.cluster_port),
            "cluster.secret_file = %s" % self.secret,
            "cluster_formation.peer_discovery_backend = classic_config",
        ]
        for i, other in enumerate(self.nodes, 1):
            lines.append("cluster_formation.classic_config.nodes.%d = %s" % (i, other.name))
        lines += ["data_dir = %s" % node.data_dir,
                  "log.console.level = %s" % self.log_level,
                  "management.tcp.ip = %s" % node.host,
                  "management.tcp.port = %d" % node.http_port]
        if node.host != "127.0.0.1":
            lines.append("loopback_users = none")  # guest from the bridge address
        with open(node.config, "w") as f:
            f.write("\n".join(lines) + "\n" + self.extra_config)

    # -- lifecycle --

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def start(self):
        for node in self.nodes:
            if not node.running:
                node.start(wait=False)
        for node in self.nodes:
            node.wait_listening()

    def stop(self):
        """Stops every node (SIGTERM); returns {node name: exit status}."""
        for node in self.nodes:
            if node.running and node.paused:
                node.resume()
        return {node.name: node.stop() for node in self.nodes}

    def close(self, keep_tmp=False):
        """Stops every node, removes every route, namespace, link and (unless
        keep_tmp) the temp dir.  Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        try:
            for node in self.nodes:
                try:
                    node.resume()
                    node.stop(timeout=5)
                except Exception:
                    node.kill()
        finally:
            try:
                self.heal()
            except Exception:
                pass
            for ns in self._namespaces:
                _ip("netns", "del", ns, check=False)
            if self._bridge:
                _ip("link", "del", self._bridge, check=False)
            _live.discard(self)
            if not keep_tmp and not os.environ.get("WARREN_KEEP_CLUSTER"):
                shutil.rmtree(self.tmp, ignore_errors=True)

    def node(self, name_or_idx):
        for n in self.nodes:
            if n.name == name_or_idx or n.idx == name_or_idx:
                return n
        raise KeyError(name_or_idx)

    def kill(self, node):
        node.kill()

    def restart(self, node, wait=True):
        """Stops (SIGTERM) the node if it runs, starts it on the same data dir."""
        node.stop()
        node.start(wait=wait)

    def pause(self, node):
        node.pause()

    def resume(self, node):
        node.resume()

    # -- partitions --

    @property
    def can_partition(self):
        return bool(self.netns)

    def partition(self, *groups):
        """partition([a], [b, c]): no packet between nodes of different
        groups (both directions) until heal().  Nodes not named keep
        talking to everyone."""
        if not self.can_partition:
            raise PartitionUnsupported(
                "partitions need network namespaces (root and iproute2); "
                "use pause() (SIGSTOP) instead")
        for gi, g in enumerate(groups):
            for h in groups[gi + 1:]:
                for a in g:
                    for b in h:
                        self._cut(a, b)
                        self._cut(b, a)

    def isolate(self, node):
        self.partition([node], [n for n in self.nodes if n is not node])

    def _cut(self, src, dst):
        key = (src.netns, dst.host)
        if key in self._routes:
            return
        self._routes.append(key)
        _ip("-n", src.netns, "route", "add", "blackhole", dst.host + "/32")

    def heal(self):
        errs = []
        while self._routes:
            ns, host = self._routes.pop()
            r = _ip("-n", ns, "route", "del", "blackhole", host + "/32", check=False)
            if r.returncode != 0:
                errs.append(r.stderr)
        if errs:
            raise RuntimeError("heal: " + "; ".join(errs))

    # -- views --

    def queue_views(self, vhost="/", nodes=None):
        """{node name: its list_queues dict} for every running, unpaused node."""
        out = {}
        for n in nodes or self.nodes:
            if n.running and not n.paused:
                out[n.name] = n.queues(vhost)
        return out

    def leader(self, queue, vhost="/", timeout=15.0, nodes=None, exclude=()):
        """The leader every running node (or every node of nodes) agrees on
        for queue, waiting up to timeout for them to agree on one of the
        running nodes not in exclude (names).  Raises AssertionError with
        the views if they do not."""
        deadline = time.monotonic() + timeout
        views = {}
        running = {n.name for n in self.nodes if n.running and not n.paused}
        while True:
            try:
                views = self.queue_views(vhost, nodes)
                leaders = {v.get(queue, {}).get("leader") for v in views.values()}
                if len(leaders) == 1:
                    (l,) = leaders
                    if l in running and l not in exclude:
                        return l
            except (RuntimeError, subprocess.TimeoutExpired, OSError) as e:
                views = {"error": str(e)}
            if time.monotonic() > deadline:
                raise AssertionError("no agreed leader for %s within %.0fs: %s"
                                     % (queue, timeout, {k: (v.get(queue) if isinstance(v, dict) else v)
                                                         for k, v in views.items()}))
            time.sleep(0.2)


def stop_and_check(cluster):
    """Stops every node (SIGTERM) and fails on a sanitizer report in any
    node's log (the ASan build's tier runs these tests too)."""
    cluster.stop()
    for n in cluster.nodes:
        err = n.stderr()
        for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            assert marker not in err, "%s: sanitizer report:\n%s" % (n.name, err)


def wait_until(pred, timeout=10.0, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except Exception as e:  # keep polling through transient errors
            last = e
        time.sleep(interval)
    raise AssertionError("%s not reached within %.0fs (last: %r)" % (what, timeout, last))
