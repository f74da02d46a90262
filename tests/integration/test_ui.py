"""The management web UI (issue 11) in a real browser: headless Chromium
driven by Selenium (Debian's chromium, chromium-driver, python3-selenium).

Each test opens the UI served by warren at /, logs in with warren's users
and works the pages as a person would: every page renders, publish and get
on a queue page, purge, user creation, dead-letter replay, moving messages,
closing a connection, 10,000 queues.  Screenshots go to $WARREN_SCREENSHOTS
(default: a temporary directory, printed at the end); docs/img/ has the
chosen ones.

A page whose API endpoint the server does not serve yet (404 or 405) is
skipped with the endpoint named, so these tests pass before the whole API
exists and exercise everything once it does.
"""
import base64
import http.client
import json
import os
import shutil
import tempfile
import time

import pika
import pytest

from conftest import free_port, start_warren
from helpers import uid

webdriver = pytest.importorskip("selenium.webdriver", reason="python3-selenium is not installed")
from selenium.common.exceptions import TimeoutException, WebDriverException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

WAIT = 20  # seconds; the sanitizer build is several times slower


def _chromium():
    for b in ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"):
        if os.access(b, os.X_OK):
            return b
    return None


@pytest.fixture(scope="module")
def ui(broker):
    if broker.external:
        pytest.skip("warren's management listener")
    port = free_port()
    b = start_warren(**{"management.tcp.port": port})
    b.mgmt_port = port
    b.base = "http://127.0.0.1:%d/" % port
    yield b
    b.stop()


@pytest.fixture(scope="module")
def shots():
    d = os.environ.get("WARREN_SCREENSHOTS")
    tmp = None
    if not d:
        d = tmp = tempfile.mkdtemp(prefix="warren-ui-shots-")
    os.makedirs(d, exist_ok=True)
    yield d
    print("\nscreenshots in %s" % d)
    if tmp and not os.listdir(tmp):
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    binary = _chromium()
    if binary is None or shutil.which("chromedriver") is None:
        pytest.skip("chromium and chromium-driver are not installed")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1360,900", "--force-device-scale-factor=1", "--lang=en-US"):
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        d = webdriver.Chrome(options=opts)
    except WebDriverException as e:
        pytest.skip("chromium did not start: %s" % e.msg)
    d.set_page_load_timeout(30)
    yield d
    d.quit()


