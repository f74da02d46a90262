"""AMQPS: TLS listeners, client certificates, the EXTERNAL mechanism, and
what a bad TLS client gets (warren only: needs warren's configuration).

Certificates are made for the session with the openssl command line: a
CA, a server certificate for 127.0.0.1, client certificates from the CA
(CN=tls-user) and from another CA.
"""
import os
import socket
import ssl
import subprocess
import time

import pika
import pytest

from conftest import free_port, start_warren
from helpers import uid


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True,
                   timeout=60)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("certs"))
    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                "/CN=warren test %s" % ca, "-keyout", ca + ".key", "-out", ca + ".pem", cwd=d)
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def issue(name, subj, ca, ext=None):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subj, "-keyout", name + ".key",
                "-out", name + ".csr", cwd=d)
        cmd = ["x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key",
               "-CAcreateserial", "-days", "2", "-out", name + ".pem"]
        if ext:
            cmd += ["-extfile", ext]
        openssl(*cmd, cwd=d)

    issue("server", "/CN=localhost", "ca", "san.ext")
    issue("client", "/O=warren tests/CN=tls-user", "ca")
    issue("stranger", "/CN=tls-user", "other-ca")
    return d


def tls_config(certs, tcp_port, port, verify=True, fail_if_no_cert=False, extra=""):
    return ("listeners.tcp.default = 127.0.0.1:%d\n"
            "listeners.ssl.default = 127.0.0.1:%d\n"
            "ssl_options.cacertfile = %s/ca.pem\n"
            "ssl_options.certfile = %s/server.pem\n"
            "ssl_options.keyfile = %s/server.key\n"
            "ssl_options.verify = %s\n"
            "ssl_options.fail_if_no_peer_cert = %s\n%s"
            % (tcp_port, port, certs, certs, certs,
               "verify_peer" if verify else "verify_none",
               "true" if fail_if_no_cert else "false", extra))


@pytest.fixture
def tls_broker(broker, certs):
    if broker.external:
        pytest.skip("needs warren's TLS configuration")
    started = []

    def _start(**kw):
        port, tcp_port = free_port(), free_port()
        b = start_warren(tls_config(certs, tcp_port, port, **kw), listen=False, port=tcp_port)
        b.tls_port = port
        started.append(b)
        return b

    yield _start
    for b in started:
        b.stop()


def client_context(certs, cert=None, ca="ca", version=None):
    ctx = ssl.create_default_context(cafile=os.path.join(certs, ca + ".pem"))
    if cert:
        ctx.load_cert_chain(os.path.join(certs, cert + ".pem"), os.path.join(certs, cert + ".key"))
    if version:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def tls_params(b, certs, **kw):
    ctx = client_context(certs, cert=kw.pop("cert", None), ca=kw.pop("ca", "ca"))
    return pika.ConnectionParameters(
        "127.0.0.1", b.tls_port, ssl_options=pika.SSLOptions(ctx, "localhost"),
        connection_attempts=1, socket_timeout=5, **kw)


def test_publish_and_consume_over_tls(tls_broker, certs):
    b = tls_broker()
    c = pika.BlockingConnection(tls_params(b, certs))
    ch = c.channel()
    q = uid("tls")
    ch.queue_declare(q)
    ch.confirm_delivery()
    bodies = [os.urandom(n) for n in (0, 1, 1000, 200000, 17000)]
    for body in bodies:
        ch.basic_publish("", q, body)
    got = []
    for _ in bodies:
        m = ch.basic_get(q, auto_ack=True)
        got.append(m[2])
    assert got == bodies
    r = b.ctl("list_connections", "ssl", "port", "user")
    assert [True, b.tls_port, "guest"] in r["rows"]
    c.close()
    # The plain listener works alongside.
    plain = b.connect()
    assert plain.channel().queue_declare(q, passive=True).method.message_count == 0
    plain.close()


