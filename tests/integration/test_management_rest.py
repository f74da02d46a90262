"""Every endpoint of the management HTTP API, with RabbitMQ's status codes,
bodies and field names (issue 11).

The tests set up what they need through the API itself, so they run
against any broker: by default a warren started here (with a fast
statistics interval); with MGMT_URL=http://HOST:PORT and AMQP_URL set they
run against that broker instead (e.g. Debian's rabbitmq-server with its
management plugin) - see docs/management.md for the differences found.
"""
import base64
import http.client
import json
import os
import time
import urllib.parse

import pika
import pytest

from conftest import free_port, start_warren
from helpers import uid, wait_until

MGMT_URL = os.environ.get("MGMT_URL")
q_ = urllib.parse.quote


class Api:
    def __init__(self, host, port, amqp_url, broker=None):
        self.host, self.port, self.amqp_url, self.broker = host, port, amqp_url, broker
        self.warren = broker is not None

    def req(self, method, path, body=None, user="guest", password="guest", headers=None,
            raw=False):
        c = http.client.HTTPConnection(self.host, self.port, timeout=10)
        h = dict(headers or {})
        if user is not None:
            h["Authorization"] = "Basic " + base64.b64encode(
                ("%s:%s" % (user, password)).encode()).decode()
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read()
        c.close()
        if raw:
            return r, text
        return r, json.loads(text) if text else None

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def put(self, path, body=None, **kw):
        return self.req("PUT", path, body if body is not None else {}, **kw)

    def post(self, path, body=None, **kw):
        return self.req("POST", path, body if body is not None else {}, **kw)

    def delete(self, path, **kw):
        return self.req("DELETE", path, **kw)

    def connect(self, vhost="/", user="guest", password="guest", **kw):
        p = pika.URLParameters(self.amqp_url)
        p.virtual_host = vhost
        p.credentials = pika.PlainCredentials(user, password)
        for k, v in kw.items():
            setattr(p, k, v)
        return pika.BlockingConnection(p)


@pytest.fixture(scope="module")
def api():
    if MGMT_URL:
        u = urllib.parse.urlparse(MGMT_URL)
        yield Api(u.hostname, u.port, os.environ["AMQP_URL"])
        return
    port = free_port()
    b = start_warren(**{"management.tcp.port": port, "collect_statistics_interval": 200})
    yield Api("127.0.0.1", port, b.url, b)
    b.stop()


def rate_wait():
    """Long enough for two statistics samples of the broker under test."""
    time.sleep(0.5 if not MGMT_URL else 11)


def test_auth_and_errors(api):
    r, body = api.req("GET", "/api/overview", user=None, raw=True)
    assert r.status == 401 and body == b""
    assert r.getheader("WWW-Authenticate", "").startswith("Basic")
    r, e = api.get("/api/overview", password="wrong")
    assert r.status == 401 and e == {"error": "not_authorized", "reason": "Login failed"}
    r, e = api.get("/api/nope")
    assert r.status == 404 and e == {"error": "Object Not Found", "reason": "Not Found"}
    r, e = api.get("/api/queues/no-such-vhost")
    assert r.status == 404 and e == {"error": "Object Not Found", "reason": "Not Found"}
    r, body = api.req("POST", "/api/overview", {}, raw=True)
    assert r.status == 405 and body == b""
    assert "GET" in r.getheader("Allow", "") and "POST" not in r.getheader("Allow", "")
    # Tags: a user without any is no management user; monitoring users read
    # everything and change nothing; management users see their vhosts.
    plain, mon, mgr, vh = uid("plain"), uid("mon"), uid("mgr"), uid("vh")
    assert api.put("/api/users/" + plain, {"password": "pw", "tags": ""})[0].status == 201
    assert api.put("/api/users/" + mon, {"password": "pw", "tags": "monitoring"})[0].status == 201
    assert api.put("/api/users/" + mgr, {"password": "pw", "tags": ["management"]})[0].status == 201
    assert api.put("/api/vhosts/" + vh)[0].status == 201
    assert api.put("/api/permissions/%s/%s" % (vh, mgr),
                   {"configure": ".*", "write": ".*", "read": ".*"})[0].status == 201
    r, e = api.get("/api/whoami", user=plain, password="pw")
    assert r.status == 401 and e == {"error": "not_authorised", "reason": "Not management user"}
    r, w = api.get("/api/whoami", user=mon, password="pw")
    assert w == {"name": mon, "tags": ["monitoring"]}
    r, e = api.get("/api/users", user=mon, password="pw")
    assert r.status == 401 and e["reason"] == "Not administrator user"
    r, vs = api.get("/api/vhosts", user=mgr, password="pw")
    assert r.status == 200 and [v["name"] for v in vs] == [vh]
    r, e = api.get("/api/queues/%2F", user=mgr, password="pw")
    assert r.status == 401 and e["reason"] == "User not authorised to access virtual host"
    r, e = api.get("/api/nodes", user=mgr, password="pw")
    assert r.status == 401 and e["reason"] == "Not monitor user"
    r, e = api.put("/api/queues/%s/q" % vh, {}, user=mon, password="pw")
    assert r.status == 401
    assert api.put("/api/queues/%s/q" % vh, {}, user=mgr, password="pw")[0].status == 201
    assert api.delete("/api/vhosts/" + vh)[0].status == 204
    for u in (plain, mon, mgr):
        assert api.delete("/api/users/" + u)[0].status == 204


