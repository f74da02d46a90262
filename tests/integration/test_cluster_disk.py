"""A disk fault on one node of a 3-node cluster (tests/integration/
cluster.py): node 3's data directory is a 24 MB tmpfs (root only: mount),
and publishing persistent messages to a quorum queue led by node 1 fills
it (ENOSPC on node 3's Raft log).

- The queue stays up: every publish through node 1 is confirmed by the
  majority (nodes 1 and 2) while node 3 cannot write, and node 3 stays up.
- EIO: node 3's quorum queue logs are on tests/integration/eiofs.py (a
  FUSE pass-through that fails every write with EIO while a switch file
  exists; root, /dev/fuse, python3-fusepy): publishes through node 1 are
  confirmed by the majority, node 3 stays up and does not log them, and a
  restart with a healthy disk catches it up.
- Known bugs, found here and recorded as expected failures: node 3's member
  does not resume once space is back (libraft's raft_uv keeps the failed
  write's error; a restart catches it up), and SIGTERM of the node after
  the fault aborts in libuv's close path (uv__finish_close) instead of
  exiting 0.
"""
import os
import shutil
import subprocess
import time

import pika
import pytest

from cluster import Cluster, wait_until
from helpers import uid

pytestmark = [
    pytest.mark.skipif(bool(os.environ.get("AMQP_URL")), reason="starts its own warren cluster"),
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mount") is None,
                       reason="mounts a tmpfs (root only)"),
]

BODY = b"d" * 100_000
FILL = 350  # 35 MB of log: more than the 24 MB tmpfs


def mount_small(path, size="24m"):
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0700" % size, "tmpfs", path],
                   check=True)


def remount(path, size):
    subprocess.run(["mount", "-o", "remount,size=%s" % size, path], check=True)


@pytest.fixture
def full(request):
    """A cluster whose node 3 ran out of disk space; (cluster, queue)."""
    c = Cluster(3, netns=False, start=False)
    n3 = c.nodes[2]
    mount_small(n3.data_dir)
    try:
        c.start()
        q = uid("disk")
        with c.nodes[0].connect() as conn:
            conn.channel().queue_declare(q, durable=True, arguments={"x-queue-type": "quorum"})
        assert c.leader(q) == c.nodes[0].name
        with c.nodes[0].connect() as conn:
            ch = conn.channel()
            ch.confirm_delivery()
            for _ in range(FILL):
                ch.basic_publish("", q, BODY, pika.BasicProperties(delivery_mode=2))
        yield c, q
    finally:
        c.close(keep_tmp=True)
        subprocess.run(["umount", "-l", n3.data_dir], check=False)
        shutil.rmtree(c.tmp, ignore_errors=True)


def test_enospc_on_one_node_queue_stays_up(full):
    c, q = full
    n1, n2, n3 = c.nodes
    # Every publish above was confirmed (basic_publish raises otherwise);
    # node 3 really is out of space, and still running.
    st = os.statvfs(n3.data_dir)
    assert st.f_bavail * st.f_frsize < len(BODY) * 20
    assert n3.running
    wait_until(lambda: n1.queues()[q]["messages"] == FILL and n2.queues()[q]["messages"] == FILL,
               15, 0.2, "the majority counting %d" % FILL)
    # Consumers through the majority get every message.
    with n2.connect() as conn:
        ch = conn.channel()
        got = 0
        while got < FILL:
            m, _p, body = ch.basic_get(q, auto_ack=True)
            assert m is not None, "only %d of %d" % (got, FILL)
            assert body == BODY
            got += 1
    # A restart of node 3 with space back catches it up.
    remount(n3.data_dir, "400m")
    n3.kill()
    n3.start()
    wait_until(lambda: n3.queues()[q]["messages"] == 0, 20, 0.3, "node 3 caught up")


@pytest.mark.xfail(reason="known bug: after ENOSPC, a member does not resume when space is "
                   "back (raft_uv keeps its write error); a restart catches it up",
                   strict=False)
