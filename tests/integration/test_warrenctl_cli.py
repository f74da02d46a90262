"""warrenctl's client side, against a fake control socket.

These tests start no broker: a thread in the test process listens on a
Unix socket, records each request line and answers with a canned reply, so
they check what warrenctl alone is responsible for (argument parsing,
usage errors, finding the socket, printing tables and JSON the way
rabbitmqctl 3.10 does, exit statuses).  The broker's own answers are tested
with the broker.
"""
import json
import os
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from conftest import warren_bin

pytestmark = pytest.mark.skipif(
    os.environ.get("AMQP_URL") is not None,
    reason="warrenctl client tests need no broker; skipped against AMQP_URL")


def warrenctl_bin():
    """warrenctl is built next to warren."""
    path = Path(warren_bin()).with_name("warrenctl")
    if not os.access(path, os.X_OK):
        pytest.fail("warrenctl not found at %s (build the warrenctl target)" % path)
    return str(path)


class FakeBroker:
    """A control socket that answers each command from a table of replies."""

    def __init__(self, replies):
        self.dir = tempfile.mkdtemp(prefix="wctl-")
        self.path = os.path.join(self.dir, "warren.sock")
        self.replies = replies
        self.requests = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(8)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn, conn.makefile("rwb") as f:
            for line in f:
                req = json.loads(line)
                self.requests.append(req)
                reply = self.replies.get(req["command"])
                if reply is None:
                    reply = {"ok": False, "error": "Error:\nno canned reply", "exit": 70}
                if reply == "hang":
                    continue
                f.write(json.dumps(reply).encode() + b"\n")
                f.flush()

    def close(self):
        self.sock.close()


QUEUES = {
    "ok": True,
    "info": "Listing queues for vhost / ...",
    "columns": ["name", "messages", "durable", "arguments", "policy", "rate", "tags"],
    "rows": [
        ["q1", 3, True, {"x-max-length": 10, "x-dead-letter-exchange": "dx"}, None, 0.4,
         ["a", "b"]],
        ["q2", 0, False, {}, "", 1000.0, []],
    ],
}

REPLIES = {
    "list_queues": QUEUES,
    "list_exchanges": {"ok": False, "error": "Info key(s) bogus are not supported", "exit": 64},
    "list_users": {"ok": True, "info": "Listing users ...", "columns": ["user", "tags"],
                   "rows": [["guest", ["administrator"]], ["d", ["management", "monitoring"]]]},
    "list_policies": {"ok": True, "info": 'Listing policies for vhost "/" ...',
                      "columns": ["vhost", "name"], "rows": []},
    "list_consumers": {"ok": True, "info": "Listing consumers in vhost / ...",
                       "columns": ["queue_name"], "rows": []},
    "add_user": {"ok": True, "info": 'Adding user "bob" ...', "message": "Done."},
    "delete_user": {"ok": False, "info": 'Deleting user "x" ...',
                    "error": 'Error:\nUser "x" does not exist', "exit": 67},
    "delete_vhost": {"ok": False, "info": 'Deleting vhost "x" ...',
                     "error": "Virtual host 'x' does not exist", "exit": 65},
    "authenticate_user": {"ok": True, "info": 'Authenticating user "u" ...', "message": "Success"},
    "ping": {"ok": True},
    "set_policy": {"ok": True, "info": "Setting policy ..."},
    "delete_queue": {"ok": True, "info": "Deleting queue ...", "message": "Queue was successfully deleted with 0 messages"},
    "export_definitions": {"ok": True, "definitions": {"users": [], "vhosts": [{"name": "/"}]}},
    "import_definitions": {"ok": True, "message": "Imported."},
    "purge_queue": "hang",
}


@pytest.fixture
def fake():
    broker = FakeBroker(REPLIES)
    yield broker
    broker.close()


def ctl(*args, node=None, env=None, stdin=None):
    cmd = [warrenctl_bin()]
    if node is not None:
        cmd += ["-n", node]
    full_env = dict(os.environ, NO_COLOR="1")
    full_env.update(env or {})
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=30,
                          env=full_env, input=stdin)