def test_queue_lifecycle(api):
    q = uid("rq")
    r, body = api.req("PUT", "/api/queues/%2F/" + q, {"durable": True, "arguments": {}}, raw=True)
    assert r.status == 201 and body == b""
    assert api.put("/api/queues/%2F/" + q, {"durable": True})[0].status == 204
    r, e = api.put("/api/queues/%2F/" + q, {"durable": True, "arguments": {"x-max-length": 5}})
    assert r.status == 400 and e["error"] == "bad_request"
    assert e["reason"].startswith("inequivalent arg 'x-max-length' for queue '%s'" % q)
    r, e = api.put("/api/queues/%2F/" + q, {"durable": False})
    assert r.status == 400 and e["reason"] == (
        "inequivalent arg 'durable' for queue '%s' in vhost '/': received 'false' but current "
        "is 'true'" % q)
    r, e = api.put("/api/queues/%2F/amq.foo", {})
    assert r.status == 401 and e == {"error": "not_authorised", "reason": "Access refused."}
    r, e = api.put("/api/queues/nope/x", {})
    assert r.status == 404
    r, e = api.req("PUT", "/api/queues/%2F/" + q, b"{not json")
    assert r.status == 400 and e == {"error": "bad_request", "reason": "not_json"}
    c = api.connect()
    ch = c.channel()
    for i in range(3):
        ch.basic_publish("", q, b"m%d" % i)
    wait_until(lambda: api.get("/api/queues/%2F/" + q)[1].get("messages") == 3, timeout=15)
    r, o = api.get("/api/queues/%2F/" + q)
    for k in ("name", "vhost", "durable", "auto_delete", "exclusive", "arguments", "node",
              "messages", "messages_ready", "messages_unacknowledged", "message_bytes",
              "message_bytes_ready", "message_bytes_unacknowledged", "consumers",
              "consumer_utilisation", "memory", "state", "type", "policy", "operator_policy",
              "effective_policy_definition", "exclusive_consumer_tag", "messages_details",
              "consumer_details", "single_active_consumer_tag"):
        assert k in o, k
    assert (o["messages"], o["message_bytes"], o["policy"], o["state"],
            o["type"]) == (3, 6, None, "running", "classic")
    r, e = api.delete("/api/queues/%%2F/%s?if-empty=true" % q)
    assert r.status == 400 and e["reason"] == "queue '%s' in vhost '/' not empty" % q
    tag = ch.basic_consume(q, lambda *a: None)
    r, e = api.delete("/api/queues/%%2F/%s?if-unused=true" % q)
    assert r.status == 400 and e["reason"] == "queue '%s' in vhost '/' in use" % q
    ch.basic_cancel(tag)
    c.close()
    assert api.delete("/api/queues/%%2F/%s/contents" % q)[0].status == 204
    wait_until(lambda: api.get("/api/queues/%2F/" + q)[1]["messages"] == 0, timeout=15)
    assert api.delete("/api/queues/%%2F/%s?if-empty=true" % q)[0].status == 204
    r, e = api.delete("/api/queues/%2F/" + q)
    assert r.status == 404 and e == {"error": "Object Not Found", "reason": "Not Found"}
    assert api.get("/api/queues/%2F/" + q)[0].status == 404
    assert api.delete("/api/queues/%%2F/%s/contents" % q)[0].status == 404


