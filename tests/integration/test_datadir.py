"""The data directory's layout (format 2) and the upgrade from format 1
(warren only).

data/v1-datadir was written by warren before vhosts had their own stores
(commit de41c27): a durable topic exchange v1.x, a durable queue v1.q with
x-max-length 100 bound to it with a.#, and five persistent messages
"msg-0".."msg-4" (header i = 0..4) in v1.q, then a clean shutdown.
"""
import json
import os
import shutil
import subprocess

import pika
import pytest

from conftest import start_warren, warren_bin

HERE = os.path.dirname(os.path.abspath(__file__))
V1 = os.path.join(HERE, "data", "v1-datadir")


@pytest.fixture
def warrens(broker):
    if broker.external:
        pytest.skip("warren's own data directory")
    started = []

    def _start(data_dir, **kw):
        b = start_warren(data_dir=data_dir, **kw)
        started.append(b)
        return b

    yield _start
    for b in started:
        b.stop()


def v1_copy(tmp_path, clean=True):
    d = str(tmp_path / "data")
    shutil.copytree(V1, d)
    if not clean:
        os.unlink(os.path.join(d, "clean-shutdown"))
    return d


def check_v1_content(b):
    c = pika.BlockingConnection(pika.URLParameters(b.url))
    ch = c.channel()
    ok = ch.queue_declare("v1.q", passive=True)
    assert ok.method.message_count == 5
    # The exchange and the binding came back too.
    ch.exchange_declare("v1.x", "topic", durable=True, passive=True)
    ch.basic_publish("v1.x", "a.z", b"new", pika.BasicProperties(delivery_mode=2))
    bodies = []
    for _ in range(6):
        m, p, body = ch.basic_get("v1.q", auto_ack=True)
        assert m is not None
        bodies.append(body)
        if body != b"new":
            assert p.headers == {"i": int(body[4:])}
    assert bodies == [b"msg-%d" % i for i in range(5)] + [b"new"]
    # Its arguments too: x-max-length 100 is equivalent, 99 is not.
    ch.queue_declare("v1.q", durable=True, arguments={"x-max-length": 100})
    c.close()


def layout(d):
    with open(os.path.join(d, "FORMAT")) as f:
        fmt = f.read()
    with open(os.path.join(d, "broker.json")) as f:
        meta = json.load(f)
    return fmt, meta


@pytest.mark.parametrize("clean", [True, False])
def test_upgrade_from_format_1(warrens, tmp_path, clean):
    d = v1_copy(tmp_path, clean)
    b = warrens(d)
    check_v1_content(b)
    fmt, meta = layout(d)
    assert fmt == "2\n"
    assert [(v["name"], v["id"]) for v in meta["vhosts"]] == [("/", 1)]
    assert not os.path.exists(os.path.join(d, "meta.log"))
    assert not os.path.exists(os.path.join(d, "msgs"))
    assert os.path.exists(os.path.join(d, "vhosts", "1", "meta.log"))
    assert "upgraded the data directory to format 2" in b.stderr()
    b.stop()
    # And it starts again from the new layout, with nothing to upgrade.
    b = warrens(d)
    c = pika.BlockingConnection(pika.URLParameters(b.url))
    assert c.channel().queue_declare("v1.q", passive=True).method.message_count == 0
    c.close()
    assert "upgraded" not in b.stderr()


@pytest.mark.parametrize("done", ["msgs", "msgs+meta.log"])
def test_interrupted_upgrade_resumes(warrens, tmp_path, done):
    # A crash in the middle of the upgrade: some renames happened, FORMAT
    # was not written yet.
    d = v1_copy(tmp_path)
    os.makedirs(os.path.join(d, "vhosts", "1"))
    for name in done.split("+"):
        os.rename(os.path.join(d, name), os.path.join(d, "vhosts", "1", name))
    b = warrens(d)
    check_v1_content(b)
    assert layout(d)[0] == "2\n"


def test_fresh_directory_gets_the_default_vhost(warrens, tmp_path):
    d = str(tmp_path / "data")
    b = warrens(d, default_vhost="tenant-a")
    fmt, meta = layout(d)
    assert fmt == "2\n"
    assert [(v["name"], v["id"], v["description"]) for v in meta["vhosts"]] == [
        ("tenant-a", 1, "Default virtual host")]
    url = b.url.rstrip("/") + "/tenant-a"
    pika.BlockingConnection(pika.URLParameters(url)).close()
    b.stop()
    # default_vhost applies on the first start only, as in RabbitMQ.
    b = warrens(d, default_vhost="other")
    assert [v["name"] for v in layout(d)[1]["vhosts"]] == ["tenant-a"]
    pika.BlockingConnection(pika.URLParameters(b.url.rstrip("/") + "/tenant-a")).close()


def test_directory_of_a_deleted_vhost_is_removed(warrens, tmp_path):
    # A crash after broker.json dropped a vhost but before its directory
    # went: the next start finishes the delete.
    d = str(tmp_path / "data")
    warrens(d).stop()
    orphan = os.path.join(d, "vhosts", "7", "msgs")
    os.makedirs(orphan)
    open(os.path.join(orphan, "00000001.seg"), "wb").close()
    b = warrens(d)
    assert not os.path.exists(os.path.join(d, "vhosts", "7"))
    assert os.path.exists(os.path.join(d, "vhosts", "1"))
    assert "the data of a deleted vhost" in b.stderr()


def run_warren(d, tmp_path):
    return subprocess.run([warren_bin(), "--data-dir", d, "--listen", "127.0.0.1:0"],
                          capture_output=True, text=True, timeout=20)


def test_unknown_format_is_refused(warrens, tmp_path):
    d = str(tmp_path / "data")
    os.makedirs(d)
    with open(os.path.join(d, "FORMAT"), "w") as f:
        f.write("3\n")
    r = run_warren(d, tmp_path)
    assert r.returncode == 1
    assert "unknown data directory format (this warren reads 2)" in r.stderr


def test_corrupt_broker_json_is_refused(warrens, tmp_path):
    d = str(tmp_path / "data")
    warrens(d).stop()
    with open(os.path.join(d, "broker.json"), "w") as f:
        f.write('{"vhosts": [')
    r = run_warren(d, tmp_path)
    assert r.returncode == 1
    assert "broker.json:1:" in r.stderr