class Page:
    """The browser on one warren's UI, with the helpers the tests share."""

    def __init__(self, driver, broker, shots):
        self.d = driver
        self.b = broker
        self.shots = shots

    # --- HTTP straight to the API, to set up and to check ---
    def http(self, method, path, body=None, user="guest", password="guest"):
        c = http.client.HTTPConnection("127.0.0.1", self.b.mgmt_port, timeout=10)
        auth = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
        hdrs = {"Authorization": "Basic " + auth}
        data = None
        if body is not None:
            data = json.dumps(body)
            hdrs["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=hdrs)
        r = c.getresponse()
        raw = r.read()
        c.close()
        try:
            return r.status, json.loads(raw) if raw else None
        except ValueError:
            return r.status, raw

    def need(self, method, path, body=None, what=None, gone=(404, 405, 501)):
        """Skips the test when the server does not serve method path yet:
        it answers one of the statuses in gone.  A probe of a write on an
        object that does not exist passes gone=(405, 501), since 404 is
        then the answer of a server that has the endpoint."""
        status, _ = self.http(method, path, body)
        if status in gone:
            pytest.skip("%s %s answers %d: %s is not served by this server yet"
                        % (method, path, status, what or "the endpoint"))
        return status

    # --- the browser ---
    def open(self, hash_path="/overview"):
        url = self.b.base + "#" + hash_path
        if self.d.current_url == url:
            self.d.refresh()
        else:
            self.d.get(url)
        self.wait_ready()

    def login(self, user="guest", password="guest"):
        self.d.get(self.b.base)
        self.d.execute_script("sessionStorage.clear()")
        self.d.get(self.b.base)
        self.wait(lambda d: d.find_element(By.ID, "login-user").is_displayed())
        u = self.d.find_element(By.ID, "login-user")
        u.clear()
        u.send_keys(user)
        p = self.d.find_element(By.ID, "login-pass")
        p.clear()
        p.send_keys(password)
        self.d.find_element(By.ID, "login-submit").click()

    def wait(self, cond, timeout=WAIT, msg=""):
        try:
            return WebDriverWait(self.d, timeout, ignored_exceptions=(Exception,)).until(cond)
        except TimeoutException:
            self.shot("timeout")
            raise AssertionError("timed out waiting: %s\nbrowser log: %s"
                                 % (msg, self.d.get_log("browser")[-5:]))

    def wait_ready(self):
        self.wait(lambda d: d.execute_script(
            "var v = document.getElementById('view');"
            "return !document.getElementById('app').hidden && v.dataset.ready === '1'"),
            msg="page ready")

    def wait_table(self, tid):
        self.wait(lambda d: d.find_element(By.ID, "tbl-" + tid).get_attribute("data-state"),
                  msg="table %s loaded" % tid)
        return self.d.find_element(By.ID, "tbl-" + tid)

    def click(self, css):
        """Clicks the element, scrolled to the middle of the window first
        (the sticky header covers the top).  Tables redraw their rows every
        5 s, so a row found a moment ago may be gone: find it again."""
        def attempt(d):
            el = self.find(css)
            d.execute_script("arguments[0].scrollIntoView({block: 'center'})", el)
            el.click()
            return True
        self.wait(attempt, msg="click %s" % css)

    def find(self, css):
        return self.d.find_element(By.CSS_SELECTOR, css)

    def finds(self, css):
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def text(self, css):
        return self.find(css).text

    def open_fold(self, panel_id):
        el = self.find("#" + panel_id)
        if el.get_attribute("open") is None:
            summary = el.find_element(By.TAG_NAME, "summary")
            self.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", summary)
            summary.click()
        return el

    def fill(self, form_id, **values):
        for k, v in values.items():
            el = self.d.find_element(By.ID, "%s-%s" % (form_id, k))
            if el.tag_name == "select":
                Select(el).select_by_value(str(v))
            elif el.get_attribute("type") == "checkbox":
                if el.is_selected() != bool(v):
                    self.d.execute_script("arguments[0].scrollIntoView({block: 'center'})", el)
                    el.click()
            else:
                el.clear()
                el.send_keys(str(v))

    def submit(self, form_id):
        self.click("#%s button[type=submit]" % form_id)

    def confirm(self, text=None):
        self.wait(lambda d: d.find_element(By.ID, "modal").is_displayed(), msg="dialog")
        if text is not None:
            inp = self.d.find_element(By.ID, "modal-input")
            inp.clear()
            inp.send_keys(text)
        self.d.find_element(By.ID, "modal-ok").click()

    def flash(self, contains):
        self.wait(lambda d: any(contains in f.text for f in d.find_elements(By.CSS_SELECTOR, ".flash")),
                  msg="flash %r" % contains)

    def errors(self):
        return self.d.execute_script("return window.__uiErrors || []")

    def no_errors(self):
        errs = self.errors()
        severe = [e for e in self.d.get_log("browser")
                  if e.get("level") == "SEVERE" and "favicon" not in e.get("message", "")
                  and "the server responded with a status of 4" not in e.get("message", "")]
        assert errs == [] and severe == [], (errs, severe)

    def shot(self, name):
        path = os.path.join(self.shots, name + ".png")
        self.d.save_screenshot(path)
        return path


@pytest.fixture
def page(browser, ui, shots):
    p = Page(browser, ui, shots)
    yield p


@pytest.fixture
def logged_in(page):
    page.login()
    page.wait_ready()
    return page


# ---------------------------------------------------------------- static files

def test_static_files_are_served_with_types(ui):
    def fetch(method, path):
        c = http.client.HTTPConnection("127.0.0.1", ui.mgmt_port, timeout=5)
        c.request(method, path)
        r = c.getresponse()
        body = r.read()
        c.close()
        return r, body

    r, body = fetch("GET", "/")
    assert r.status == 200 and r.getheader("Content-Type") == "text/html; charset=utf-8"
    assert body.startswith(b"<!DOCTYPE html>") and b"app.js" in body
    assert r.getheader("Cache-Control")
    r2, body2 = fetch("GET", "/index.html")
    assert r2.status == 200 and body2 == body
    for path, ctype in (("/app.js", "text/javascript; charset=utf-8"),
                        ("/style.css", "text/css; charset=utf-8"),
                        ("/favicon.svg", "image/svg+xml"),
                        ("/app.js?v=1", "text/javascript; charset=utf-8")):
        r, b = fetch("GET", path)
        assert r.status == 200 and r.getheader("Content-Type") == ctype, path
        assert int(r.getheader("Content-Length")) == len(b) > 0
    # HEAD: the type and length of the file (a fresh connection: the HTTP
    # layer decides whether the body goes out).
    c = http.client.HTTPConnection("127.0.0.1", ui.mgmt_port, timeout=5)
    c.request("HEAD", "/style.css")
    r = c.getresponse()
    assert r.status == 200 and r.getheader("Content-Type") == "text/css; charset=utf-8"
    assert int(r.getheader("Content-Length")) > 1000
    c.close()
    # Anything else is the API's 404, and /api stays the API.
    r, b = fetch("GET", "/nope.js")
    assert r.status == 404 and json.loads(b) == {"error": "Object Not Found", "reason": "Not Found"}
    r, b = fetch("GET", "/api/overview")
    assert r.status == 401
    r, b = fetch("POST", "/index.html")
    assert r.status in (404, 405)


# ---------------------------------------------------------------- login

def test_login_shows_the_reason_then_logs_in(page, ui):
    page.login("guest", "wrong")
    page.wait(lambda d: d.find_element(By.ID, "login-error").is_displayed(), msg="login error")
    assert "Login failed" in page.text("#login-error")
    page.shot("login-failed")
    # A user without a management tag is refused with RabbitMQ's reason.
    user = uid("plain")
    assert ui.ctl("add_user", user, "pw")["ok"]
    page.login(user, "pw")
    page.wait(lambda d: "Not management user" in d.find_element(By.ID, "login-error").text,
              msg="not management user")
    page.login()
    page.wait_ready()
    assert "guest" in page.text("#who")
    assert page.d.execute_script("return !!sessionStorage.getItem('warren.auth')")
    page.no_errors()
    # Logging out forgets the credentials.
    page.click("#logout")
    page.wait(lambda d: d.find_element(By.ID, "login").is_displayed())
    assert not page.d.execute_script("return sessionStorage.getItem('warren.auth')")


def test_overview_on_an_empty_broker(page, shots):
    # A broker of its own: nothing declared, nothing connected.
    port = free_port()
    b = start_warren(**{"management.tcp.port": port})
    try:
        b.mgmt_port = port
        b.base = "http://127.0.0.1:%d/" % port
        p = Page(page.d, b, shots)
        p.login()
        p.wait_ready()
        assert p.find("#view").get_attribute("data-page") == "overview"
        totals = {c.get_attribute("data-total"): c.find_element(By.CSS_SELECTOR, ".value").text
                  for c in p.finds("#totals .card")}
        assert totals["queues"] == "0" and totals["connections"] == "0"
        assert totals["messages"] == "0"
        assert p.finds("#chart-rates svg.chart") and p.finds("#chart-lengths svg.chart")
        legend = [s.get_attribute("data-series") for s in p.finds("#chart-rates .legend [data-series]")]
        assert legend == ["publish", "deliver_get", "ack", "confirm"]
        p.no_errors()
        p.shot("overview-empty")
    finally:
        b.stop()


def test_overview_charts_keep_history(logged_in, ui):
    page = logged_in
    # Traffic, then at least two polls of /api/overview.
    conn = ui.connect()
    ch = conn.channel()
    q = uid("chart")
    ch.queue_declare(q)
    for i in range(200):
        ch.basic_publish("", q, b"x" * 10)
    time.sleep(0.3)
    page.open("/overview")
    n0 = page.d.execute_script("return JSON.parse(sessionStorage.getItem('warren.history')).length")
    page.wait(lambda d: d.execute_script(
        "return JSON.parse(sessionStorage.getItem('warren.history')).length") > n0,
        timeout=12, msg="a new sample")
    # The queue totals come from the statistics tick: a sample taken before
    # the tick that counted the 200 may still show 0; a later one shows them.
    page.wait(lambda d: d.execute_script(
        "var h = JSON.parse(sessionStorage.getItem('warren.history'));"
        "return h[h.length - 1].ready") >= 200, timeout=20, msg="a sample with the 200 queued")
    hist = page.d.execute_script("return JSON.parse(sessionStorage.getItem('warren.history'))")
    assert hist[-1]["ready"] >= 200
    assert page.finds("#chart-lengths path.series"), "a queued-messages line"
    page.no_errors()
    page.shot("overview")
    ch.queue_delete(q)
    conn.close()


# ---------------------------------------------------------------- every page

PAGES = [
    ("connections", "/api/connections", "connections"),
    ("channels", "/api/channels", "channels"),
    ("exchanges", "/api/exchanges", "exchanges"),
    ("queues", "/api/queues", "queues"),
    ("consumers", "/api/consumers", "consumers"),
    ("users", "/api/users", "users"),
    ("permissions", "/api/permissions", "permissions"),
    ("vhosts", "/api/vhosts", "vhosts"),
    ("policies", "/api/policies", "policies"),
]


@pytest.mark.parametrize("name,endpoint,table", PAGES, ids=[p[0] for p in PAGES])
def test_every_list_page(logged_in, ui, name, endpoint, table):
    page = logged_in
    page.need("GET", endpoint, what="the %s page's list" % name)
    # Something to show: a connection with a consumer on a queue.
    conn = ui.connect(client_properties={"connection_name": "ui-test"})
    ch = conn.channel()
    q = uid("page")
    ch.queue_declare(q)
    ch.basic_consume(q, lambda *a: None)
    try:
        page.open("/" + name)
        assert page.find("#view").get_attribute("data-page") == name
        t = page.wait_table(table)
        assert t.get_attribute("data-state") == "ok", t.text
        assert page.find("#nav a.active").get_attribute("data-nav") == name
        assert page.finds("#tbl-%s tbody tr" % table)
        page.no_errors()
        page.shot(name)
    finally:
        ch.queue_delete(q)
        conn.close()


def test_list_sorting_filtering_and_paging(logged_in, ui):
    page = logged_in
    conn = ui.connect()
    ch = conn.channel()
    prefix = uid("sortq")
    names = ["%s-%02d" % (prefix, i) for i in range(25)]
    for n in names:
        ch.queue_declare(n)
    try:
        page.open("/queues")
        page.wait_table("queues")
        Select(page.find("#tbl-queues select")).select_by_value("20")
        f = page.find("#tbl-queues input.filter")
        f.clear()
        f.send_keys(prefix)

        def shown():
            return [a.text for a in page.finds("#tbl-queues tbody td a")]
        page.wait(lambda d: shown() == names[:20], msg="first page of the filtered queues")
        assert "of 25 queues" in page.text("#tbl-queues .summary")
        def second_page(d):
            # A click that lands while a refresh re-renders the table is
            # lost (seen under CI load): click again until page 2 shows
            # (on the last page the button is disabled).
            if shown() == names[20:]:
                return True
            page.click("#tbl-queues .pager button[title='Next page']")
            return False
        page.wait(second_page, msg="second page")
        # Sort by name, descending.
        page.click("#tbl-queues th[data-key=name]")
        page.wait(lambda d: shown() == sorted(names, reverse=True)[:20], msg="reverse sort")
        # A regular expression.
        f.clear()
        f.send_keys(prefix + "-1[0-2]$")
        page.click("#tbl-queues .toolbar input[type=checkbox]")
        page.wait(lambda d: sorted(shown()) == names[10:13], msg="regex filter")
        page.no_errors()
        f.clear()
        f.send_keys("\b")
    finally:
        for n in names:
            ch.queue_delete(n)
        conn.close()


# ---------------------------------------------------------------- queue page

def _queue_page(page, q, vhost="/"):
    page.open("/queues/%s/%s" % ("%2F" if vhost == "/" else vhost, q))
    assert page.find("#view").get_attribute("data-page") == "queues-detail"


def test_queue_page_details_and_bindings(logged_in, ui):
    page = logged_in
    conn = ui.connect()
    ch = conn.channel()
    q = uid("qpage")
    ch.queue_declare(q, arguments={"x-max-length": 1000})
    page.need("GET", "/api/queues/%2F/" + q, what="the queue page")
    ch.queue_bind(q, "amq.direct", "rk")
    for i in range(3):
        ch.basic_publish("", q, b"hello %d" % i)
    time.sleep(0.2)
    try:
        _queue_page(page, q)
        page.wait(lambda d: d.find_element(By.CSS_SELECTOR, "#queue-totals [data-total=messages_ready] .value").text == "3",
                  msg="3 ready")
        assert "x-max-length=1000" in page.text("#queue-details")
        status, _ = page.http("GET", "/api/queues/%2F/" + q + "/bindings")
        if status in (404, 405):
            pytest.skip("GET /api/queues/VHOST/NAME/bindings answers %d" % status)
        page.wait(lambda d: "amq.direct" in d.find_element(By.ID, "queue-bindings").text, msg="binding")
        page.no_errors()
        page.shot("queue")
        # Add a binding, then remove it.
        page.need("POST", "/api/bindings/%2F/e/amq.fanout/q/" + q, {"routing_key": "", "arguments": {}},
                  what="adding a binding")
        page.http("DELETE", "/api/bindings/%2F/e/amq.fanout/q/" + q + "/~")
        page.fill("bind-queue", source="amq.topic", routing_key="a.#")
        page.submit("bind-queue")
        page.flash("Binding added")
        page.wait(lambda d: "a.#" in d.find_element(By.ID, "queue-bindings").text, msg="new binding")
        page.click("#queue-bindings button[data-unbind='amq.topic/%s/a.#']" % q)
        page.confirm()
        page.flash("Binding removed")
        page.wait(lambda d: "a.#" not in d.find_element(By.ID, "queue-bindings").text, msg="binding gone")
        page.no_errors()
    finally:
        ch.queue_delete(q)
        conn.close()


def test_publish_get_and_purge(logged_in, ui):
    page = logged_in
    conn = ui.connect()
    ch = conn.channel()
    q = uid("pubget")
    ch.queue_declare(q)
    try:
        page.need("POST", "/api/exchanges/%2F/amq.default/publish",
                  {"properties": {}, "routing_key": uid("nowhere"), "payload": "", "payload_encoding": "string"},
                  what="publishing")
        _queue_page(page, q)
        page.open_fold("publish-panel")
        page.fill("publish", payload='{"order": 42, "item": "tea"}',
                  headers="x-origin = ui-test", properties="content_type = application/json\nmessage_id = m-1")
        page.submit("publish")
        page.flash("Message published")
        m = ch.basic_get(q, auto_ack=False)
        assert m[2] == b'{"order": 42, "item": "tea"}'
        assert m[1].headers == {"x-origin": "ui-test"} and m[1].content_type == "application/json"
        assert m[1].delivery_mode == 2 and m[1].message_id == "m-1"
        ch.basic_nack(m[0].delivery_tag, requeue=True)

        page.need("POST", "/api/queues/%2F/" + q + "/get",
                  {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}, what="getting messages")
        page.open_fold("get-panel")
        page.fill("get-messages", count=5)
        page.submit("get-messages")
        page.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#got-messages .message"), msg="a message")
        got = page.text("#got-messages")
        assert '"order": 42' in got and "x-origin" in got and "m-1" in got
        page.no_errors()
        page.shot("queue-get")

        page.need("DELETE", "/api/queues/%2F/" + uid("nosuch") + "/contents", what="purging",
                  gone=(405, 501))
        page.click("#purge")
        page.confirm()
        page.flash("Queue purged")
        page.wait(lambda d: d.find_element(By.CSS_SELECTOR, "#queue-totals [data-total=messages] .value").text == "0",
                  msg="empty after purge")
        assert ch.queue_declare(q, passive=True).method.message_count == 0
        page.no_errors()
    finally:
        ch.queue_delete(q)
        conn.close()


def test_get_decodes_x_death(logged_in, ui):
    page = logged_in
    conn = ui.connect()
    ch = conn.channel()
    dlx, src, dead = uid("dlx"), uid("src"), uid("dead")
    ch.exchange_declare(dlx, "fanout")
    ch.queue_declare(dead)
    ch.queue_bind(dead, dlx)
    ch.queue_declare(src, arguments={"x-dead-letter-exchange": dlx, "x-message-ttl": 10})
    ch.basic_publish("", src, b"expired soon")
    try:
        deadline = time.time() + 5
        while ch.queue_declare(dead, passive=True).method.message_count < 1:
            assert time.time() < deadline
            time.sleep(0.05)
        page.need("POST", "/api/queues/%2F/" + dead + "/get",
                  {"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}, what="getting messages")
        _queue_page(page, dead)
        page.open_fold("get-panel")
        page.submit("get-messages")
        page.wait(lambda d: d.find_elements(By.CSS_SELECTOR, "#got-messages .death"), msg="x-death table")
        death = page.text("#got-messages .death")
        assert "expired" in death and src in death
        # The message came out of the dead-letter exchange.
        assert dlx in page.text("#got-messages .message")
        page.no_errors()
        page.shot("queue-x-death")
    finally:
        for qn in (src, dead):
            ch.queue_delete(qn)
        ch.exchange_delete(dlx)
        conn.close()


def test_dead_letter_replay(logged_in, ui):
    page = logged_in
    conn = ui.connect()
    ch = conn.channel()
    dlx, src, dead = uid("dlx"), uid("src"), uid("dead")
    ch.exchange_declare(dlx, "fanout")
    ch.queue_declare(dead)
    ch.queue_bind(dead, dlx)
    ch.queue_declare(src, arguments={"x-dead-letter-exchange": dlx, "x-message-ttl": 10})
    try:
        page.need("GET", "/api/queues/%2F/" + dead + "/dead-letters", what="dead-letter inspection")
        for i in range(4):
            ch.basic_publish("", src, b"m%d" % i)
        deadline = time.time() + 5
        while ch.queue_declare(dead, passive=True).method.message_count < 4:
            assert time.time() < deadline
            time.sleep(0.05)
        # Replay puts them back in src, where they would expire again: make
        # src keep them this time.
        ch.queue_delete(src)
        ch.queue_declare(src)
        _queue_page(page, dead)
        btn = "#dead-letters button[data-replay-group='%s/expired']" % src
        page.wait(lambda d: d.find_elements(By.CSS_SELECTOR, btn), msg="a dead-letter group")
        assert "4" in page.text("#dead-letters table")
        page.shot("queue-dead-letters")
        page.click(btn)
        page.confirm()
        page.flash("Replayed 4 message")
        assert ch.queue_declare(src, passive=True).method.message_count == 4
        assert ch.queue_declare(dead, passive=True).method.message_count == 0
        page.no_errors()
    finally:
        for qn in (src, dead):
            ch.queue_delete(qn)
        ch.exchange_delete(dlx)
        conn.close()


def test_move_messages(logged_in, ui):
    page = logged_in
    conn = ui.connect()
    ch = conn.channel()
    a, b = uid("mvsrc"), uid("mvdst")
    ch.queue_declare(a)
    ch.queue_declare(b)
    for i in range(5):
        ch.basic_publish("", a, b"m%d" % i)
    try:
        page.need("POST", "/api/queues/%2F/" + uid("nosuch") + "/move", {"destination": b},
                  what="moving messages", gone=(405, 501))
        _queue_page(page, a)
        page.open_fold("move-panel")
        page.fill("move-messages", destination=b, count=3)
        page.submit("move-messages")
        page.flash("Moved 3 message")
        assert ch.queue_declare(a, passive=True).method.message_count == 2
        assert ch.queue_declare(b, passive=True).method.message_count == 3
        page.no_errors()
    finally:
        ch.queue_delete(a)
        ch.queue_delete(b)
        conn.close()


def test_delete_queue_from_its_page(logged_in, ui):
    page = logged_in
    conn = ui.connect()
    ch = conn.channel()
    q = uid("delq")
    ch.queue_declare(q)
    try:
        page.need("DELETE", "/api/queues/%2F/" + uid("nosuch"), what="deleting a queue",
                  gone=(405, 501))
        _queue_page(page, q)
        page.click("#delete-queue")
        page.confirm()
        page.flash("Queue deleted")
        page.wait(lambda d: d.find_element(By.ID, "view").get_attribute("data-page") == "queues", msg="back to queues")
        status, _ = page.http("GET", "/api/queues/%2F/" + q)
        assert status == 404
    finally:
        ch.queue_delete(q)
        conn.close()


# ---------------------------------------------------------------- exchange page

def test_exchange_page_bindings_and_publish(logged_in, ui):
    page = logged_in
    page.need("GET", "/api/exchanges/%2F/amq.direct", what="the exchange page")
    page.need("GET", "/api/exchanges/%2F/amq.direct/bindings/source", what="exchange bindings")
    conn = ui.connect()
    ch = conn.channel()
    x, q = uid("xpage"), uid("xq")
    ch.exchange_declare(x, "direct")
    ch.queue_declare(q)
    ch.queue_bind(q, x, "rk")
    try:
        page.open("/exchanges/%%2F/%s" % x)
        page.wait(lambda d: q in d.find_element(By.ID, "bindings-source").text, msg="binding to the queue")
        page.no_errors()
        page.shot("exchange")
        page.need("POST", "/api/exchanges/%2F/" + x + "/publish",
                  {"properties": {}, "routing_key": "none", "payload": "", "payload_encoding": "string"},
                  what="publishing")
        page.open_fold("publish-panel")
        page.fill("publish", routing_key="rk", payload="via exchange")
        page.submit("publish")
        page.flash("Message published")
        m = ch.basic_get(q, auto_ack=True)
        assert m[2] == b"via exchange"
        page.no_errors()
    finally:
        ch.queue_delete(q)
        ch.exchange_delete(x)
        conn.close()


# ---------------------------------------------------------------- connections

def test_close_connection_with_reason(logged_in, ui):
    page = logged_in
    page.need("GET", "/api/connections", what="the connections list")
    victim = ui.connect(client_properties={"connection_name": "ui-victim"})
    try:
        page.open("/connections")
        page.wait_table("connections")
        f = page.find("#tbl-connections input.filter")
        status, conns = page.http("GET", "/api/connections")
        name = [c["name"] for c in conns if c.get("user_provided_name") == "ui-victim"][0]
        f.send_keys(name)
        sel = "#tbl-connections button[data-close='%s']" % name
        page.wait(lambda d: d.find_elements(By.CSS_SELECTOR, sel), msg="the victim's row")
        page.need("DELETE", "/api/connections/" + uid("nosuch"), what="closing connections",
                  gone=(405, 501))
        page.click(sel)
        page.confirm("Closed by the UI test")
        page.flash("Connection closed")
        deadline = time.time() + 5
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker, match="Closed by the UI test"):
            while time.time() < deadline:
                victim.process_data_events(0.1)
    finally:
        if victim.is_open:
            victim.close()


# ---------------------------------------------------------------- admin

def test_create_and_delete_user(logged_in, ui):
    page = logged_in
    page.need("GET", "/api/users", what="the users list")
    page.need("PUT", "/api/users/" + uid("probe"), {"password": "x", "tags": ""}, what="creating users")
    for u in [x["name"] for x in page.http("GET", "/api/users")[1] if x["name"].startswith("probe-")]:
        page.http("DELETE", "/api/users/" + u)
    user = uid("uiuser")
    page.open("/users")
    page.wait_table("users")
    page.fill("add-user", name=user, password="s3cret", tags="management")
    page.submit("add-user")
    page.flash("User %s saved" % user)
    page.wait(lambda d: user in d.find_element(By.ID, "tbl-users").text, msg="the new user listed")
    page.shot("users")
    # The new user can log in to the API.
    assert ui.ctl("set_permissions", user, ".*", ".*", ".*")["ok"]
    status, who = page.http("GET", "/api/whoami", user=user, password="s3cret")
    assert status == 200 and who["tags"] == ["management"]
    page.click("#tbl-users button[data-delete-user='%s']" % user)
    page.confirm()
    page.flash("User %s deleted" % user)
    page.wait(lambda d: user not in d.find_element(By.ID, "tbl-users").text, msg="user gone")
    page.no_errors()


def test_vhosts_permissions_policies_limits(logged_in, ui):
    page = logged_in
    page.need("PUT", "/api/vhosts/" + uid("probe-vh"), {}, what="creating vhosts")
    for v in [x["name"] for x in page.http("GET", "/api/vhosts")[1] if x["name"].startswith("probe-vh")]:
        page.http("DELETE", "/api/vhosts/" + v)
    vh = uid("uivh")
    page.open("/vhosts")
    page.wait_table("vhosts")
    page.fill("add-vhost", name=vh, description="made in the UI")
    page.submit("add-vhost")
    page.flash("Virtual host %s created" % vh)
    page.wait(lambda d: vh in d.find_element(By.ID, "tbl-vhosts").text)
    page.shot("vhosts")

    page.need("PUT", "/api/permissions/%s/guest" % vh, {"configure": ".*", "write": ".*", "read": ".*"},
              what="setting permissions")
    page.open("/permissions")
    page.wait_table("permissions")
    page.fill("set-permission", vhost=vh, configure="^ui\\.", write=".*", read=".*")
    page.submit("set-permission")
    page.flash("Permissions of guest in %s set" % vh)
    page.wait(lambda d: "^ui\\." in d.find_element(By.ID, "tbl-permissions").text)

    page.need("GET", "/api/policies", what="the policies list")
    page.need("PUT", "/api/policies/%s/probe" % vh, {"pattern": "^x", "definition": {"max-length": 1}},
              what="setting policies")
    page.open("/policies")
    page.wait_table("policies")
    page.fill("add-policy", vhost=vh, name="cap", pattern="^orders\\.", definition="max-length = 10000")
    page.submit("add-policy")
    page.flash("Policy cap saved")
    page.wait(lambda d: "max-length=10000" in d.find_element(By.ID, "tbl-policies").text)
    page.shot("policies")

    page.need("PUT", "/api/vhost-limits/%s/max-queues" % vh, {"value": 100}, what="vhost limits")
    page.open("/limits")
    page.fill("set-vhost-limit", vhost=vh, limit="max-connections", value=7)
    page.submit("set-vhost-limit")
    page.flash("Limit set")
    page.wait(lambda d: vh in d.find_element(By.ID, "vhost-limits").text)
    page.shot("limits")
    page.no_errors()

    page.open("/vhosts")
    page.wait_table("vhosts")
    page.click("#tbl-vhosts button[data-delete-vhost='%s']" % vh)
    page.confirm()
    page.flash("Virtual host %s deleted" % vh)


def test_definitions_export_and_import(logged_in, ui, tmp_path):
    page = logged_in
    page.need("GET", "/api/definitions", what="definitions export")
    page.open("/definitions")
    # The download: intercept the blob the page builds.
    page.d.execute_script("""
        window.__downloads = [];
        const orig = HTMLAnchorElement.prototype.click;
        HTMLAnchorElement.prototype.click = function () {
            if (this.download) { window.__downloads.push(this.download);
                fetch(this.href).then(r => r.text()).then(t => window.__downloaded = t); return; }
            return orig.call(this);
        };""")
    page.click("#export-definitions")
    page.flash("Definitions exported")
    page.wait(lambda d: d.execute_script("return window.__downloaded"), msg="the download")
    defs = json.loads(page.d.execute_script("return window.__downloaded"))
    assert "queues" in defs and "exchanges" in defs
    assert page.d.execute_script("return window.__downloads[0]").startswith("warren-definitions")
    page.shot("definitions")

    q = uid("imported")
    page.need("POST", "/api/definitions", {}, what="definitions import")
    f = tmp_path / "defs.json"
    f.write_text(json.dumps({"queues": [{"name": q, "vhost": "/", "durable": True, "auto_delete": False, "arguments": {}}]}))
    page.find("#import-file").send_keys(str(f))
    page.click("#import-definitions")
    page.flash("Definitions imported")
    status, _ = page.http("GET", "/api/queues/%2F/" + q)
    assert status == 200
    page.http("DELETE", "/api/queues/%2F/" + q)
    page.no_errors()


# ---------------------------------------------------------------- scale

def test_ten_thousand_queues(logged_in, ui):
    page = logged_in
    vh = uid("big")
    assert ui.ctl("add_vhost", vh)["ok"]
    assert ui.ctl("set_permissions", "guest", ".*", ".*", ".*", vhost=vh)["ok"]
    conn = ui.connect(virtual_host=vh)
    ch = conn.channel()
    names = ["q%05d" % i for i in range(10000)]
    t0 = time.monotonic()
    for n in names:
        ch.queue_declare(n)
    declared = time.monotonic() - t0
    try:
        # The vhost picker (reloaded: the vhost is newer than the page).
        page.open("/queues")
        page.d.refresh()
        page.wait_ready()
        t1 = time.monotonic()
        Select(page.find("#vhost-select")).select_by_value(vh)
        page.wait(lambda d: "of 10,000 queues" in d.find_element(By.CSS_SELECTOR, "#tbl-queues .summary").text,
                  timeout=30, msg="10,000 queues counted")
        shown = time.monotonic() - t1
        assert len(page.finds("#tbl-queues tbody tr")) == 100
        assert page.find("#tbl-queues tbody td a").text == "q00000"
        f = page.find("#tbl-queues input.filter")
        f.send_keys("q0999")
        page.wait(lambda d: "of 10 queues" in d.find_element(By.CSS_SELECTOR, "#tbl-queues .summary").text,
                  timeout=15, msg="filtered to 10")
        page.click("#tbl-queues th[data-key=name]")
        page.wait(lambda d: d.find_element(By.CSS_SELECTOR, "#tbl-queues tbody td a").text == "q09999", msg="sorted")
        page.no_errors()
        page.shot("queues-10k")
        print("\n10,000 queues: declared in %.1f s, first page shown in %.2f s" % (declared, shown))
        assert shown < 10
        f.clear()
    finally:
        Select(page.find("#vhost-select")).select_by_value("")
        conn.close()
        ui.ctl("delete_vhost", vh)