def test_publish_and_get(api):
    q = uid("pg")
    assert api.put("/api/queues/%2F/" + q, {"durable": False})[0].status == 201
    body = {"properties": {"delivery_mode": 2, "headers": {"h-str": "v", "h-int": 42},
                           "content_type": "application/json", "message_id": "m-1"},
            "routing_key": q, "payload": '{"hello":"world"}', "payload_encoding": "string"}
    r, o = api.post("/api/exchanges/%2F/amq.default/publish", body)
    assert r.status == 200 and o == {"routed": True}
    r, o = api.post("/api/exchanges/%2F/amq.default/publish",
                    {"properties": {}, "routing_key": q,
                     "payload": base64.b64encode(bytes(range(256))).decode(),
                     "payload_encoding": "base64"})
    assert o == {"routed": True}
    r, o = api.post("/api/exchanges/%2F/amq.default/publish",
                    {"properties": {}, "routing_key": "no-such-queue-" + q, "payload": "x",
                     "payload_encoding": "string"})
    assert r.status == 200 and o == {"routed": False}
    r, e = api.post("/api/exchanges/%2F/no-such-x/publish",
                    {"properties": {}, "routing_key": "k", "payload": "x",
                     "payload_encoding": "string"})
    assert r.status == 400 and e["reason"].startswith("404 NOT_FOUND - no exchange 'no-such-x'")
    r, e = api.post("/api/exchanges/%2F/amq.default/publish", {"routing_key": "k"})
    assert r.status == 400 and "key_missing,properties" in e["reason"]
    r, e = api.post("/api/exchanges/%2F/amq.default/publish",
                    {"properties": {}, "routing_key": q, "payload": "x",
                     "payload_encoding": "bogus"})
    assert r.status == 400 and e["reason"] == ["unsupported_encoding", "bogus"]
    # get: requeue keeps them (and marks them redelivered).
    r, ms = api.post("/api/queues/%%2F/%s/get" % q,
                     {"count": 5, "ackmode": "ack_requeue_true", "encoding": "auto"})
    assert r.status == 200 and len(ms) == 2
    m = ms[0]
    assert list(m) == ["payload_bytes", "redelivered", "exchange", "routing_key",
                       "message_count", "properties", "payload", "payload_encoding"]
    assert (m["payload"], m["payload_encoding"], m["payload_bytes"], m["redelivered"],
            m["exchange"], m["routing_key"], m["message_count"]) == (
        '{"hello":"world"}', "string", 17, False, "", q, 1)
    assert m["properties"] == {"delivery_mode": 2, "headers": {"h-str": "v", "h-int": 42},
                               "content_type": "application/json", "message_id": "m-1"}
    assert ms[1]["payload_encoding"] == "base64" and ms[1]["properties"] == []
    assert base64.b64decode(ms[1]["payload"]) == bytes(range(256))
    r, ms = api.post("/api/queues/%%2F/%s/get" % q,
                     {"count": 1, "ackmode": "ack_requeue_true", "encoding": "base64",
                      "truncate": 5})
    assert ms[0]["redelivered"] is True and base64.b64decode(ms[0]["payload"]) == b'{"hel'
    assert ms[0]["payload_bytes"] == 17
    r, ms = api.post("/api/queues/%%2F/%s/get" % q, {"count": 1, "ackmode": "ack_requeue_false",
                                                 "encoding": "auto"})
    assert len(ms) == 1
    r, ms = api.post("/api/queues/%%2F/%s/get" % q,
                     {"count": 1, "ackmode": "reject_requeue_false", "encoding": "auto"})
    assert len(ms) == 1 and ms[0]["message_count"] == 0
    r, ms = api.post("/api/queues/%%2F/%s/get" % q, {"count": 1, "ackmode": "ack_requeue_true",
                                                 "encoding": "auto"})
    assert r.status == 200 and ms == []
    r, e = api.post("/api/queues/%%2F/%s/get" % q, {"count": 1, "encoding": "bogus",
                                                   "ackmode": "ack_requeue_true"})
    assert r.status == 400 and e["reason"] == "Unsupported encoding. Please use auto or base64."
    r, e = api.post("/api/queues/%%2F/%s/get" % q, {"ackmode": "ack_requeue_true",
                                                   "encoding": "auto"})
    assert r.status == 400 and e["reason"] == "[{key_missing,count}]"
    r, e = api.post("/api/queues/%%2F/%s/get" % q, {})
    assert r.status == 400 and e["reason"] == (
        "[{key_missing,ackmode},{key_missing,count},{key_missing,encoding}]")
    # rabbitmqadmin sends the count as a string.
    r, ms = api.post("/api/queues/%%2F/%s/get" % q, {"count": "1", "ackmode": "ack_requeue_true",
                                                    "encoding": "auto"})
    assert r.status == 200 and ms == []
    r, e = api.post("/api/queues/%%2F/%s/get" % q, {"count": "abc", "ackmode": "ack_requeue_true",
                                                   "encoding": "auto"})
    assert r.status == 400 and e["reason"] == ["not_integer", "abc"]
    r, e = api.post("/api/queues/%2F/no-such-q-here/get", {"count": 1, "encoding": "auto",
                                                          "ackmode": "ack_requeue_true"})
    assert r.status == 404 and e["error"] == "not_found"
    assert api.delete("/api/queues/%2F/" + q)[0].status == 204