def test_list_table_formats_each_value_type(fake):
    r = ctl("list_queues", "name", "messages", node=fake.path)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert r.stdout.splitlines() == [
        "Timeout: 60.0 seconds ...",
        "Listing queues for vhost / ...",
        "name\tmessages\tdurable\targuments\tpolicy\trate\ttags",
        'q1\t3\ttrue\t[{"x-max-length",10},{"x-dead-letter-exchange","dx"}]\t\t0.4\t[a, b]',
        "q2\t0\tfalse\t[]\t\t1.0e3\t[]",
    ]
    assert fake.requests[-1] == {"command": "list_queues", "vhost": "/",
                                 "args": ["name", "messages"], "options": {}}


def test_list_columns_split_on_commas_and_timeout_banner(fake):
    r = ctl("list_queues", "-t", "5", "name,messages", node=fake.path)
    assert r.returncode == 0
    assert r.stdout.splitlines()[0] == "Timeout: 5.0 seconds ..."
    assert fake.requests[-1]["args"] == ["name", "messages"]


def test_quiet_silent_and_no_headers(fake):
    quiet = ctl("list_queues", "--quiet", node=fake.path).stdout.splitlines()
    assert quiet[0].startswith("name\t") and len(quiet) == 3
    silent = ctl("-s", "list_queues", node=fake.path).stdout.splitlines()
    assert silent[0].startswith("q1\t") and len(silent) == 2
    noh = ctl("list_queues", "--no-table-headers", node=fake.path).stdout.splitlines()
    assert noh[:2] == ["Timeout: 60.0 seconds ...", "Listing queues for vhost / ..."]
    assert noh[2].startswith("q1\t")


def test_json_formatter(fake):
    r = ctl("list_queues", "--formatter", "json", node=fake.path)
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0] == "[" and lines[-1] == "]"
    assert lines[1].startswith('{"name":"q1",') and lines[2].startswith(',{"name":"q2",')
    rows = json.loads(r.stdout)
    assert rows[0]["arguments"] == [["x-max-length", "long", 10],
                                    ["x-dead-letter-exchange", "longstr", "dx"]]
    assert rows[0]["policy"] is None and rows[0]["tags"] == ["a", "b"]
    assert rows[1]["arguments"] == [] and rows[1]["durable"] is False
    users = ctl("list_users", "--formatter=json", node=fake.path).stdout
    assert users == ('[\n{"user":"guest","tags":["administrator"]}\n'
                     ',{"user":"d","tags":["management","monitoring"]}\n]\n')


def test_empty_listings(fake):
    # Streamed listings print nothing; whole ones an empty line (or "[]").
    assert ctl("list_consumers", node=fake.path).stdout == "Listing consumers in vhost / ...\n"
    assert ctl("list_consumers", "--formatter", "json", node=fake.path).stdout == "[\n]\n"
    assert ctl("list_policies", node=fake.path).stdout == 'Listing policies for vhost "/" ...\n\n'
    assert ctl("list_policies", "--formatter", "json", node=fake.path).stdout == "[]\n"


def test_action_info_and_message(fake):
    r = ctl("add_user", "bob", "pw", node=fake.path)
    assert (r.returncode, r.stdout) == (0, 'Adding user "bob" ...\nDone.\n')
    assert ctl("add_user", "bob", "pw", "-q", node=fake.path).stdout == "Done.\n"
    r = ctl("authenticate_user", "u", "pw", "--formatter", "json", node=fake.path)
    assert r.stdout == '{"message":"Success"}\n'


def test_command_flags_go_into_options(fake):
    r = ctl("set_policy", "--priority", "1", "--apply-to", "queues", "p", "^x", "{}",
            "-p", "v", node=fake.path)
    assert r.returncode == 0, r.stderr
    assert fake.requests[-1] == {"command": "set_policy", "vhost": "v",
                                 "args": ["p", "^x", "{}"],
                                 "options": {"priority": "1", "apply-to": "queues"}}
    ctl("delete_queue", "-e", "--if-unused", "q", node=fake.path)
    assert fake.requests[-1]["options"] == {"if-empty": "true", "if-unused": "true"}


def test_broker_refusals(fake):
    r = ctl("delete_user", "x", node=fake.path)
    assert r.returncode == 67
    assert r.stdout == 'Deleting user "x" ...\n'
    assert r.stderr == 'Error:\nUser "x" does not exist\n'
    r = ctl("delete_vhost", "x", node=fake.path)
    assert (r.returncode, r.stderr) == (65, "Virtual host 'x' does not exist\n")
    r = ctl("list_exchanges", "bogus", node=fake.path)
    assert r.returncode == 64 and r.stdout == ""
    assert r.stderr.startswith("Error (argument validation): Info key(s) bogus are not "
                               "supported\nArguments given:\n\t-n ")
    assert "warrenctl [--node <node>] [--longnames] [--quiet] list_exchanges" in r.stderr


