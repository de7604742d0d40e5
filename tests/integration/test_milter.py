"""PARAM milter through a running node, against real milters: a small
milter written here on Debian's python3-milter (libmilter underneath) and
OpenDKIM in signing mode, whose signature an independent verifier
(python3-dkim) checks in the delivered message.

Covered: reject and tempfail at RCPT, an added header carrying the queue
id macro, changed recipients, discard, quarantine, reject at end of data,
a milter that hangs (the default action after the timeout), a milter that
is down (default tempfail and default accept), one connection reused by
the transactions of a session.
"""

import grp
import os
import pathlib
import pwd
import re
import shutil
import smtplib
import socket
import subprocess
import sys

import pytest

from conftest import free_port, wait_for
from smtpserver_util import set_params

TEST_MILTER = r'''
import sys, time
import Milter

LOG = sys.argv[2]

def log(line):
    with open(LOG, "a") as f:
        f.write(line + "\n")

class TestMilter(Milter.Base):
    def __init__(self):
        self.subject = ""
        self.rcpts = []

    def connect(self, name, family, hostaddr):
        log("connect %s j=%s daemon=%s client=%s" % (
            hostaddr[0] if hostaddr else name, self.getsymval("j"),
            self.getsymval("{daemon_name}"), self.getsymval("{client_addr}")))
        return Milter.CONTINUE

    def envfrom(self, sender, *params):
        self.subject = ""
        self.rcpts = []
        log("mail %s %s" % (sender, " ".join(params)))
        return Milter.CONTINUE

    def envrcpt(self, rcpt, *params):
        if rcpt.startswith("<reject@"):
            self.setreply("550", "5.7.1", "the test milter says no")
            return Milter.REJECT
        if rcpt.startswith("<tempfail@"):
            return Milter.TEMPFAIL
        self.rcpts.append(rcpt)
        return Milter.CONTINUE

    def header(self, name, value):
        if name.lower() == "subject":
            self.subject = value
        return Milter.CONTINUE

    def eom(self):
        qid = self.getsymval("i")
        log("eom %s %s" % (qid, self.subject))
        s = self.subject
        if s == "hang":
            time.sleep(120)
            return Milter.CONTINUE
        if s == "discard":
            return Milter.DISCARD
        if s == "quarantine":
            self.quarantine("held by the test milter")
            return Milter.ACCEPT
        if s == "reject":
            self.setreply("554", "5.7.0", "content not wanted")
            return Milter.REJECT
        self.addheader("X-Test-Milter", "seen %s" % qid)
        if s == "redirect":
            for r in self.rcpts:
                self.delrcpt(r)
            self.addrcpt("<other@localhost>")
        if s == "newbody":
            self.replacebody(b"replaced by the milter\r\n")
        return Milter.ACCEPT

Milter.factory = TestMilter
Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS | Milter.ADDRCPT |
                 Milter.DELRCPT | Milter.QUARANTINE | Milter.CHGBODY)
Milter.runmilter("zmtest", sys.argv[1], 240)
'''


def port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


class Process:
    """A milter started by the test; killed at the end."""

    def __init__(self, argv, port, log_path=None, wait=60):
        self.port = port
        self.log = log_path
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        wait_for(lambda: self.proc.poll() is not None or port_open(port),
                 timeout=wait, what=f"{argv[0]} listening on {port}")
        assert self.proc.poll() is None, self.proc.stderr.read().decode()

    def lines(self):
        try:
            return pathlib.Path(self.log).read_text().splitlines()
        except FileNotFoundError:
            return []

    def stop(self):
        self.proc.terminate()  # rspamd's main process stops its workers
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture
def test_milter(tmp_path):
    started = []

    def start():
        script = tmp_path / "zmtest_milter.py"  # not milter.py: the C module
        script.write_text(TEST_MILTER)
        port = free_port()
        log = tmp_path / f"milter-{port}.log"
        p = Process([sys.executable, str(script), f"inet:{port}@127.0.0.1",
                     str(log)], port, log)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