def test_exchanges_and_bindings(api):
    x, x2, q = uid("rx"), uid("rx2"), uid("rbq")
    assert api.put("/api/exchanges/%2F/" + x, {"type": "topic", "durable": True})[0].status == 201
    assert api.put("/api/exchanges/%2F/" + x, {"type": "topic", "durable": True})[0].status == 204
    r, e = api.put("/api/exchanges/%2F/" + x, {"type": "fanout", "durable": True})
    assert r.status == 400 and e["reason"].startswith("inequivalent arg 'type' for exchange")
    assert api.put("/api/exchanges/%2F/" + x2, {"type": "fanout"})[0].status == 201
    assert api.put("/api/queues/%2F/" + q, {})[0].status == 201
    r, body = api.req("POST", "/api/bindings/%%2F/e/%s/q/%s" % (x, q),
                      {"routing_key": "a.b", "arguments": {}}, raw=True)
    assert r.status == 201 and r.getheader("Location") == "%s/a.b" % q
    r, _ = api.post("/api/bindings/%%2F/e/%s/q/%s" % (x, q),
                    {"routing_key": "k", "arguments": {"x-a": "b"}})
    assert r.status == 201 and r.getheader("Location").startswith(q + "/k~")
    assert api.post("/api/bindings/%%2F/e/%s/e/%s" % (x, x2),
                    {"routing_key": "", "arguments": {}})[0].status == 201
    r, bs = api.get("/api/bindings/%%2F/e/%s/q/%s" % (x, q))
    assert r.status == 200 and sorted(b["routing_key"] for b in bs) == ["a.b", "k"]
    pk = [b for b in bs if b["routing_key"] == "k"][0]["properties_key"]
    r, b = api.get("/api/bindings/%%2F/e/%s/q/%s/%s" % (x, q, q_(pk, safe="")))
    assert r.status == 200 and b["arguments"] == {"x-a": "b"} and b["destination_type"] == "queue"
    r, src = api.get("/api/exchanges/%%2F/%s/bindings/source" % x)
    assert len(src) == 3
    r, dst = api.get("/api/exchanges/%%2F/%s/bindings/destination" % x2)
    assert [(b["source"], b["destination_type"]) for b in dst] == [(x, "exchange")]
    r, qb = api.get("/api/queues/%%2F/%s/bindings" % q)
    assert qb[0]["source"] == "" and qb[0]["routing_key"] == q and len(qb) == 3
    r, o = api.post("/api/exchanges/%%2F/%s/publish" % x,
                    {"properties": {}, "routing_key": "a.b", "payload": "hi",
                     "payload_encoding": "string"})
    assert o == {"routed": True}
    r, e = api.delete("/api/exchanges/%%2F/%s?if-unused=true" % x)
    assert r.status == 400 and e["reason"] == "exchange '%s' in vhost '/' in use" % x
    assert api.delete("/api/bindings/%%2F/e/%s/q/%s/%s" % (
        x, q, q_(pk, safe="")))[0].status == 204
    assert api.delete("/api/bindings/%%2F/e/%s/q/%s/%s" % (
        x, q, q_(pk, safe="")))[0].status == 404
    r, e = api.post("/api/bindings/%%2F/e/%s/q/no-such-queue-x" % x, {"routing_key": "k"})
    assert r.status == 404 and e["reason"] == "no queue 'no-such-queue-x' in vhost '/'"
    r, xo = api.get("/api/exchanges/%%2F/%s" % x)
    assert (xo["type"], xo["durable"], xo["vhost"]) == ("topic", True, "/")
    assert api.get("/api/exchanges/%2F/amq.default")[1]["name"] == ""
    for path in ("/api/exchanges/%2F/" + x, "/api/exchanges/%2F/" + x2, "/api/queues/%2F/" + q):
        assert api.delete(path)[0].status == 204
    assert api.delete("/api/exchanges/%2F/" + x)[0].status == 404