def test_external_login_with_a_client_certificate(tls_broker, certs):
    b = tls_broker(extra="auth_mechanisms.1 = EXTERNAL\nauth_mechanisms.2 = PLAIN\n"
                         "ssl_cert_login_from = common_name\n")
    assert b.ctl("add_user", "tls-user", "unused")["ok"]
    assert b.ctl("clear_password", "tls-user")["ok"]
    assert b.ctl("set_permissions", "tls-user", ".*", ".*", ".*")["ok"]
    c = pika.BlockingConnection(tls_params(b, certs, cert="client",
                                           credentials=pika.credentials.ExternalCredentials()))
    c.channel().queue_declare(uid("ext"), exclusive=True)
    r = b.ctl("list_connections", "user", "auth_mechanism", "ssl")
    assert ["tls-user", "EXTERNAL", True] in r["rows"]
    c.close()
    # Without a certificate EXTERNAL has nothing to go by.
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(tls_params(
            b, certs, credentials=pika.credentials.ExternalCredentials()))
    # PLAIN still works for the users that have a password.
    pika.BlockingConnection(tls_params(b, certs)).close()


def test_external_login_by_distinguished_name(tls_broker, certs):
    b = tls_broker(extra="auth_mechanisms.1 = EXTERNAL\n")
    dn = "CN=tls-user,O=warren tests"
    assert b.ctl("add_user", dn, "unused")["ok"]
    assert b.ctl("set_permissions", dn, ".*", ".*", ".*")["ok"]
    c = pika.BlockingConnection(tls_params(b, certs, cert="client",
                                           credentials=pika.credentials.ExternalCredentials()))
    c.close()


def test_a_certificate_from_another_ca_is_refused(tls_broker, certs):
    b = tls_broker(fail_if_no_cert=True)
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(tls_params(b, certs, cert="stranger"))
    # No certificate at all, with fail_if_no_peer_cert: refused too.
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(tls_params(b, certs))
    pika.BlockingConnection(tls_params(b, certs, cert="client")).close()
    # And a client that trusts another CA refuses warren's certificate.
    with pytest.raises((pika.exceptions.AMQPConnectionError, ssl.SSLError)):
        pika.BlockingConnection(tls_params(b, certs, cert="client", ca="other-ca"))


@pytest.mark.parametrize("flag", ["-tls1", "-tls1_1"])
def test_old_tls_versions_are_refused(tls_broker, certs, flag):
    b = tls_broker()
    r = subprocess.run(["openssl", "s_client", flag, "-cipher", "DEFAULT@SECLEVEL=0",
                        "-connect", "127.0.0.1:%d" % b.tls_port, "-CAfile",
                        os.path.join(certs, "ca.pem")],
                       input=b"", capture_output=True, timeout=30)
    out = r.stdout.decode(errors="replace") + r.stderr.decode(errors="replace")
    assert r.returncode != 0, out
    # No session: the server answered with a protocol_version alert (70)
    # (or the client library refused to offer the version at all).
    assert "Cipher    : 0000" in out or "no protocols available" in out, out
    assert "alert number 70" in out or "no protocols available" in out, out
    # TLS 1.2 and 1.3 are accepted.
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = client_context(certs, version=version)
        with socket.create_connection(("127.0.0.1", b.tls_port), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                t.sendall(b"AMQP\x00\x00\x09\x01")
                assert t.recv(1)[0] == 1  # connection.start's method frame


def test_garbage_and_stalled_handshakes_do_not_hurt_others(tls_broker, certs):
    b = tls_broker()
    good = pika.BlockingConnection(tls_params(b, certs))
    ch = good.channel()
    q = uid("others")
    ch.queue_declare(q)
    # Plain AMQP on the TLS port, random bytes, and 50 silent connections.
    bad = []
    for payload in (b"AMQP\x00\x00\x09\x01", os.urandom(4096), b"\x16\x03\x01\xff\xff" * 100):
        s = socket.create_connection(("127.0.0.1", b.tls_port), timeout=5)
        s.sendall(payload)
        bad.append(s)
    silent = [socket.create_connection(("127.0.0.1", b.tls_port), timeout=5) for _ in range(50)]
    for s in bad:
        # The broker answers with an alert or just closes; either way it ends.
        s.settimeout(5)
        try:
            while s.recv(65536):
                pass
        except (ConnectionResetError, socket.timeout):
            pass
        s.close()
    for i in range(100):
        ch.basic_publish("", q, b"%d" % i)
    assert ch.queue_declare(q, passive=True).method.message_count == 100
    # The silent ones are dropped at the handshake deadline (10 s).
    deadline = time.monotonic() + 15
    closed = 0
    for s in silent:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            if s.recv(1) == b"":
                closed += 1
        except (ConnectionResetError, socket.timeout):
            pass
        s.close()
    assert closed == len(silent)
    assert good.is_open
    good.close()


def test_bad_tls_settings_stop_the_broker(broker, certs, tmp_path):
    if broker.external:
        pytest.skip("warren's configuration")
    from conftest import warren_bin
    conf = tmp_path / "bad.conf"
    conf.write_text("listeners.ssl.default = 127.0.0.1:0\n"
                    "ssl_options.certfile = %s/server.pem\n"
                    "ssl_options.keyfile = %s/client.key\n" % (certs, certs))
    r = subprocess.run([warren_bin(), "--config", str(conf), "--data-dir", str(tmp_path / "d"),
                        "--listen", "127.0.0.1:0"], capture_output=True, text=True, timeout=20)
    assert r.returncode == 1
    assert "cannot set up TLS: ssl_options.keyfile" in r.stderr


def go_client(certs, url, *cert):
    """Runs gotls (amqp091-go over TLS) with Debian's Go sources."""
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode",
               GOCACHE=os.path.join(certs, "gocache"), GOFLAGS="")
    return subprocess.run(["go", "run", os.path.join(here, "gotls", "main.go"), url,
                           os.path.join(certs, "ca.pem")] + list(cert),
                          capture_output=True, text=True, timeout=300, env=env)