def milter_node(node_factory, *milter_lines):
    def setup(node):
        for line in milter_lines:
            set_params(node, milter=line)
        for user in ("root", "other"):
            (node.mail / user).touch()
    return node_factory(setup=setup)


def send(node, subject, rcpts=("root@localhost",), sender="sender@localhost",
         smtp=None, headers=""):
    """One transaction; returns (rcpt replies, data reply)."""
    own = smtp is None
    s = smtp or smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=120)
    try:
        if own:
            s.ehlo("milter.example")
        code, text = s.mail(sender)
        if code != 250:
            return [(code, text.decode())], None
        replies = [s.rcpt(r) for r in rcpts]
        replies = [(c, t.decode(errors="replace")) for c, t in replies]
        if not any(c == 250 for c, _ in replies):
            s.rset()
            return replies, None
        message = f"{headers}Subject: {subject}\r\n\r\nbody of {subject}\r\n"
        code, text = s.data(message.encode())
        return replies, (code, text.decode(errors="replace"))
    finally:
        if own:
            s.quit()


def queue_id(reply):
    m = re.search(r"queued as (\S+)", reply[1])
    assert m, reply
    return m.group(1)


def test_rcpt_verdicts_header_and_one_connection(node_factory, test_milter):
    m = test_milter()
    node = milter_node(node_factory,
                       f"t inet:127.0.0.1:{m.port} timeout=10 eom-timeout=10")
    with smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=120) as s:
        s.ehlo("milter.example")
        rcpt, data = send(node, "first", rcpts=(
            "reject@localhost", "tempfail@localhost", "root@localhost"),
            smtp=s)
        assert rcpt[0][0] == 550 and "5.7.1 the test milter says no" in \
            rcpt[0][1], rcpt
        assert rcpt[1][0] == 451 and "4.7.1" in rcpt[1][1], rcpt
        assert rcpt[2][0] == 250, rcpt
        assert data[0] == 250, data
        first = queue_id(data)
        _, data = send(node, "second", smtp=s)
        assert data[0] == 250, data
        second = queue_id(data)
    msg = node.wait_mbox_message("root", "Subject: first")
    assert f"X-Test-Milter: seen {first}" in msg, msg
    msg = node.wait_mbox_message("root", "Subject: second")
    assert f"X-Test-Milter: seen {second}" in msg, msg
    # One milter connection for both transactions, with the macros.
    connects = [l for l in m.lines() if l.startswith("connect ")]
    assert len(connects) == 1, m.lines()
    assert "daemon=smtp" in connects[0] and "client=127.0.0.1" in connects[0]
    node.wait_log(r"milter t: RCPT <reject@localhost> rejected: 550")


def test_recipients_body_discard_quarantine_reject(node_factory, test_milter):
    m = test_milter()
    node = milter_node(node_factory, f"t inet:127.0.0.1:{m.port}")
    _, data = send(node, "redirect")
    assert data[0] == 250, data
    msg = node.wait_mbox_message("other", "Subject: redirect")
    assert "X-Test-Milter: seen" in msg
    qid = queue_id(data)
    node.wait_log(rf"{qid}: milter t: recipient <root@localhost> removed")

    _, data = send(node, "newbody")
    assert data[0] == 250, data
    msg = node.wait_mbox_message("root", "Subject: newbody")
    assert "replaced by the milter" in msg and "body of newbody" not in msg

    _, data = send(node, "discard")
    assert data[0] == 250, data
    node.wait_log(rf"{queue_id(data)}: discarded by milter")

    _, data = send(node, "quarantine")
    assert data[0] == 250, data
    qid = queue_id(data)
    wait_for(lambda: any(f.startswith(qid)
                         for f in node.spool_files("freezer")),
             what="the quarantined message in the freezer")
    node.wait_log(rf"{qid}: frozen: milter t: held by the test milter")

    _, data = send(node, "reject")
    assert data[0] == 554 and "5.7.0 content not wanted" in data[1], data

    _, data = send(node, "after")
    assert data[0] == 250
    node.wait_mbox_message("root", "Subject: after")
    for msg in node.mbox_messages("root") + node.mbox_messages("other"):
        for s in ("discard", "quarantine", "reject", "redirect"):
            assert f"Subject: {s}\n" not in msg or s == "redirect"
    assert "Subject: redirect" not in node.mbox("root")


