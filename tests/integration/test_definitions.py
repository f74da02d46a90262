"""Definitions import and export in RabbitMQ's JSON format (warren only;
the file in data/ was exported by Debian's RabbitMQ 3.10.8, and warren's
own export was imported back into that RabbitMQ when this was written,
see docs/compatibility.md)."""
import json
import os

import pika
import pytest

from conftest import start_warren

HERE = os.path.dirname(os.path.abspath(__file__))
RABBIT_DEFS = os.path.join(HERE, "data", "rabbitmq-3.10.8-definitions.json")


def normalize(d):
    """Definitions as sets of objects, with the shapes RabbitMQ writes two
    ways (vhost tags "" or [], operator policy definitions as pairs or an
    object) made one."""
    out = {}
    for k in ("users", "vhosts", "permissions", "topic_permissions", "policies", "queues",
              "exchanges", "bindings", "parameters"):
        items = []
        for i in d.get(k, []):
            i = dict(i)
            if k == "vhosts":
                md = dict(i.get("metadata", {}))
                md["tags"] = md.get("tags") or []
                i["metadata"] = md
            if k == "parameters" and i.get("component") == "operator_policy":
                v = dict(i["value"])
                if isinstance(v["definition"], list):
                    v["definition"] = {p[0]: p[1] for p in v["definition"]}
                i["value"] = v
            items.append(json.dumps(i, sort_keys=True))
        out[k] = sorted(items)
    return out


@pytest.fixture
def fresh(broker, tmp_path):
    if broker.external:
        pytest.skip("warren's definitions import")
    b = start_warren(data_dir=str(tmp_path / "data"))
    yield b
    b.stop()


def load(path):
    with open(path) as f:
        return f.read()


def test_rabbitmq_export_imports_and_exports_back_equivalent(fresh):
    text = load(RABBIT_DEFS)
    r = fresh.ctl("import_definitions", text)
    assert r["ok"], r
    out = fresh.ctl("export_definitions")["definitions"]
    assert normalize(out) == normalize(json.loads(text))
    # guest now has RabbitMQ's hash of "guest": it still logs in.
    fresh.connect().close()
    # A user from the file logs in on its vhost... its password is not in
    # the file, but its permissions and limits are.
    r = fresh.ctl("list_user_limits", user="duser")
    assert r["message"] == '{"max-channels":7}'
    r = fresh.ctl("list_queues", "name", "arguments", "policy", "operator_policy", vhost="dfv")
    assert ["dq1", {"x-dead-letter-exchange": "dx", "x-max-priority": 5,
                    "x-queue-type": "classic"}, "ttlpol", "oppol"] in r["rows"]
    # Importing the same file again changes nothing.
    assert fresh.ctl("import_definitions", text)["ok"]
    assert normalize(fresh.ctl("export_definitions")["definitions"]) == normalize(out)


def test_definitions_survive_a_restart(tmp_path):
    b = start_warren(data_dir=str(tmp_path / "data"))
    try:
        assert b.ctl("import_definitions", load(RABBIT_DEFS))["ok"]
        before = b.ctl("export_definitions")["definitions"]
        b.stop()
        b = start_warren(data_dir=str(tmp_path / "data"))
        after = b.ctl("export_definitions")["definitions"]
        # Non-durable queues and exchanges are gone after a restart, as in
        # RabbitMQ; everything else is the same.
        for k in ("queues", "exchanges", "bindings"):
            before[k] = [o for o in before[k] if o.get("durable", True)]
            after[k] = [o for o in after[k] if o.get("durable", True)]
        before["bindings"] = after["bindings"] = []
        assert normalize(after) == normalize(before)
    finally:
        b.stop()


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d["policies"].append({"vhost": "newvh", "name": "bad", "pattern": "^x",
                                     "apply-to": "queues", "definition": {"bogus-key": 1},
                                     "priority": 0}),
     "policy 'bad' in vhost 'newvh'"),
    (lambda d: d["bindings"].append({"source": "amq.direct", "vhost": "newvh",
                                     "destination": "missing", "destination_type": "queue",
                                     "routing_key": "k", "arguments": {}}),
     "no queue 'missing'"),
    (lambda d: d["users"].append({"name": "badhash", "password_hash": "!!",
                                  "hashing_algorithm": "rabbit_password_hashing_sha256",
                                  "tags": []}),
     "user 'badhash'"),
    (lambda d: d["queues"].append({"name": "q", "vhost": "newvh", "durable": True,
                                   "auto_delete": False,
                                   "arguments": {"x-max-length": "ten"}}),
     "queue 'q' in vhost 'newvh'"),
    (lambda d: d["permissions"].append({"user": "nobody", "vhost": "newvh", "configure": ".*",
                                        "write": ".*", "read": ".*"}),
     "user 'nobody' does not exist"),
    (lambda d: d["exchanges"].append({"name": "x", "vhost": "newvh", "type": "nosuchtype",
                                      "durable": True, "auto_delete": False, "arguments": {}}),
     "unknown type 'nosuchtype'"),
], ids=["policy", "binding", "hash", "queue-args", "permission-user", "exchange-type"])
def test_a_bad_object_refuses_the_whole_file(fresh, mutate, message):
    d = {"vhosts": [{"name": "newvh"}], "users": [], "permissions": [], "policies": [],
         "queues": [{"name": "good", "vhost": "newvh", "durable": True, "auto_delete": False,
                     "arguments": {}}],
         "exchanges": [], "bindings": []}
    mutate(d)
    r = fresh.ctl("import_definitions", json.dumps(d))
    assert not r["ok"] and r["exit"] == 65
    assert message in r["error"], r
    # Nothing was applied: no vhost, no queue.
    vhosts = [row[0] for row in fresh.ctl("list_vhosts")["rows"]]
    assert "newvh" not in vhosts


def test_bad_json_is_refused(fresh):
    r = fresh.ctl("import_definitions", '{"vhosts": [')
    assert not r["ok"] and "not valid JSON" in r["error"]


def test_load_definitions_at_boot(broker, tmp_path):
    if broker.external:
        pytest.skip("warren's configuration")
    defs = tmp_path / "defs.json"
    defs.write_text(json.dumps({
        "vhosts": [{"name": "boot"}],
        "users": [{"name": "booter", "password_hash":
                   "NCwvCdvgAjIdp7EJG6NyMkuMADsySWq8RXzSWiTlzr2NVTb4",
                   "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []}],
        "permissions": [{"user": "booter", "vhost": "boot", "configure": ".*", "write": ".*",
                         "read": ".*"}],
        "queues": [{"name": "bq", "vhost": "boot", "durable": True, "auto_delete": False,
                    "arguments": {"x-max-length": 5}}]}))
    b = start_warren(load_definitions=str(defs))
    try:
        p = b.params(virtual_host="boot", credentials=pika.PlainCredentials("booter", "guest"))
        c = pika.BlockingConnection(p)
        ch = c.channel()
        ch.queue_declare("bq", durable=True, arguments={"x-max-length": 5})
        c.close()
    finally:
        b.stop()
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    import subprocess
    from conftest import warren_bin
    r = subprocess.run([warren_bin(), "--data-dir", str(tmp_path / "d2"), "--listen",
                        "127.0.0.1:0", "--set", "load_definitions=%s" % bad],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 1 and "cannot load definitions" in r.stderr