def test_amqp091_go_over_tls(tls_broker, certs):
    if not os.path.isdir("/usr/share/gocode/src/github.com/rabbitmq/amqp091-go"):
        pytest.skip("golang-github-rabbitmq-amqp091-go-dev is not installed")
    b = tls_broker(extra="auth_mechanisms.1 = PLAIN\nauth_mechanisms.2 = EXTERNAL\n"
                         "ssl_cert_login_from = common_name\n")
    r = go_client(certs, "amqps://guest:guest@localhost:%d/" % b.tls_port)
    assert r.stdout.strip() == "ok 50", r.stdout + r.stderr
    assert b.ctl("add_user", "tls-user", "x")["ok"]
    assert b.ctl("set_permissions", "tls-user", ".*", ".*", ".*")["ok"]
    r = go_client(certs, "amqps://localhost:%d/" % b.tls_port,
                  os.path.join(certs, "client.pem"), os.path.join(certs, "client.key"))
    assert r.stdout.strip() == "ok 50", r.stdout + r.stderr


def test_testssl_finds_nothing_high_or_critical(tls_broker, certs, tmp_path):
    """Debian's testssl.sh against the TLS listener (about 100 s).  The
    findings about the certificate itself (cert_*: a CA of our own, a
    two-day validity, no CRL or OCSP URL) are the test certificate's, not
    the listener's, and are left out."""
    if os.environ.get("ASAN_OPTIONS"):
        pytest.skip("run once, in the normal build")
    if subprocess.run(["which", "testssl"], capture_output=True).returncode != 0:
        pytest.skip("testssl.sh is not installed (scripts/deps.sh test)")
    b = tls_broker(verify=False)
    out = tmp_path / "testssl.json"
    r = subprocess.run(["testssl", "--quiet", "--color", "0", "--warnings", "off",
                        "--severity", "LOW", "--jsonfile", str(out),
                        "127.0.0.1:%d" % b.tls_port], capture_output=True, text=True,
                       timeout=600)
    import json
    findings = json.loads(out.read_text())
    bad = [(f["severity"], f["id"], f["finding"]) for f in findings
           if f["severity"] in ("HIGH", "CRITICAL") and not f["id"].startswith("cert")]
    assert bad == [], bad
    ran = {f["id"] for f in findings}
    assert findings and r.returncode in (0, 1) or ran, r.stdout[-2000:]
