"""The fleet dashboard (node/admind/web, docs/dashboard.md) in a real
browser: Debian's chromium, headless, driven by playwright-core through
tests/browser/driver.mjs (one JSON command per line; elements found by
role and label).

- Against a 3-node fleet (cluster_util.Fleet, every node's admind on its
  own loopback port): the page lists three alive members; mail over the
  rate limit through two nodes shows the source with both nodes' shares
  and its deferred state; a block added on the page (confirmed, signed in
  as a scheduler.auth user) refuses mail on another node; an ETRN from
  the page flushes the queues of all three nodes into a sink; a killed
  node turns suspect, then dead. Screenshots are saved under the test's
  tmp dir (paths printed).
- Against tests/browser/mock_admind.mjs (the API as docs/admin-api.md
  describes it, canned data): the page's own behaviour, also where
  admind or clusterd are not built.

Every wait is a bounded poll of the page's content; no sleeps, no timing
assertions. tests/browser/node_modules comes from `npm ci` (run here when
it is missing; the test is skipped when it cannot be had).
"""

import json
import os
import pathlib
import select
import shutil
import signal
import subprocess
import urllib.request

import pytest

from conftest import BIN, COMMAND_TIMEOUT, REPO, free_port, pid_alive, \
    wait_for
from scheduler_util import ADMIN_PASS, ADMIN_USER, add_admin_user

cluster_util = pytest.importorskip("cluster_util")
fleet_factory = cluster_util.fleet_factory  # the fixture

BROWSER_DIR = REPO / "tests" / "browser"
CHROMIUM = os.environ.get("ZM_CHROMIUM", "/usr/bin/chromium")
NODE = shutil.which("node")
REPLY_TIMEOUT = 120  # one driver command (each of its actions is bounded)


def _browser_missing():
    """Why the browser test cannot run here, or None."""
    if not NODE:
        return "node (nodejs) is not installed"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is not installed (scripts/install-deps)"
    if (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        return None
    npm = shutil.which("npm")
    if not npm:
        return "tests/browser/node_modules is missing and npm is not installed"
    proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund",
                           "--prefer-offline"], cwd=BROWSER_DIR,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=600)
    if proc.returncode != 0:
        return ("npm ci in tests/browser failed: " +
                proc.stdout.decode(errors="replace").strip()[-300:])
    return None


_MISSING = _browser_missing()
pytestmark = pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))


class Page:
    """The dashboard in headless Chromium (tests/browser/driver.mjs)."""

    def __init__(self, url, log_dir):
        self.log = open(pathlib.Path(log_dir) / "browser-driver.log", "wb")
        self.proc = subprocess.Popen(
            [NODE, str(BROWSER_DIR / "driver.mjs")], cwd=BROWSER_DIR,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
            env={**os.environ, "ZM_CHROMIUM": CHROMIUM},
            start_new_session=True)
        self._buf = b""
        self.call("open", url=url)

    def call(self, cmd, **args):
        """One command; its result, or AssertionError with the reason."""
        self.proc.stdin.write((json.dumps({"cmd": cmd, **args}) + "\n")
                              .encode())
        self.proc.stdin.flush()
        line = self._readline()
        reply = json.loads(line)
        assert reply["ok"], f"dashboard {cmd} {args}: {reply['error']}"
        return reply["result"]

    def _readline(self):
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            ready, _, _ = select.select([fd], [], [], REPLY_TIMEOUT)
            assert ready, f"browser driver silent for {REPLY_TIMEOUT}s"
            chunk = os.read(fd, 65536)
            assert chunk, "browser driver exited (see browser-driver.log)"
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line

    def wait(self, cmd, check, what, timeout=None, **args):
        """Polls `cmd` until `check(result)` is truthy; returns the result."""
        def poll():
            result = self.call(cmd, **args)
            return result if check(result) else None
        kw = {"timeout": timeout} if timeout else {}
        return wait_for(poll, interval=0.2, what=what, **kw)

    def wait_members(self, want, what):
        return self.wait("members", lambda m: all(
            m.get(n) == s for n, s in want.items()), what)

    def problems(self):
        return self.call("problems")

    def close(self):
        try:
            self.call("close")
        except (AssertionError, OSError, ValueError):
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.log.close()