def test_users_permissions_policies_limits(api):
    u, vh = uid("ru"), uid("rvh")
    assert api.put("/api/vhosts/" + vh, {"description": "d", "tags": "t1,t2"})[0].status == 201
    r, v = api.get("/api/vhosts/" + vh)
    assert (v["name"], v["description"], v["tags"]) == (vh, "d", ["t1", "t2"])
    assert api.put("/api/vhosts/" + vh, {"description": "d2"})[0].status == 204
    r, e = api.put("/api/users/" + u, {"password": "pw"})
    assert r.status == 400 and e["reason"] == "tags_not_present"
    assert api.put("/api/users/" + u, {"password": "pw", "tags": "management"})[0].status == 201
    assert api.put("/api/users/" + u,
                   {"password": "pw2", "tags": ["management", "policymaker"]})[0].status == 204
    r, o = api.get("/api/users/" + u)
    assert o["name"] == u and sorted(o["tags"]) == ["management", "policymaker"]
    assert o["hashing_algorithm"] == "rabbit_password_hashing_sha256" and o["password_hash"]
    # The hash moves to another user and logs in.
    u2 = uid("ru2")
    assert api.put("/api/users/" + u2, {"password_hash": o["password_hash"],
                                        "tags": "management"})[0].status == 201
    assert api.get("/api/whoami", user=u2, password="pw2")[0].status == 200
    r, e = api.put("/api/permissions/%s/nobody-%s" % (vh, u), {"configure": ".*",
                                                             "write": ".*", "read": ".*"})
    assert r.status == 400 and e["reason"] == "vhost_or_user_not_found"
    r, e = api.put("/api/permissions/%s/%s" % (vh, u), {"configure": ".*"})
    assert r.status == 400 and e["reason"] == "[{key_missing,write},{key_missing,read}]"
    perm = {"configure": ".*", "write": ".*", "read": ".*"}
    assert api.put("/api/permissions/%s/%s" % (vh, u), perm)[0].status == 201
    assert api.put("/api/permissions/%s/%s" % (vh, u), perm)[0].status == 204
    r, p = api.get("/api/permissions/%s/%s" % (vh, u))
    assert p == dict(perm, user=u, vhost=vh)
    r, ps = api.get("/api/vhosts/%s/permissions" % vh)
    assert any(x["user"] == u for x in ps)
    r, ps = api.get("/api/users/%s/permissions" % u)
    assert [x["vhost"] for x in ps] == [vh]
    tp = {"exchange": "amq.topic", "write": "^a", "read": ".*"}
    assert api.put("/api/topic-permissions/%s/%s" % (vh, u), tp)[0].status == 201
    r, tps = api.get("/api/topic-permissions/%s/%s" % (vh, u))
    assert tps == [dict(tp, user=u, vhost=vh)]
    assert api.delete("/api/topic-permissions/%s/%s" % (vh, u))[0].status == 204
    # Policies: a policymaker with access to the vhost may set them.
    pol = {"pattern": "^x", "definition": {"max-length": 10}, "priority": 1,
           "apply-to": "queues"}
    assert api.put("/api/policies/%s/p1" % vh, pol, user=u, password="pw2")[0].status == 201
    assert api.put("/api/policies/%s/p1" % vh, pol)[0].status == 204
    r, p = api.get("/api/policies/%s/p1" % vh)
    assert p == dict(pol, name="p1", vhost=vh)
    r, e = api.put("/api/policies/%s/p2" % vh, {"pattern": "^x",
                                               "definition": {"max-length": "ten"}})
    assert r.status == 400 and "is not a valid maximum length" in e["reason"]
    r, e = api.put("/api/policies/%s/p2" % vh, {"definition": {"max-length": 1}})
    assert r.status == 400 and e["reason"] == "[{key_missing,pattern}]"
    r, e = api.put("/api/operator-policies/%s/op1" % vh, pol, user=u, password="pw2")
    assert r.status == 401 and e["reason"] == "Not administrator user"
    assert api.put("/api/operator-policies/%s/op1" % vh, pol)[0].status == 201
    assert [p["name"] for p in api.get("/api/operator-policies/" + vh)[1]] == ["op1"]
    assert api.delete("/api/operator-policies/%s/op1" % vh)[0].status == 204
    assert api.delete("/api/policies/%s/p1" % vh)[0].status == 204
    assert api.delete("/api/policies/%s/p1" % vh)[0].status == 404
    # Limits.
    assert api.put("/api/vhost-limits/%s/max-connections" % vh, {"value": 10})[0].status == 204
    assert api.put("/api/vhost-limits/%s/max-queues" % vh, {"value": 20})[0].status == 204
    r, ls = api.get("/api/vhost-limits/" + vh)
    assert ls == [{"vhost": vh, "value": {"max-connections": 10, "max-queues": 20}}]
    assert api.delete("/api/vhost-limits/%s/max-queues" % vh)[0].status == 204
    assert api.get("/api/vhost-limits/" + vh)[1][0]["value"] == {"max-connections": 10}
    assert api.put("/api/user-limits/%s/max-channels" % u, {"value": 5})[0].status == 204
    r, ls = api.get("/api/user-limits/" + u)
    assert ls == [{"user": u, "value": {"max-channels": 5}}]
    assert api.delete("/api/user-limits/%s/max-channels" % u)[0].status == 204
    assert api.delete("/api/permissions/%s/%s" % (vh, u))[0].status == 204
    assert api.delete("/api/permissions/%s/%s" % (vh, u))[0].status == 404
    r, e = api.post("/api/users/bulk-delete", {"users": [u, u2, "nobody-" + u]})
    assert r.status == 400 and e["reason"] == ["no_such_user", "nobody-" + u]
    assert api.get("/api/users/" + u)[0].status == 404
    assert api.delete("/api/vhosts/" + vh)[0].status == 204
    assert api.delete("/api/vhosts/" + vh)[0].status == 404


