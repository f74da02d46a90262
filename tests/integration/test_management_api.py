"""The management HTTP server: authentication, keep-alive, pipelining,
limits, and the first listings (warren only: it starts its own broker;
test_management_rest.py covers every endpoint, against RabbitMQ too)."""
import base64
import http.client
import json
import socket

import pytest

from conftest import free_port, start_warren
from helpers import uid


@pytest.fixture(scope="module")
def mgmt(broker):
    if broker.external:
        pytest.skip("warren's management listener")
    port = free_port()
    b = start_warren(**{"management.tcp.port": port})
    b.mgmt_port = port
    yield b
    b.stop()


def get(b, path, user="guest", password="guest", conn=None):
    c = conn or http.client.HTTPConnection("127.0.0.1", b.mgmt_port, timeout=5)
    auth = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    c.request("GET", path, headers={"Authorization": "Basic " + auth})
    r = c.getresponse()
    body = r.read()
    return r, json.loads(body) if body else None


def test_overview_and_whoami(mgmt):
    r, o = get(mgmt, "/api/overview")
    assert r.status == 200 and r.getheader("Content-Type") == "application/json"
    assert o["product_name"] == "warren" and o["rabbitmq_version"] == "3.10.8"
    assert set(o["object_totals"]) == {"connections", "channels", "exchanges", "queues",
                                       "consumers"}
    assert {"messages", "messages_ready", "messages_unacknowledged",
            "messages_details"} <= set(o["queue_totals"])
    r, w = get(mgmt, "/api/whoami")
    assert w == {"name": "guest", "tags": ["administrator"]}


def test_authentication_and_tags(mgmt):
    r, e = get(mgmt, "/api/whoami", password="wrong")
    assert r.status == 401 and e == {"error": "not_authorized", "reason": "Login failed"}
    assert r.getheader("WWW-Authenticate", "").startswith("Basic")
    c = http.client.HTTPConnection("127.0.0.1", mgmt.mgmt_port, timeout=5)
    c.request("GET", "/api/overview")
    assert c.getresponse().status == 401
    user = uid("plain")
    assert mgmt.ctl("add_user", user, "pw")["ok"]
    r, e = get(mgmt, "/api/whoami", user, "pw")
    assert r.status == 401 and e["reason"] == "Not management user"
    # A management user sees the vhosts it has permissions on, no others.
    vh = uid("vh")
    assert mgmt.ctl("add_vhost", vh)["ok"]
    assert mgmt.ctl("set_user_tags", user, "management")["ok"]
    r, vs = get(mgmt, "/api/vhosts", user, "pw")
    assert r.status == 200 and vs == []
    assert mgmt.ctl("set_permissions", user, ".*", ".*", ".*", vhost=vh)["ok"]
    r, vs = get(mgmt, "/api/vhosts", user, "pw")
    assert [v["name"] for v in vs] == [vh]
    r, vs = get(mgmt, "/api/vhosts")
    assert {"/", vh} <= {v["name"] for v in vs}


def test_queues(mgmt):
    c = mgmt.connect()
    ch = c.channel()
    q = uid("api")
    ch.queue_declare(q, durable=True, arguments={"x-max-length": 10})
    for _ in range(3):
        ch.basic_publish("", q, b"abc")
    r, qs = get(mgmt, "/api/queues/%2F")
    mine = [x for x in qs if x["name"] == q]
    assert r.status == 200 and len(mine) == 1
    m = mine[0]
    assert (m["vhost"], m["durable"], m["messages"], m["messages_ready"],
            m["message_bytes"], m["arguments"], m["type"], m["state"]) == (
        "/", True, 3, 3, 9, {"x-max-length": 10}, "classic", "running")
    r, qs2 = get(mgmt, "/api/queues")
    assert any(x["name"] == q for x in qs2)
    r, e = get(mgmt, "/api/queues/no-such-vhost")
    assert r.status == 404 and e == {"error": "Object Not Found", "reason": "Not Found"}
    c.close()


def test_keep_alive_and_pipelining(mgmt):
    c = http.client.HTTPConnection("127.0.0.1", mgmt.mgmt_port, timeout=5)
    for _ in range(5):
        r, _w = get(mgmt, "/api/whoami", conn=c)
        assert r.status == 200
    auth = base64.b64encode(b"guest:guest").decode()
    req = ("GET /api/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Basic %s\r\n\r\n" % auth) * 3
    s = socket.create_connection(("127.0.0.1", mgmt.mgmt_port), timeout=5)
    s.sendall(req.encode())
    data = b""
    while data.count(b"HTTP/1.1 200 OK") < 3:
        chunk = s.recv(65536)
        assert chunk, data
        data += chunk
    s.close()


def raw(b, data):
    s = socket.create_connection(("127.0.0.1", b.mgmt_port), timeout=5)
    s.sendall(data)
    out = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    except socket.timeout:
        pass
    s.close()
    return out


def test_bad_requests(mgmt):
    assert raw(mgmt, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    big = b"GET /api/whoami HTTP/1.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n"
    assert raw(mgmt, big).startswith(b"HTTP/1.1 431 ")
    huge = b"PUT /api/x HTTP/1.1\r\nContent-Length: 20000000\r\n\r\n" + b"x" * 17000000
    assert raw(mgmt, huge).startswith(b"HTTP/1.1 413 ")
    # The server is still there.
    r, _ = get(mgmt, "/api/overview")
    assert r.status == 200


def test_exchanges_bindings_users(mgmt):
    c = mgmt.connect()
    ch = c.channel()
    x, q = uid("apix"), uid("apiq")
    ch.exchange_declare(x, "topic", durable=True)
    ch.queue_declare(q)
    ch.queue_bind(q, x, "a.#")
    r, xs = get(mgmt, "/api/exchanges/%2F")
    mine = [e for e in xs if e["name"] == x]
    assert r.status == 200 and mine and (mine[0]["type"], mine[0]["durable"],
                                         mine[0]["vhost"]) == ("topic", True, "/")
    assert any(e["name"] == "" and e["type"] == "direct" for e in xs)
    r, bs = get(mgmt, "/api/bindings/%2F")
    assert {"source": x, "destination": q, "destination_type": "queue", "routing_key": "a.#",
            "arguments": {}, "vhost": "/", "properties_key": "a.%23"} in bs
    r, us = get(mgmt, "/api/users")
    g = [u for u in us if u["name"] == "guest"][0]
    assert g["tags"] == ["administrator"] and g["hashing_algorithm"].startswith("rabbit_")
    user = uid("mon")
    assert mgmt.ctl("add_user", user, "pw", tags="monitoring")["ok"]
    r, e = get(mgmt, "/api/users", user, "pw")
    assert r.status == 401 and e["reason"] == "Not administrator user"
    r, xs2 = get(mgmt, "/api/exchanges", user, "pw")
    assert r.status == 200 and any(e["name"] == x for e in xs2)
    c.close()