@pytest.fixture
def page_factory(tmp_path):
    pages = []

    def make(url):
        p = Page(url, tmp_path)
        pages.append(p)
        return p

    yield make
    for p in pages:
        p.close()


# ----- against the mock API --------------------------------------------------

@pytest.fixture
def mock_admind(tmp_path):
    log = open(tmp_path / "mock-admind.log", "wb")
    proc = subprocess.Popen([NODE, str(BROWSER_DIR / "mock_admind.mjs"), "0"],
                            cwd=BROWSER_DIR, stdout=subprocess.PIPE,
                            stderr=log, start_new_session=True)
    ready, _, _ = select.select([proc.stdout], [], [], COMMAND_TIMEOUT)
    assert ready, "mock_admind did not start"
    first = proc.stdout.readline().decode().split()
    assert first and first[0] == "listening", first
    yield f"http://127.0.0.1:{first[1]}/"
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def mock_control(base, what, **body):
    """POST /api/v1/mock/<what> of mock_admind.mjs (its test controls)."""
    req = urllib.request.Request(
        f"{base}api/v1/mock/{what}", data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=COMMAND_TIMEOUT) as r:
        assert r.status == 200


def test_page_against_the_mock_api(mock_admind, page_factory, tmp_path):
    page = page_factory(mock_admind)
    page.wait_members({"n1": "alive", "n2": "alive", "n3": "alive"},
                      "three alive members")
    src = page.wait("source", lambda s: s is not None,
                    "the over-limit source", key="ip4:203.0.113.9")
    assert src["state"] == "deferred", src
    assert set(src["nodes"]) == {"n1", "n2"}, src

    # The first change asks for credentials (the login dialog).
    text = page.call("policy_add", key="192.0.2.99", action="defer",
                     reason="testing", user="root", password="secret")
    assert "DEFER 192.0.2.99" in text, text
    page.wait("policy", lambda p: p.get("192.0.2.99") == "defer",
              "the new entry listed")

    page.call("etrn", domain="etrn.test", user="root", password="secret")
    results = page.wait("etrn_results", lambda r: len(r) == 3 and all(
        v["state"] == "done" for v in r.values()), "three ETRN answers",
        domain="etrn.test")
    assert results["n3"]["messages"] == "3", results
    shot = page.call("screenshot", path=str(tmp_path / "dashboard-mock.png"))
    print("screenshot:", shot)
    assert page.problems() == []

    # The event stream goes away: the page says so, keeps up by polling,
    # and reconnects by itself when the stream is back.
    page.wait("live", lambda s: s == "live", "the stream live")
    mock_control(mock_admind, "stream", up=False)
    page.wait("live", lambda s: s != "live", "the page to see the stream gone")
    mock_control(mock_admind, "kill", node="n2")
    page.wait_members({"n1": "alive", "n2": "dead", "n3": "alive"},
                      "n2 dead on the page while the stream is down")
    mock_control(mock_admind, "stream", up=True)
    page.wait("live", lambda s: s == "live", "the stream back by itself")


# ----- against a 3-node fleet -------------------------------------------------

needs_fleet = pytest.mark.skipif(
    not ((BIN / "admind").exists() and (BIN / "clusterd").exists()),
    reason="admind or clusterd is not built")


def kill_node(node):
    """SIGKILL to every program of the node, the supervisor first (so
    nothing is restarted): the node vanishes as in a crash."""
    run = node.home / "run"
    pids = []
    for name in ["zmailer"] + sorted(p.stem for p in run.glob("*.pid")):
        pid = node.pid(name)
        if pid and pid not in pids and pid_alive(pid):
            pids.append(pid)
    assert pids, "no running program found"
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in pids:
        wait_for(lambda pid=pid: not pid_alive(pid), what=f"pid {pid} gone")


