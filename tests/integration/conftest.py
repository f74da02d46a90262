"""Integration test harness: a real broker on an ephemeral port.

By default each session starts the warren binary (env WARREN_BIN, default
<repo>/build/warren) as

    warren --listen 127.0.0.1:PORT --data-dir TMPDIR [--config FILE] [--set k=v ...]

and stops it with SIGTERM (SIGKILL after 10 s).  If env AMQP_URL is set, the
tests run against that broker instead (this is how the suite is validated
against RabbitMQ); tests that need a broker with their own configuration then
skip, unless a suitable external broker is named by another variable
(AMQP_CONSUMER_TIMEOUT_URL for a broker with consumer_timeout = 3000).
"""

import json
import os
import signal
import shlex
import socket
import subprocess
import tempfile
import shutil
import time
import urllib.parse
from pathlib import Path

import pika
import pytest

import rawamqp
from helpers import uid

REPO = Path(__file__).resolve().parents[2]
EXTERNAL_URL = os.environ.get("AMQP_URL")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Broker:
    """A broker the tests talk to: host, port and an amqp URL."""

    def __init__(self, url, proc=None, data_dir=None, stderr_path=None):
        self.url = url
        p = urllib.parse.urlparse(url)
        self.host = p.hostname or "127.0.0.1"
        self.port = p.port or 5672
        self.proc = proc
        self.data_dir = data_dir
        self.stderr_path = stderr_path

    @property
    def external(self):
        return self.proc is None

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

    def raw(self, timeout=5.0):
        return rawamqp.RawConnection(self.host, self.port, timeout=timeout)

    def ctl(self, command, *args, vhost="/", **options):
        """One request on warren's control socket (src/admin/ctl.h); the
        reply as a dict."""
        path = os.path.join(self.data_dir, "warren.sock")
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(path)
            req = {"command": command, "args": list(args), "vhost": vhost,
                   "options": {k.replace("_", "-"): v for k, v in options.items()}}
            # (options named with "-" already, e.g. "apply-to", pass through.)
            s.sendall((json.dumps(req) + "\n").encode())
            f = s.makefile("rb")
            return json.loads(f.readline())

    def admin(self, command, *args, vhost="/"):
        """Runs an administrative command (rabbitmqctl's name and
        arguments) on either broker: warren's control socket, or for
        RabbitMQ the command line in $RABBITMQCTL (e.g. "rabbitmqctl -n
        ref1@localhost", run as the rabbitmq user).  Fails the test if it
        is refused; skips it if RabbitMQ has no $RABBITMQCTL."""
        if not self.external:
            pos, opts, it = [], {}, iter(args)
            for a in it:
                if a.startswith("--"):
                    opts[a[2:]] = next(it)
                else:
                    pos.append(a)
            r = self.ctl(command, *pos, vhost=vhost, **opts)
            assert r["ok"], r
            return r
        ctl = os.environ.get("RABBITMQCTL")
        if not ctl:
            pytest.skip("set RABBITMQCTL to administer the external broker")
        cmd = shlex.split(ctl) + [command, "-p", vhost] + list(args)
        subprocess.run(cmd, check=True, capture_output=True, timeout=60)
        return None

    def stderr(self):
        if self.stderr_path and os.path.exists(self.stderr_path):
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        return ""

    def stop(self):
        """Stops warren with SIGTERM and checks it exited cleanly: exit
        status 0 and no sanitizer report on stderr (the suite also runs
        against an ASan+UBSan build)."""
        if self.proc is None:
            return
        rc = self.proc.poll()
        if rc is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
                rc = "killed after %ss" % STOP_TIMEOUT
        self.proc = None
        err = self.stderr()
        for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            assert marker not in err, "warren reported a sanitizer error:\n" + err
        assert rc == 0, "warren exited with %s:\n%s" % (rc, err[-4000:])

    def kill(self):
        """SIGKILL, as a crash would."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(STOP_TIMEOUT)
            self.proc = None


def warren_bin():
    return os.environ.get("WARREN_BIN", str(REPO / "build" / "warren"))


def start_warren(config_text=None, data_dir=None, listen=None, port=None, **settings):
    """Start warren with its own port and data dir; wait until it listens.

    listen is the --listen argument (default "127.0.0.1:PORT"); False gives
    none, for a config_text with its own listeners on port."""
    binary = warren_bin()
    if not os.access(binary, os.X_OK):
        pytest.fail("warren binary not found at %s (build it, set WARREN_BIN, "
                    "or set AMQP_URL to test another broker)" % binary)
    tmp = tempfile.mkdtemp(prefix="warren-it-")
    data_dir = data_dir or os.path.join(tmp, "data")
    os.makedirs(data_dir, exist_ok=True)
    port = port or free_port()
    cmd = [binary, "--data-dir", data_dir]
    if listen is None:
        listen = "127.0.0.1:%d" % port
    if listen is not False:
        cmd += ["--listen", listen]
    if config_text is not None:
        cfg = os.path.join(tmp, "warren.conf")
        with open(cfg, "w") as f:
            f.write(config_text)
        cmd += ["--config", cfg]
    for k, v in settings.items():
        cmd += ["--set", "%s=%s" % (k, v)]
    stderr_path = os.path.join(tmp, "stderr.log")
    errf = open(stderr_path, "wb")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=errf,
                            stdin=subprocess.DEVNULL)
    errf.close()
    broker = Broker("amqp://guest:guest@127.0.0.1:%d/" % port, proc, data_dir,
                    stderr_path)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            err = broker.stderr()
            broker.proc = None
            pytest.fail("warren exited with %s before listening:\n%s"
                        % (proc.returncode, err))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                broker.stop()
                pytest.fail("warren did not listen on %d within %.0fs:\n%s"
                            % (port, START_TIMEOUT, broker.stderr()))
            time.sleep(0.05)
    broker.tmp = tmp
    return broker


@pytest.fixture(scope="session")
def broker():
    if EXTERNAL_URL:
        yield Broker(EXTERNAL_URL)
        return
    b = start_warren()
    yield b
    b.stop()
    if b.proc is None:
        shutil.rmtree(b.tmp, ignore_errors=True)


@pytest.fixture
def amqp_url(broker):
    return broker.url


@pytest.fixture
def connect(broker):
    """connect(**params) -> pika.BlockingConnection, closed after the test."""
    opened = []

    def _connect(**kw):
        c = broker.connect(**kw)
        opened.append(c)
        return c

    yield _connect
    for c in opened:
        try:
            if c.is_open:
                c.close()
        except Exception:
            pass


@pytest.fixture
def conn(connect):
    return connect()


@pytest.fixture
def ch(conn):
    return conn.channel()


@pytest.fixture
def raw(broker):
    """raw(timeout=5) -> rawamqp.RawConnection, closed after the test."""
    opened = []

    def _raw(timeout=5.0):
        r = broker.raw(timeout)
        opened.append(r)
        return r

    yield _raw
    for r in opened:
        r.close()


@pytest.fixture
def start_broker():
    """start_broker(config_text=None, **settings) -> Broker (warren only).

    Skips when the suite runs against an external broker (AMQP_URL), since a
    broker with custom configuration cannot be started there.
    """
    started = []

    def _start(config_text=None, **settings):
        if EXTERNAL_URL:
            pytest.skip("needs its own warren instance with custom config; "
                        "not possible against AMQP_URL")
        b = start_warren(config_text, **settings)
        started.append(b)
        return b

    yield _start
    for b in started:
        b.stop()
        shutil.rmtree(b.tmp, ignore_errors=True)


@pytest.fixture
def name():
    """name(prefix='t') -> a unique queue/exchange name."""
    return uid


def pytest_configure(config):
    config.addinivalue_line("markers", "warren_only: needs a warren instance "
                            "started with special config (skipped with AMQP_URL)")