def test_hanging_milter_gets_the_default(node_factory, test_milter):
    m = test_milter()
    node = milter_node(
        node_factory,
        f"t inet:127.0.0.1:{m.port} timeout=2 eom-timeout=2 default=tempfail")
    _, data = send(node, "hang")
    assert data[0] == 451 and "4.7.1" in data[1], data
    node.wait_log(r"milter t: no answer within 2s at end of data "
                  r"\(default tempfail\)")
    # The next session connects afresh.
    _, data = send(node, "later")
    assert data[0] == 250, data
    node.wait_mbox_message("root", "Subject: later")
    assert "Subject: hang" not in node.mbox("root")


def test_down_milter_default_tempfail(node_factory):
    node = milter_node(node_factory,
                       f"down inet:127.0.0.1:{free_port()} connect-timeout=2")
    rcpt, data = send(node, "nothing")
    assert rcpt[0][0] == 451 and "4.7.1" in rcpt[0][1], rcpt
    node.wait_log(r"milter down: cannot connect to inet:127\.0\.0\.1:\d+: .*"
                  r"\(default tempfail\)")


def test_down_milter_default_accept(node_factory):
    node = milter_node(
        node_factory,
        f"down inet:127.0.0.1:{free_port()} connect-timeout=2 default=accept")
    _, data = send(node, "unfiltered")
    assert data[0] == 250, data
    node.wait_mbox_message("root", "Subject: unfiltered")
    node.wait_log(r"milter down: cannot connect .*\(default accept\)")


def test_milter_of_another_listener_is_not_asked(node_factory):
    node = milter_node(
        node_factory,
        f"down inet:127.0.0.1:{free_port()} listeners=submission")
    _, data = send(node, "smtp listener")
    assert data[0] == 250, data


# ---- OpenDKIM ------------------------------------------------------------

OPENDKIM = shutil.which("opendkim") or "/usr/sbin/opendkim"


def dkim_txt(path):
    """The p= record opendkim-genkey wrote, as one string."""
    return "".join(re.findall(r'"([^"]*)"', path.read_text()))


@pytest.mark.skipif(not pathlib.Path(OPENDKIM).exists(),
                    reason="opendkim is not installed (scripts/install-deps)")
def test_opendkim_signs(node_factory, tmp_path):
    dkim = pytest.importorskip("dkim")
    keys = tmp_path / "keys"
    keys.mkdir()
    gen = subprocess.run(["opendkim-genkey", "-D", str(keys), "-d",
                          "example.org", "-s", "zmtest"],
                         capture_output=True, timeout=120)
    assert gen.returncode == 0, gen.stderr
    port = free_port()
    conf = tmp_path / "opendkim.conf"
    conf.write_text(
        f"Domain example.org\nSelector zmtest\n"
        f"KeyFile {keys}/zmtest.private\nMode s\n"
        f"Canonicalization relaxed/relaxed\nRequireSafeKeys no\n"
        f"Socket inet:{port}@127.0.0.1\nBackground no\nSyslog no\n"
        f"InternalHosts 127.0.0.1\nUserID root\n")
    p = Process([OPENDKIM, "-f", "-x", str(conf)], port)
    try:
        node = milter_node(node_factory,
                           f"dkim inet:127.0.0.1:{port} timeout=10")
        _, data = send(node, "signed", sender="alice@example.org",
                       headers="From: Alice <alice@example.org>\r\n"
                               "To: root@localhost\r\n")
        assert data[0] == 250, data
        msg = node.wait_mbox_message("root", "Subject: signed")
    finally:
        p.stop()
    assert "DKIM-Signature:" in msg, msg
    record = dkim_txt(keys / "zmtest.txt").encode()

    def dns(name, timeout=5):
        assert name == b"zmtest._domainkey.example.org.", name
        return record
    raw = msg.replace("\n", "\r\n").encode()
    assert dkim.verify(raw, dnsfunc=dns), msg
    # A changed body no longer verifies: the check can fail.
    assert not dkim.verify(raw.replace(b"body of signed", b"body of forged"),
                           dnsfunc=dns)