def test_enospc_node_resumes_without_restart(full):
    c, q = full
    n3 = c.nodes[2]
    remount(n3.data_dir, "400m")
    with c.nodes[0].connect() as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        ch.basic_publish("", q, b"after", pika.BasicProperties(delivery_mode=2))
    wait_until(lambda: n3.queues()[q]["messages"] == FILL + 1, 15, 0.3, "node 3 resumed")


@pytest.mark.xfail(reason="known bug: SIGTERM after ENOSPC aborts in libuv "
                   "(uv__finish_close) while raft_uv closes its failed writer",
                   strict=False)
def test_enospc_node_exits_cleanly(full):
    c, _q = full
    assert c.nodes[2].stop() == 0


# ---- EIO: node 3's data directory on a FUSE file system that fails writes ----

EIOFS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "eiofs.py")


def fuse_available():
    try:
        import fusepy  # noqa: F401 - Debian's python3-fusepy
    except ImportError:
        return False
    return os.path.exists("/dev/fuse")


@pytest.fixture
def eio():
    """A cluster whose node 3 keeps its quorum queue logs (the default
    vhost's, DATA/vhosts/1/quorum) on eiofs; (cluster, switch file)."""
    if not fuse_available():
        pytest.skip("needs /dev/fuse and python3-fusepy")
    c = Cluster(3, netns=False, start=False)
    n3 = c.nodes[2]
    backing = os.path.join(c.tmp, "n3-backing")
    switch = os.path.join(c.tmp, "EIO")
    mnt = os.path.join(n3.data_dir, "vhosts", "1", "quorum")
    os.makedirs(backing)
    os.makedirs(mnt)
    fs = subprocess.Popen(["/usr/bin/python3", EIOFS, backing, mnt, switch],
                          stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: os.path.ismount(mnt), 10, 0.1, "eiofs mounted")
        c.start()
        yield c, switch
    finally:
        c.close(keep_tmp=True)
        subprocess.run(["umount", "-l", mnt], check=False)
        fs.terminate()
        fs.wait(10)
        shutil.rmtree(c.tmp, ignore_errors=True)


def test_eio_on_one_node_queue_stays_up(eio):
    """Every write to node 3's quorum queue logs fails with EIO: its member
    cannot log,
    but publishes through node 1 are confirmed by nodes 1 and 2, consumers
    get them, and node 3 stays up; a restart with a healthy disk catches it
    up."""
    c, switch = eio
    n1, n2, n3 = c.nodes
    q = uid("eio")
    with n1.connect() as conn:
        conn.channel().queue_declare(q, durable=True, arguments={"x-queue-type": "quorum"})
    assert c.leader(q) == n1.name
    publish_n = 200
    with n1.connect() as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        for i in range(20):
            ch.basic_publish("", q, b"before-%d" % i, pika.BasicProperties(delivery_mode=2))
    wait_until(lambda: n3.queues()[q]["messages"] == 20, 15, 0.2, "node 3 has the first 20")
    open(switch, "w").close()  # from here on node 3's disk fails
    with n1.connect() as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        for i in range(publish_n):
            ch.basic_publish("", q, b"during-%d" % i, pika.BasicProperties(delivery_mode=2))
    assert n3.running, "node 3 died of EIO:\n" + n3.stderr()[-2000:]
    wait_until(lambda: n2.queues()[q]["messages"] == 20 + publish_n, 15, 0.2,
               "the majority counting every message")
    # Node 3 really could not log them (not merely late).
    time.sleep(2)
    assert n3.queues()[q]["messages"] < 20 + publish_n, n3.stderr()[-2000:]
    with n2.connect() as conn:
        ch = conn.channel()
        for _ in range(20 + publish_n):
            m, _p, _body = ch.basic_get(q, auto_ack=True)
            assert m is not None
    assert n3.running
    # The disk heals; a restart of node 3 catches it up.
    os.unlink(switch)
    n3.kill()
    n3.start()
    wait_until(lambda: n3.queues()[q]["messages"] == 0, 20, 0.3, "node 3 caught up")
