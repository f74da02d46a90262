"""HTTPS for the management API (management.ssl.*, RabbitMQ's keys): the
same OpenSSL transport as AMQPS, its own certificate files, optional
client certificates (warren only: needs warren's configuration).
Certificates come from test_tls.py's openssl-made CA."""
import base64
import http.client
import json
import os
import ssl

import pytest

from conftest import free_port, start_warren
from test_tls import certs, client_context  # noqa: F401 (the fixture)

AUTH = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}


def start(certs, verify=False, fail_if_no_cert=False):
    port, http_port = free_port(), free_port()
    settings = {
        "management.ssl.port": port,
        "management.ssl.ip": "127.0.0.1",
        "management.ssl.certfile": os.path.join(certs, "server.pem"),
        "management.ssl.keyfile": os.path.join(certs, "server.key"),
        "management.ssl.cacertfile": os.path.join(certs, "ca.pem"),
        "management.ssl.verify": "verify_peer" if verify else "verify_none",
        "management.ssl.fail_if_no_peer_cert": "true" if fail_if_no_cert else "false",
        "management.tcp.port": http_port,
    }
    b = start_warren(**settings)
    b.https_port, b.http_port = port, http_port
    return b


def get(port, path, ctx=None):
    if ctx is None:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    else:
        c = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=ctx)
    c.request("GET", path, headers=AUTH)
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, json.loads(body) if body else None


def test_api_over_https_and_plain_side_by_side(broker, certs):
    if broker.external:
        pytest.skip("warren's management listener")
    b = start(certs)
    try:
        ctx = client_context(certs)
        status, who = get(b.https_port, "/api/whoami", ctx)
        assert status == 200 and who["name"] == "guest"
        # Keep-alive over TLS: several requests on one connection.
        c = http.client.HTTPSConnection("127.0.0.1", b.https_port, timeout=5, context=ctx)
        for _ in range(3):
            c.request("GET", "/api/overview", headers=AUTH)
            r = c.getresponse()
            assert r.status == 200 and "rabbitmq_version" in json.loads(r.read())
        c.close()
        # The same API in plain HTTP on management.tcp.port.
        assert get(b.http_port, "/api/whoami")[0] == 200
        # A plain HTTP request to the TLS port gets no answer in the clear.
        with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
            get(b.https_port, "/api/whoami")
        # A client that does not trust warren's CA refuses the server.
        with pytest.raises(ssl.SSLError):
            get(b.https_port, "/api/whoami", client_context(certs, ca="other-ca"))
    finally:
        b.stop()


def test_client_certificates_required(broker, certs):
    if broker.external:
        pytest.skip("warren's management listener")
    b = start(certs, verify=True, fail_if_no_cert=True)
    try:
        status, _ = get(b.https_port, "/api/whoami", client_context(certs, cert="client"))
        assert status == 200
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
            get(b.https_port, "/api/whoami", client_context(certs))
        # A certificate from a CA warren does not trust is refused.
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
            get(b.https_port, "/api/whoami", client_context(certs, cert="stranger"))
    finally:
        b.stop()


def test_bad_certificate_files_stop_the_start(broker, certs, tmp_path):
    if broker.external:
        pytest.skip("warren's management listener")
    import subprocess
    from conftest import warren_bin
    p = subprocess.run([warren_bin(), "--data-dir", str(tmp_path / "d"),
                        "--listen", "127.0.0.1:%d" % free_port(),
                        "--set", "management.ssl.port=%d" % free_port(),
                        "--set", "management.ssl.certfile=%s" % (tmp_path / "missing.pem"),
                        "--set", "management.ssl.keyfile=%s" % (tmp_path / "missing.key")],
                       capture_output=True, timeout=20)
    assert p.returncode != 0
    assert b"management.ssl" in p.stderr