# ---- rspamd --------------------------------------------------------------

RSPAMD = shutil.which("rspamd") or "/usr/bin/rspamd"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def start_rspamd(tmp_path):
    """rspamd with its Debian configuration, its ports moved to free ones,
    no DNS, and a short public-suffix list (compiling the full one takes
    minutes on a slow machine)."""
    conf = tmp_path / "rspamd"
    local = conf / "local.d"
    for d in (local, conf / "db", conf / "run"):
        d.mkdir(parents=True)
    proxy, normal, controller = free_port(), free_port(), free_port()
    (conf / "tld.dat").write_text("com\norg\nnet\nexample\n")
    files = {
        "worker-proxy.inc": f'bind_socket = "127.0.0.1:{proxy}";\n'
                            'milter = yes;\ntimeout = 120s;\ncount = 1;\n'
                            'upstream "local" { default = yes; '
                            'self_scan = yes; }\n',
        "worker-normal.inc": f'bind_socket = "127.0.0.1:{normal}";\n'
                             'count = 1;\n',
        "worker-controller.inc": f'bind_socket = "127.0.0.1:{controller}";\n'
                                 'count = 1;\n',
        "options.inc": 'dns { nameserver = ["127.0.0.1:9"]; timeout = 0.5s; '
                       'retransmits = 1; }\n'
                       f'url_tld = "{conf}/tld.dat";\n',
        "logging.inc": f'type = "file";\nfilename = "{conf}/rspamd.log";\n'
                       'level = "info";\n',
        "milter_headers.conf": 'use = ["x-spamd-result", "x-spam-status", '
                               '"x-rspamd-queue-id"];\n'
                               'skip_local = false;\n'
                               'skip_authenticated = false;\n',
    }
    for name, text in files.items():
        (local / name).write_text(text)
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    argv = [RSPAMD, "-f", "-i", "-u", user, "-g", group,
            "-c", "/etc/rspamd/rspamd.conf",
            "--var", f"LOCAL_CONFDIR={conf}", "--var", f"DBDIR={conf}/db",
            "--var", f"RUNDIR={conf}/run", "--var", f"LOGDIR={conf}"]
    return Process(argv, proxy, wait=300)


@pytest.mark.skipif(not pathlib.Path(RSPAMD).exists(),
                    reason="rspamd is not installed")
def test_rspamd(node_factory, tmp_path):
    p = start_rspamd(tmp_path)
    try:
        node = milter_node(
            node_factory,
            f"rspamd inet:127.0.0.1:{p.port} timeout=60 eom-timeout=120")
        headers = "From: sender@localhost\r\nTo: root@localhost\r\n"
        _, data = send(node, "clean", headers=headers)
        assert data[0] == 250, data
        qid = queue_id(data)
        msg = node.wait_mbox_message("root", "Subject: clean")
        _, spam = send(node, f"spam\r\n\r\n{GTUBE}")
    finally:
        p.stop()
    assert "X-Spamd-Result: default: False" in msg, msg
    assert f"X-Rspamd-Queue-Id: {qid}" in msg, msg  # the {i} macro
    assert spam[0] == 554 and "5.7.1 Gtube pattern" in spam[1], spam
    assert "GTUBE" not in node.mbox("root")
