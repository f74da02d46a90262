"""RabbitMQ's own command-line client, rabbitmqadmin (shipped inside the
management plugin), against warren's management API.

rabbitmqadmin is looked for in $RABBITMQADMIN, on $PATH, and where Debian's
rabbitmq-server package puts it
(/usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins/rabbitmq_management-*/priv/www/cli/);
the tests skip when it is not installed.  By default they start their own
warren with the management listener on a free port; with MGMT_URL and
AMQP_URL set they run against that broker instead (the expected outputs were
taken from RabbitMQ 3.10.8, whose statistics lag by up to
collect_statistics_interval, hence the waits).
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.parse

import pika
import pytest

from conftest import free_port, start_warren
from helpers import uid, wait_until

MGMT_URL = os.environ.get("MGMT_URL")
AMQP_URL = os.environ.get("AMQP_URL")
STATS_TIMEOUT = 20  # RabbitMQ: a few collect_statistics_interval periods


def find_rabbitmqadmin():
    cands = [os.environ.get("RABBITMQADMIN"), shutil.which("rabbitmqadmin")]
    cands += sorted(glob.glob("/usr/lib/rabbitmq/lib/rabbitmq_server-*/plugins/"
                              "rabbitmq_management-*/priv/www/cli/rabbitmqadmin"))
    for c in cands:
        if c and os.path.isfile(c):
            return c
    return None


RABBITMQADMIN = find_rabbitmqadmin()

pytestmark = pytest.mark.skipif(
    RABBITMQADMIN is None,
    reason="rabbitmqadmin not installed (it comes with Debian's rabbitmq-server "
           "package, or set RABBITMQADMIN=/path/to/rabbitmqadmin)")


class Admin:
    def __init__(self, host, port, amqp_url, broker=None):
        self.host, self.port, self.amqp_url, self.broker = host, port, amqp_url, broker

    def run(self, *args, check=True, user="guest", password="guest"):
        """Runs rabbitmqadmin; returns (returncode, stdout, stderr)."""
        cmd = [sys.executable, RABBITMQADMIN, "-H", self.host, "-P", str(self.port),
               "-u", user, "-p", password] + list(args)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if check:
            assert p.returncode == 0, (cmd, p.returncode, p.stdout, p.stderr)
        return p.returncode, p.stdout, p.stderr

    def out(self, *args, **kw):
        return self.run(*args, **kw)[1]

    def table(self, *args, **kw):
        """The default (table) output as (header, rows), each a list of cells."""
        lines = [ln for ln in self.out(*args, **kw).splitlines() if ln.startswith("|")]
        cells = [[c.strip() for c in ln.strip()[1:-1].split("|")] for ln in lines]
        return (cells[0], cells[1:]) if cells else ([], [])

    def raw(self, *args, **kw):
        return json.loads(self.out("-f", "raw_json", *args, **kw))

    def connect(self, **kw):
        p = pika.URLParameters(self.amqp_url)
        for k, v in kw.items():
            setattr(p, k, v)
        return pika.BlockingConnection(p)


@pytest.fixture(scope="module")
def admin():
    if MGMT_URL:
        if not AMQP_URL:
            pytest.skip("MGMT_URL needs AMQP_URL (the same broker's AMQP listener)")
        u = urllib.parse.urlparse(MGMT_URL)
        yield Admin(u.hostname, u.port, AMQP_URL)
        return
    if AMQP_URL:
        pytest.skip("AMQP_URL names another broker: set MGMT_URL to its management "
                    "listener to run rabbitmqadmin against it")
    port = free_port()
    b = start_warren(**{"management.tcp.port": port})
    yield Admin("127.0.0.1", port, b.url, b)
    b.stop()
    shutil.rmtree(b.tmp, ignore_errors=True)


def queue_row(admin, q):
    """(name, messages) row of `list queues` for q, or None."""
    header, rows = admin.table("list", "queues")
    assert header in (["name", "messages"], [])  # [] when it prints "No items"
    return next((r for r in rows if r[0] == q), None)


def test_list_exchanges_vhosts_users(admin):
    header, rows = admin.table("list", "exchanges")
    assert header == ["name", "type"]
    for row in (["", "direct"], ["amq.direct", "direct"], ["amq.fanout", "fanout"],
                ["amq.headers", "headers"], ["amq.match", "headers"],
                ["amq.topic", "topic"]):
        assert row in rows, (row, rows)
    header, rows = admin.table("list", "vhosts")
    assert header == ["name", "messages"] and "/" in [r[0] for r in rows]
    header, rows = admin.table("list", "users")
    assert header == ["name", "hashing_algorithm", "password_hash", "tags"]
    guest = [r for r in rows if r[0] == "guest"][0]
    assert guest[1] == "rabbit_password_hashing_sha256" and guest[2]
    assert guest[3] == "administrator"
    header, rows = admin.table("show", "overview")
    assert header == ["rabbitmq_version", "cluster_name", "queue_totals.messages",
                      "object_totals.queues"]
    assert rows[0][0] == "3.10.8"


def test_queue_exchange_binding_publish_get_purge_delete(admin):
    q, x = uid("ra-q"), uid("ra-x")
    assert admin.out("declare", "queue", "name=" + q, "durable=true") == "queue declared\n"
    # Declaring it again with the same properties is fine.
    assert admin.out("declare", "queue", "name=" + q, "durable=true") == "queue declared\n"
    assert admin.out("declare", "exchange", "name=" + x, "type=topic") == "exchange declared\n"
    assert admin.out("declare", "binding", "source=" + x, "destination=" + q,
                     "routing_key=ra.#") == "binding declared\n"
    lines = admin.out("-f", "tsv", "list", "bindings").splitlines()
    assert lines[0] == "source\tdestination\trouting_key"
    assert "%s\t%s\tra.#" % (x, q) in lines and "\t%s\t%s" % (q, q) in lines
    header, rows = admin.table("list", "exchanges")
    assert [x, "topic"] in rows
    assert admin.out("publish", "exchange=" + x, "routing_key=ra.one",
                     "payload=hello") == "Message published\n"
    assert admin.out("publish", "routing_key=" + q, "payload=world") == "Message published\n"
    assert admin.out("publish", "routing_key=nowhere-" + q,
                     "payload=x") == "Message published but NOT routed\n"
    assert wait_until(lambda: queue_row(admin, q) == [q, "2"], timeout=STATS_TIMEOUT), \
        queue_row(admin, q)
    lines = admin.out("-f", "tsv", "list", "queues", "name", "messages", "durable").splitlines()
    assert lines[0] == "name\tmessages\tdurable" and "%s\t2\tTrue" % q in lines
    # get (rabbitmqadmin sends count as the string "1").
    header, rows = admin.table("get", "queue=" + q, "ackmode=ack_requeue_false")
    assert header == ["routing_key", "exchange", "message_count", "payload", "payload_bytes",
                      "payload_encoding", "properties", "redelivered"]
    assert rows == [["ra.one", x, "1", "hello", "5", "string", "", "False"]]
    ms = admin.raw("get", "queue=" + q, "ackmode=ack_requeue_true")
    assert ms == [{"payload_bytes": 5, "redelivered": False, "exchange": "", "routing_key": q,
                   "message_count": 0, "properties": [], "payload": "world",
                   "payload_encoding": "string"}]
    ms = admin.raw("get", "queue=" + q, "ackmode=ack_requeue_true", "count=5")
    assert [(m["payload"], m["redelivered"]) for m in ms] == [("world", True)]
    assert admin.out("purge", "queue", "name=" + q) == "queue purged\n"
    assert wait_until(lambda: queue_row(admin, q) == [q, "0"], timeout=STATS_TIMEOUT), \
        queue_row(admin, q)
    assert admin.raw("get", "queue=" + q, "ackmode=ack_requeue_false") == []
    assert admin.out("delete", "queue", "name=" + q) == "queue deleted\n"
    rc, out, err = admin.run("delete", "queue", "name=" + q, check=False)
    assert rc == 1 and "*** Not found: /api/queues/%%2F/%s" % q in out + err
    assert queue_row(admin, q) is None
    assert admin.out("delete", "exchange", "name=" + x) == "exchange deleted\n"
    assert [x, "topic"] not in admin.table("list", "exchanges")[1]


def test_raw_json_list_queues(admin):
    q = uid("ra-j")
    admin.out("declare", "queue", "name=" + q, "durable=false", 'arguments={"x-max-length": 7}')
    qs = admin.raw("list", "queues")
    assert isinstance(qs, list)
    o = [x for x in qs if x["name"] == q][0]
    assert (o["vhost"], o["durable"], o["auto_delete"], o["exclusive"], o["arguments"]) == (
        "/", False, False, False, {"x-max-length": 7})
    assert wait_until(lambda: [x.get("messages") for x in admin.raw("list", "queues")
                               if x["name"] == q] == [0], timeout=STATS_TIMEOUT)
    rows = admin.raw("list", "queues", "name", "messages")
    assert {"name": q, "messages": 0} in rows
    assert all(set(r) <= {"name", "messages"} for r in rows)
    admin.out("delete", "queue", "name=" + q)


def test_users_vhosts_permissions(admin):
    u, vh = uid("ra-user"), uid("ra-vh")
    assert admin.out("declare", "user", "name=" + u, "password=pw",
                     "tags=monitoring") == "user declared\n"
    assert admin.out("declare", "vhost", "name=" + vh) == "vhost declared\n"
    assert admin.out("declare", "permission", "vhost=" + vh, "user=" + u, "configure=.*",
                     "write=.*", "read=^x") == "permission declared\n"
    header, rows = admin.table("list", "users", "name", "tags")
    assert header == ["name", "tags"] and [u, "monitoring"] in rows
    assert vh in [r[0] for r in admin.table("list", "vhosts")[1]]
    perms = admin.raw("list", "permissions")
    assert {"user": u, "vhost": vh, "configure": ".*", "write": ".*", "read": "^x"} in perms
    # The new user logs in (monitoring users may read everything).
    assert vh in [r[0] for r in admin.table("list", "vhosts", user=u, password="pw")[1]]
    rc, out, err = admin.run("list", "vhosts", user=u, password="wrong", check=False)
    assert rc == 1 and "*** Access refused: /api/vhosts?columns=name,messages" in out + err
    assert admin.out("delete", "permission", "vhost=" + vh, "user=" + u) == "permission deleted\n"
    assert not [p for p in admin.raw("list", "permissions") if p["user"] == u]
    assert admin.out("delete", "user", "name=" + u) == "user deleted\n"
    assert admin.out("delete", "vhost", "name=" + vh) == "vhost deleted\n"
    assert u not in [r[0] for r in admin.table("list", "users")[1]]


def test_export_import_round_trip(admin, tmp_path):
    q, x, u = uid("ra-eq"), uid("ra-ex"), uid("ra-eu")
    admin.out("declare", "queue", "name=" + q, "durable=true", 'arguments={"x-max-length": 7}')
    admin.out("declare", "exchange", "name=" + x, "type=fanout")
    admin.out("declare", "binding", "source=" + x, "destination=" + q)
    admin.out("declare", "user", "name=" + u, "password=pw", "tags=management")
    f = str(tmp_path / "defs.json")
    assert admin.out("export", f) == 'Exported definitions for %s to "%s"\n' % (admin.host, f)
    with open(f) as fh:
        d = json.load(fh)
    for k in ("rabbit_version", "users", "vhosts", "permissions", "queues", "exchanges",
              "bindings", "policies", "parameters", "global_parameters"):
        assert k in d, k
    assert {"name": q, "vhost": "/", "durable": True, "auto_delete": False,
            "arguments": {"x-max-length": 7}} in [
        {k: v for k, v in o.items() if k != "type"} for o in d["queues"]]
    assert [(e["type"], e["durable"]) for e in d["exchanges"] if e["name"] == x] == [
        ("fanout", True)]
    assert [(b["source"], b["destination_type"], b["routing_key"]) for b in d["bindings"]
            if b["destination"] == q] == [(x, "queue", "")]
    assert [usr["tags"] for usr in d["users"] if usr["name"] == u] in (
        ["management"], [["management"]])
    admin.out("delete", "queue", "name=" + q)
    admin.out("delete", "exchange", "name=" + x)
    admin.out("delete", "user", "name=" + u)
    assert admin.out("import", f).startswith('Uploaded definitions from "%s" to %s.'
                                             % (admin.host, f))
    o = [o for o in admin.raw("list", "queues") if o["name"] == q]
    assert [(o["durable"], o["arguments"]) for o in o] == [(True, {"x-max-length": 7})]
    assert [x, "fanout"] in admin.table("list", "exchanges")[1]
    assert [x, q, ""] in admin.table("list", "bindings")[1]
    assert u in [r[0] for r in admin.table("list", "users")[1]]
    # Per vhost (-V): no users in the file, no "vhost" keys in its objects.
    fv = str(tmp_path / "vhost.json")
    admin.out("-V", "/", "export", fv)
    with open(fv) as fh:
        dv = json.load(fh)
    assert "users" not in dv and "vhosts" not in dv
    assert [o.get("vhost") for o in dv["queues"] if o["name"] == q] == [None]
    admin.out("delete", "queue", "name=" + q)
    admin.out("-V", "/", "import", fv)
    assert q in [o["name"] for o in admin.raw("list", "queues")]
    admin.out("delete", "queue", "name=" + q)
    admin.out("delete", "exchange", "name=" + x)
    admin.out("delete", "user", "name=" + u)


def test_list_and_close_connection(admin):
    cname = uid("ra-conn")
    c = admin.connect(client_properties={"connection_name": cname})
    c.channel()

    def mine():
        return [k for k in admin.raw("list", "connections")
                if k.get("user_provided_name") == cname]
    assert wait_until(lambda: [k["channels"] for k in mine()] == [1], timeout=STATS_TIMEOUT), \
        mine()
    name = mine()[0]["name"]
    header, rows = admin.table("list", "connections")
    assert header == ["name", "user", "channels"] and [name, "guest", "1"] in rows
    lines = admin.out("-f", "tsv", "list", "connections", "name", "user",
                      "user_provided_name").splitlines()
    assert lines[0] == "name\tuser\tuser_provided_name"
    assert "%s\tguest\t%s" % (name, cname) in lines
    assert admin.out("close", "connection", "name=" + name) == "connection closed\n"
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as ei:
        deadline = time.time() + 10
        while time.time() < deadline:
            c.process_data_events(time_limit=0.2)
    assert ei.value.reply_code == 320
    assert ei.value.reply_text == "CONNECTION_FORCED - Closed via management plugin"
    assert wait_until(lambda: not mine(), timeout=STATS_TIMEOUT)
    rc, out, err = admin.run("close", "connection", "name=" + name, check=False)
    assert rc == 1 and "*** Not found: /api/connections/" in out + err