def test_definitions(api):
    vh, q = uid("dvh"), uid("dq")
    defs = {"vhosts": [{"name": vh}],
            "queues": [{"name": q, "vhost": vh, "durable": True, "auto_delete": False,
                        "arguments": {"x-max-length": 3}}],
            "permissions": [{"user": "guest", "vhost": vh, "configure": ".*", "write": ".*",
                             "read": ".*"}]}
    r, body = api.req("POST", "/api/definitions", defs, raw=True)
    assert r.status == 204 and body == b""
    r, d = api.get("/api/definitions")
    assert any(x["name"] == q and x["vhost"] == vh for x in d["queues"])
    for k in ("rabbit_version", "users", "vhosts", "permissions", "queues", "exchanges",
              "bindings", "policies"):
        assert k in d
    r, d = api.get("/api/definitions/" + vh)
    assert [x["name"] for x in d["queues"]] == [q] and "vhost" not in d["queues"][0]
    assert "users" not in d
    r, e = api.req("POST", "/api/definitions", b"{oops")
    assert r.status == 400 and e["reason"] == "failed_to_parse_json"
    assert api.post("/api/definitions/" + vh, {"queues": [{"name": q + "2", "durable": True,
                                                          "auto_delete": False,
                                                          "arguments": {}}]})[0].status == 204
    assert api.get("/api/queues/%s/%s2" % (vh, q))[0].status == 200
    assert api.delete("/api/vhosts/" + vh)[0].status == 204


def test_connections_channels_consumers(api):
    q = uid("cq")
    c = api.connect(client_properties={"connection_name": "rest-test-" + q})
    ch = c.channel()
    ch.confirm_delivery()
    ch.queue_declare(q, exclusive=True)
    ch2 = c.channel()
    ch2.basic_qos(prefetch_count=10)
    ch2.basic_consume(q, lambda *a: None, consumer_tag="ctag-" + q)
    for _ in range(5):
        ch.basic_publish("", q, b"x")

    def mine():
        return [k for k in api.get("/api/connections")[1]
                if k.get("user_provided_name") == "rest-test-" + q]
    wait_until(lambda: any(k["channels"] == 2 for k in mine()), timeout=15)
    k = mine()[0]
    for f in ("name", "node", "user", "vhost", "peer_host", "peer_port", "host", "port",
              "channels", "state", "protocol", "auth_mechanism", "client_properties",
              "recv_oct", "send_oct", "connected_at", "timeout", "frame_max", "ssl"):
        assert f in k, f
    assert (k["user"], k["vhost"], k["protocol"], k["channels"]) == (
        "guest", "/", "AMQP 0-9-1", 2)
    name = k["name"]
    r, one = api.get("/api/connections/" + q_(name, safe=""))
    assert r.status == 200 and one["name"] == name
    r, chans = api.get("/api/connections/%s/channels" % q_(name, safe=""))
    assert sorted(x["number"] for x in chans) == [1, 2]
    assert all(x["connection_details"]["name"] == name for x in chans)
    wait_until(lambda: any(x["consumer_tag"] == "ctag-" + q
                           for x in api.get("/api/consumers/%2F")[1]), timeout=15)
    cons = [x for x in api.get("/api/consumers")[1] if x["consumer_tag"] == "ctag-" + q][0]
    assert (cons["queue"], cons["prefetch_count"], cons["ack_required"]) == (
        {"name": q, "vhost": "/"}, 10, True)
    assert cons["channel_details"]["connection_name"] == name
    r, chd = api.get("/api/channels/" + q_(name + " (2)", safe=""))
    assert r.status == 200 and chd["consumer_count"] == 1 and len(chd["consumer_details"]) == 1
    r, qd = api.get("/api/queues/%2F/" + q)
    assert qd["exclusive"] is True and qd["owner_pid_details"]["name"] == name
    # Closing with a reason: the client sees it as RabbitMQ's.
    r, body = api.req("DELETE", "/api/connections/" + q_(name, safe=""),
                      headers={"X-Reason": "closed by the test"}, raw=True)
    assert r.status == 204
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as ei:
        deadline = time.time() + 10
        while time.time() < deadline:
            c.process_data_events(time_limit=0.2)
    assert ei.value.reply_code == 320
    assert ei.value.reply_text == "CONNECTION_FORCED - closed by the test"
    assert api.delete("/api/connections/" + q_(name, safe=""))[0].status == 404