@pytest.mark.parametrize("args,problem", [
    (["set_permissions", "u"], "not enough arguments."),
    (["add_user", "a", "b", "c"], "too many arguments."),
    (["list_users", "extra"], "too many arguments."),
    (["list_queues", "--bogus-flag"], "Invalid options for this command:\n--bogus-flag : "),
    (["list_queues", "--formatter", "xml"], "formatter"),
    (["list_queues", "-t", "soon"], "timeout"),
])
def test_usage_errors_exit_64(fake, args, problem):
    r = ctl(*args, node=fake.path)
    assert r.returncode == 64
    assert r.stderr.startswith("Error (argument validation): " + problem)
    assert "\nUsage\n" in r.stderr
    assert fake.requests == []


def test_unknown_and_missing_command():
    r = ctl("bogus_command")
    assert r.returncode == 64
    assert r.stderr.startswith("\nCommand 'bogus_command' not found. \n")
    assert "   list_queues " in r.stderr
    r = ctl()
    assert r.returncode == 64 and "Available commands:" in r.stderr


def test_node_down_exit_69_names_socket(tmp_path):
    sock = str(tmp_path / "nothing.sock")
    r = ctl("list_queues", node=sock)
    assert r.returncode == 69
    assert r.stdout == ""
    assert "unable to perform an operation on node '%s'" % sock in r.stderr
    r = ctl("ping", "-t", "1", node=sock)
    assert r.returncode == 69
    assert "Failed to connect and authenticate to %s in 1000 ms" % sock in r.stderr


def test_socket_found_from_data_dir_and_config(tmp_path, fake):
    r = ctl("list_queues", env={"WARREN_DATA_DIR": str(tmp_path)})
    assert r.returncode == 69 and str(tmp_path / "warren.sock") in r.stderr
    conf = tmp_path / "warren.conf"
    conf.write_text("data_dir = %s\n" % fake.dir)
    r = ctl("--config", str(conf), "ping")
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("Ping succeeded\n")
    assert ctl("ping", "-q", node=fake.dir).stdout == "Ping succeeded\n"


def test_timeout_exit_75(fake):
    r = ctl("purge_queue", "q", "-t", "1", node=fake.path)
    assert r.returncode == 75
    assert "timed out" in r.stderr


def test_await_startup(fake, tmp_path):
    assert ctl("await_startup", node=fake.path).returncode == 0
    r = ctl("await_startup", "-t", "1", node=str(tmp_path / "none.sock"))
    assert r.returncode == 69


def test_definitions_files(fake, tmp_path):
    out = tmp_path / "defs.json"
    r = ctl("export_definitions", str(out), node=fake.path)
    assert r.returncode == 0, r.stderr
    assert r.stdout == 'Exporting definitions in JSON to a file at "%s" ...\n' % out
    assert json.loads(out.read_text()) == {"users": [], "vhosts": [{"name": "/"}]}
    r = ctl("export_definitions", "-", node=fake.path)
    assert json.loads(r.stdout) == {"users": [], "vhosts": [{"name": "/"}]}
    r = ctl("import_definitions", str(out), node=fake.path)
    assert r.returncode == 0
    assert fake.requests[-1]["args"] == [out.read_text()]
    assert r.stdout.splitlines()[-1] == "Imported."
    r = ctl("import_definitions", "-", node=fake.path, stdin='{"x":1}')
    assert fake.requests[-1]["args"] == ['{"x":1}']
    r = ctl("import_definitions", str(tmp_path / "missing.json"), node=fake.path)
    assert r.returncode == 65 and "does not exist" in r.stderr


def test_help():
    r = ctl("help")
    assert r.returncode == 0 and r.stderr == ""
    assert "Available commands:" in r.stdout and "   set_policy " in r.stdout
    r = ctl("help", "list_queues")
    assert r.returncode == 0
    assert "warrenctl [--node <node>] [--longnames] [--quiet] list_queues" in r.stdout
    assert "set_policy" in ctl("set_policy", "--help").stdout
    r = ctl("help", "nope")
    assert (r.returncode, r.stderr) == (64, "Error:\n\nCommand 'nope' not found.\n")
    names = ctl("help", "--list-commands").stdout.split()
    assert "list_queues" in names and "import_definitions" in names
    assert ctl("--version").stdout.startswith("warrenctl ")