@needs_fleet
def test_dashboard_on_a_three_node_fleet(fleet_factory, page_factory,
                                         tmp_path):
    test_fleet = pytest.importorskip("test_fleet")
    from sink_util import Sink
    with Sink() as sink:
        etrn_setup = test_fleet.etrn_customer(sink.port)
        admin_ports = {}

        def setup(node):
            test_fleet.limited(node)
            etrn_setup(node)
            add_admin_user(node)
            # node_factory gives admind a free port (zmailer init
            # --admin-listen); without that, the test picks one.
            port = getattr(node, "admin_port", None)
            if not port:
                port = free_port()
                (node.etc / "admin.conf").write_text(
                    f"listen 127.0.0.1:{port}\n")
            admin_ports[node.node_id] = port

        # A suspicion long enough for the page to show it before the
        # death is declared.
        fleet = fleet_factory(3, setup=setup, extra_conf={
            "suspicion-min": "5s", "suspicion-max": "10s"})
        fleet.wait_converged()
        n1, n2, n3 = fleet.nodes
        for node in fleet.nodes:
            wait_for(lambda node=node: node.running("admind"),
                     what=f"admind of {node.node_id}")
        page = page_factory(f"http://127.0.0.1:{admin_ports['n1']}/")
        everyone = {"n1": "alive", "n2": "alive", "n3": "alive"}
        page.wait_members(everyone, "three alive members on the page")

        # Over the limit through n1 and n2 in turn, until both refuse.
        refused = set()
        for i in range(4 * test_fleet.LIMIT):
            node = (n1, n2)[i % 2]
            code, text = test_fleet.try_send(node)
            if code != 250:
                assert code == 450, (node.node_id, code, text)
                refused.add(node.node_id)
            if refused == {"n1", "n2"}:
                break
        assert refused == {"n1", "n2"}, "the limit never held"
        src = page.wait(
            "source", lambda s: s and s["state"] == "deferred" and
            s["nodes"].get("n1", 0) > 0 and s["nodes"].get("n2", 0) > 0,
            "the source deferred with n1's and n2's shares",
            key=test_fleet.SOURCE_KEY)
        assert src["count"] >= test_fleet.LIMIT, src
        assert src["count"] == sum(src["nodes"].values()), src
        # The limit the smtpservers' policy put on it (smtp-policy's
        # ratelimitmsgs, reported with their rate slots).
        src = page.wait(
            "source", lambda s: s and s["limit"] == test_fleet.LIMIT,
            "the source's limit as the smtpservers' policy set it",
            key=test_fleet.SOURCE_KEY)

        # A block added on the page (n1) refuses the client on n3.
        blocked = test_fleet.BLOCKED
        assert test_fleet.try_send(n3, source=blocked)[0] == 250
        text = page.call("policy_add", key=blocked, action="reject",
                         reason="blocked from the dashboard",
                         user=ADMIN_USER, password=ADMIN_PASS)
        assert f"REJECT {blocked}" in text, text
        code, text = wait_for(
            lambda: (lambda r: r if r[0] != 250 else None)(
                test_fleet.try_send(n3, source=blocked)),
            what="n3 to refuse the client blocked on the page")
        assert code == 554, (code, text)
        assert "blocked from the dashboard" in text, text
        page.wait("policy", lambda p: p.get(blocked) == "reject",
                  "the entry listed on the page")

        # An ETRN from the page flushes the queue of every node.
        for node in fleet.nodes:
            test_fleet.queue_one(node, f"etrn-{node.node_id}")
        for node in fleet.nodes:
            wait_for(lambda node=node: test_fleet.queued(
                node, f"etrn-{node.node_id}"),
                what=f"the message queued on {node.node_id}")
        page.call("etrn", domain="etrn.test")
        results = page.wait(
            "etrn_results", lambda r: set(r) == {"n1", "n2", "n3"} and all(
                v["state"] == "done" for v in r.values()),
            "each node's ETRN answer on the page", domain="etrn.test")
        sink.wait_messages(3)
        assert test_fleet.subjects(sink) == ["etrn-n1", "etrn-n2",
                                             "etrn-n3"], results

        shot = page.call("screenshot", path=str(tmp_path / "dashboard.png"))
        print("screenshot:", shot)

        # A node killed: suspect, then dead, on the page of n1.
        kill_node(n3)
        page.wait_members({"n3": "suspect"}, "n3 suspect on the page")
        page.wait_members({"n1": "alive", "n2": "alive", "n3": "dead"},
                          "n3 dead on the page")
        shot = page.call("screenshot",
                         path=str(tmp_path / "dashboard-n3-dead.png"))
        print("screenshot:", shot)
        assert page.problems() == []