def test_lists_pagination_sort_columns(api):
    base = uid("pl")
    names = ["%s-%d" % (base, i) for i in range(5)]
    for n in names:
        assert api.put("/api/queues/%2F/" + n, {"durable": False})[0].status == 201
    r, page = api.get("/api/queues/%%2F?page=2&page_size=2&name=%s&use_regex=false" % base)
    assert r.status == 200
    assert (page["filtered_count"], page["item_count"], page["page"], page["page_count"],
            page["page_size"]) == (5, 2, 2, 3, 2)
    assert page["total_count"] >= 5
    assert [x["name"] for x in page["items"]] == names[2:4]
    r, page = api.get("/api/queues/%%2F?page=1&page_size=10&name=%s&use_regex=true"
                      % q_("^%s-[13]$" % base))
    assert [x["name"] for x in page["items"]] == [names[1], names[3]]
    r, e = api.get("/api/queues?page=1&page_size=0")
    assert r.status == 400 and e == {"error": "invalid_pagination_parameters",
                                     "reason": "Invalid pagination parameters: page number 1, "
                                               "page size 0"}
    r, e = api.get("/api/queues?page=abc")
    assert r.status == 400 and e["reason"] == "Pagination parameters are invalid"
    def cols():
        rows = api.get("/api/queues/%2F?columns=name,messages&sort=name&sort_reverse=true")[1]
        return [x for x in rows if x["name"].startswith(base)]
    # (RabbitMQ lists a new queue without its statistics until its first sample.)
    wait_until(lambda: all("messages" in x for x in cols()), timeout=15)
    mine = cols()
    assert [x["name"] for x in mine] == names[::-1]
    assert all(set(x) == {"name", "messages"} for x in mine)
    r, rows = api.get("/api/queues/%2F?disable_stats=true")
    x = [o for o in rows if o["name"] == names[0]][0]
    assert x["state"] == "live" and "messages" not in x
    r, o = api.get("/api/overview?columns=rabbitmq_version,object_totals")
    assert set(o) == {"rabbitmq_version", "object_totals"}
    for n in names:
        assert api.delete("/api/queues/%2F/" + n)[0].status == 204


def test_message_rates(api):
    q = uid("rate")
    assert api.put("/api/queues/%2F/" + q, {"durable": False})[0].status == 201
    c = api.connect()
    ch = c.channel()
    for _ in range(200):
        ch.basic_publish("", q, b"x" * 10)
    n = 0
    for _m, _p, _b in ch.consume(q, auto_ack=False, inactivity_timeout=2):
        if _m is None:
            break
        ch.basic_ack(_m.delivery_tag)
        n += 1
        if n == 200:
            break
    ch.cancel()
    rate_wait()
    r, o = api.get("/api/queues/%2F/" + q)
    ms = o["message_stats"]
    assert (ms["publish"], ms["deliver"], ms["ack"], ms["deliver_get"]) == (200, 200, 200, 200)
    assert set(ms["publish_details"]) >= {"rate"}
    r, ov = api.get("/api/overview")
    assert ov["message_stats"]["publish"] >= 200 and "publish_details" in ov["message_stats"]
    assert ov["object_totals"]["queues"] >= 1
    churn = ov["churn_rates"]
    assert churn["queue_created"] >= 1 and churn["queue_declared"] >= 1
    assert churn["connection_created"] >= 1 and "connection_created_details" in churn
    r, chans = api.get("/api/channels")
    assert any(x.get("message_stats", {}).get("publish", 0) == 200 for x in chans)
    r, ov = api.get("/api/overview?msg_rates_age=60&msg_rates_incr=5&lengths_age=60"
                    "&lengths_incr=5")
    d = ov["message_stats"]["publish_details"]
    assert {"rate", "samples", "avg", "avg_rate"} <= set(d)
    assert d["samples"] and {"sample", "timestamp"} == set(d["samples"][0])
    assert d["samples"][0]["timestamp"] >= d["samples"][-1]["timestamp"]
    assert "samples" in ov["queue_totals"]["messages_details"]
    c.close()
    assert api.delete("/api/queues/%2F/" + q)[0].status == 204


def test_nodes_health_aliveness(api):
    r, nodes = api.get("/api/nodes")
    assert r.status == 200 and len(nodes) == 1
    n = nodes[0]
    for f in ("name", "type", "running", "mem_used", "mem_limit", "mem_alarm", "disk_free",
              "disk_free_limit", "disk_free_alarm", "fd_used", "fd_total", "sockets_used",
              "uptime", "run_queue", "processors", "os_pid"):
        assert f in n, f
    assert isinstance(n["os_pid"], str) and n["mem_used"] > 0 and n["running"] is True
    assert api.get("/api/nodes/" + q_(n["name"], safe=""))[1]["name"] == n["name"]
    assert api.get("/api/health/checks/alarms")[1] == {"status": "ok"}
    assert api.get("/api/health/checks/local-alarms")[1] == {"status": "ok"}
    assert api.get("/api/health/checks/virtual-hosts")[1] == {"status": "ok"}
    r, e = api.get("/api/health/checks/port-listener/1")
    assert r.status == 503 and e["status"] == "failed" and e["missing"] == 1
    port = urllib.parse.urlparse(api.amqp_url).port or 5672
    r, o = api.get("/api/health/checks/port-listener/%d" % port)
    assert r.status == 200 and o == {"status": "ok", "port": port}
    r, o = api.get("/api/aliveness-test/%2F")
    assert r.status == 200 and o == {"status": "ok"}
    assert api.get("/api/aliveness-test/no-such-vhost")[0].status == 404


@pytest.mark.skipif(MGMT_URL is not None, reason="warren's extension: not in RabbitMQ")
def test_dead_letter_replay_and_move(api):
    work, dlq, other = uid("work"), uid("dlq"), uid("other")
    dlx = uid("dlx")
    assert api.put("/api/exchanges/%2F/" + dlx, {"type": "fanout"})[0].status == 201
    assert api.put("/api/queues/%2F/" + dlq, {"durable": True})[0].status == 201
    assert api.post("/api/bindings/%%2F/e/%s/q/%s" % (dlx, dlq), {})[0].status == 201
    assert api.put("/api/queues/%2F/" + work, {
        "durable": True, "arguments": {"x-dead-letter-exchange": dlx}})[0].status == 201
    assert api.put("/api/queues/%2F/" + other, {"durable": True})[0].status == 201
    c = api.connect()
    ch = c.channel()
    for i in range(6):
        ch.basic_publish("", work, b"m%d" % i, pika.BasicProperties(
            delivery_mode=2, headers={"kind": "a" if i % 2 else "b"}))
    # Reject all six: they die into dlq (reason rejected).
    got = 0
    for m, _p, _b in ch.consume(work, inactivity_timeout=2):
        if m is None:
            break
        ch.basic_nack(m.delivery_tag, requeue=False)
        got += 1
        if got == 6:
            break
    ch.cancel()
    wait_until(lambda: api.get("/api/queues/%2F/" + dlq)[1]["messages"] == 6, timeout=10)
    r, groups = api.get("/api/queues/%%2F/%s/dead-letters" % dlq)
    assert r.status == 200 and groups == [{"queue": work, "reason": "rejected",
                                           "exchange": "", "count": 6}]
    # Replay the "a" ones back to where they died, then two more.
    r, o = api.post("/api/queues/%%2F/%s/replay" % dlq, {"header": {"kind": "a"}})
    assert r.status == 200 and o == {"replayed": 3}
    r, o = api.post("/api/queues/%%2F/%s/replay" % dlq, {"count": 2, "reason": "rejected"})
    assert o == {"replayed": 2}
    wait_until(lambda: api.get("/api/queues/%2F/" + work)[1]["messages"] == 5, timeout=10)
    r, ms = api.post("/api/queues/%%2F/%s/get" % work, {"count": 5, "encoding": "auto",
                                                       "ackmode": "ack_requeue_true"})
    assert [m["payload"] for m in ms] == ["m1", "m3", "m5", "m0", "m2"]
    h = ms[0]["properties"]["headers"]
    assert h["x-warren-replayed"] == 1 and h["kind"] == "a" and h["x-first-death-queue"] == work
    assert ms[0]["properties"]["delivery_mode"] == 2
    # The last one to another queue, then move everything from work there.
    r, o = api.post("/api/queues/%%2F/%s/replay" % dlq, {"target": {"queue": other}})
    assert o == {"replayed": 1}
    r, o = api.post("/api/queues/%%2F/%s/move" % work, {"destination": other})
    assert r.status == 200 and o == {"moved": 5}
    wait_until(lambda: api.get("/api/queues/%2F/" + other)[1]["messages"] == 6, timeout=10)
    # The originals of durable copies go once the copies are synced.
    assert wait_until(lambda: api.get("/api/queues/%2F/" + dlq)[1]["messages"] == 0)
    assert wait_until(lambda: api.get("/api/queues/%2F/" + work)[1]["messages"] == 0)
    r, e = api.post("/api/queues/%%2F/%s/move" % work, {"destination": "nope-" + work})
    assert r.status == 404
    c.close()
    for path in ("queues/%2F/" + work, "queues/%2F/" + dlq, "queues/%2F/" + other,
                 "exchanges/%2F/" + dlx):
        assert api.delete("/api/" + path)[0].status == 204


def test_idle_since_format(api):
    import re
    q = uid("idle")
    assert api.put("/api/queues/%2F/" + q, {"durable": False})[0].status == 201
    wait_until(lambda: "idle_since" in api.get("/api/queues/%2F/" + q)[1], timeout=15)
    r, o = api.get("/api/queues/%2F/" + q)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", o["idle_since"]), o
    assert o["consumer_utilisation"] == 0
    assert api.delete("/api/queues/%2F/" + q)[0].status == 204
