"""Drain (docs/operations.md, "Drain"), over real SMTP with whole nodes:
SIGTERM to the supervisor creates run/draining, new SMTP connections get
421 4.3.2 while a transaction in progress completes, the node stops with
its queue kept and delivers it after the restart (which removes
run/draining), nothing acknowledged is lost, a fleet peer sees the node
"left", and `zmailer drain --handoff` moves the queue to a peer.

drain.conf's readiness-delay is 0 here (the default 5 s only waits). Every
wait is a bounded poll; no test asserts a duration.
"""

import os
import signal
import smtplib
import socket
import threading

import pytest

from conftest import BIN, free_port, pid_alive, wait_for
from sink_util import Sink, set_smtp_command

DRAIN_CONF = "readiness-delay 0\nstop-timeout 60s\nhandoff-timeout 10s\n"


def no_readiness_delay(node):
    (node.etc / "drain.conf").write_text(DRAIN_CONF)


def greeting(port):
    """The first reply line of a fresh connection, or "" when refused."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.settimeout(10)
            data = b""
            while b"\n" not in data and len(data) < 4096:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            return data.decode(errors="replace").strip()
    except OSError:
        return ""


def sigterm_supervisor(node):
    pid = node.pid("zmailer")
    assert pid and pid_alive(pid)
    os.kill(pid, signal.SIGTERM)
    return pid


def wait_stopped(node, pid):
    wait_for(lambda: not pid_alive(pid), timeout=120,
             what="the supervisor to finish draining")
    node.started = False


def spooled(node):
    c = node.spool_counts()
    return sum(c.get(f, 0) for f in ("router", "queue", "deferred"))


def test_sigterm_finishes_the_transaction_and_refuses_new_clients(
        node_factory):
    node = node_factory(setup=no_readiness_delay)
    s = smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=60)
    s.ehlo("drain.test")
    assert s.mail("alice@localhost")[0] == 250
    assert s.rcpt("root@localhost")[0] == 250
    code, _ = s.docmd("DATA")
    assert code == 354
    s.send(b"Subject: in flight\r\n\r\ndrain-token-inflight first half\r\n")

    pid = sigterm_supervisor(node)
    wait_for(lambda: (node.home / "run" / "draining").exists(),
             what="run/draining")
    # New clients are told, not reset, while the transaction runs.
    told = wait_for(lambda: greeting(node.smtp_port).startswith("421"),
                    what="421 to a new connection")
    assert told
    g = greeting(node.smtp_port)
    assert g == "" or g.startswith("421 4.3.2"), g

    s.send(b"second half\r\n.\r\n")
    code, text = s.getreply()
    assert code == 250, text
    # Between transactions the session is told to go.
    code, text = s.docmd("MAIL FROM:<alice@localhost>")
    assert code == 421 and text.startswith(b"4.3.2"), (code, text)
    s.close()

    wait_stopped(node, pid)
    assert (node.home / "run" / "draining").exists()
    log = node.maillog.read_text(errors="replace")
    assert "draining: run/draining created" in log
    assert "new connections get 421 4.3.2" in log

    node.start()
    assert not (node.home / "run" / "draining").exists()
    got = node.wait_mbox_message("root", "drain-token-inflight")
    assert "second half" in got


def test_nothing_acknowledged_is_lost(node_factory):
    """Clients send in a loop while the node drains: every message that got
    its 250 is delivered after the restart."""
    node = node_factory(setup=no_readiness_delay)
    acked, lock = [], threading.Lock()
    stop = threading.Event()

    def client(k):
        for i in range(60):
            if stop.is_set():
                return
            token = f"ack-token-{k}-{i}"
            try:
                with smtplib.SMTP("127.0.0.1", node.smtp_port,
                                  timeout=30) as s:
                    s.sendmail("alice@localhost", ["root@localhost"],
                               f"Subject: {token}\r\n\r\n{token}\r\n")
            except (smtplib.SMTPException, OSError):
                continue
            with lock:
                acked.append(token)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    try:
        wait_for(lambda: len(acked) >= 10, what="some messages accepted")
        pid = sigterm_supervisor(node)
        wait_stopped(node, pid)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    node.start()
    for token in list(acked):
        node.wait_mbox_message("root", token)


def test_peer_sees_the_drained_node_left(node_factory):
    cluster_util = pytest.importorskip("cluster_util")
    if not (BIN / "clusterd").exists():
        pytest.skip("clusterd is not built")
    fleet = cluster_util.Fleet(node_factory, 2, setup=no_readiness_delay)
    try:
        fleet.wait_converged()
        pid = sigterm_supervisor(fleet.node(1))
        wait_stopped(fleet.node(1), pid)
        fleet.wait_view(0, {"n2": "LEFT"})
        log = fleet.node(1).maillog.read_text(errors="replace")
        # clusterd stops after the smtpserver stopped taking mail, and
        # leaves.
        assert log.index("new connections get 421 4.3.2") < \
            log.index("stopping: leaving the fleet"), log
    finally:
        fleet.close()


def relay_to(port):
    def setup(node):
        no_readiness_delay(node)
        set_smtp_command(node, f"smtp -F [127.0.0.1]:{port} -T 5")
    return setup


def test_handoff_moves_the_queue_to_a_peer(node_factory):
    with Sink() as sink:
        # A's relay is down, so its mail waits in queue/; B relays to the
        # sink.
        a = node_factory(setup=relay_to(free_port()), node_id="a1")
        b = node_factory(setup=relay_to(sink.port), node_id="b1")
        for i in range(3):
            proc = a.sendmail("-f", "alice@localhost", f"bob{i}@example.test",
                              message=f"Subject: handoff {i}\n\nho-token-{i}\n")
            assert proc.returncode == 0, proc.output
        wait_for(lambda: a.spool_counts().get("transport", 0) == 3 and
                 a.spool_counts().get("router", 0) == 0,
                 what="three routed messages queued on a1")

        proc = a.zmailer("drain", "--handoff", f"127.0.0.1:{b.smtp_port}",
                         timeout=180)
        assert proc.returncode == 0, proc.output
        assert "3 messages handed off, 0 kept" in proc.stdout, proc.output
        a.started = False
        assert spooled(a) == 0 and a.spool_counts().get("transport", 0) == 0

        sink.wait_messages(3)
        got = sorted(m["to"][0] for m in sink.messages)
        assert got == ["bob0@example.test", "bob1@example.test",
                       "bob2@example.test"]
        assert all(b"ho-token-" in m["data"] for m in sink.messages)
        log = a.maillog.read_text(errors="replace")
        assert log.count("removed: handed off to 127.0.0.1:") == 3


def test_handoff_failure_keeps_the_queue(node_factory):
    a = node_factory(setup=relay_to(free_port()), node_id="a1")
    proc = a.sendmail("-f", "alice@localhost", "bob@example.test",
                      message="Subject: kept\n\nkept-token\n")
    assert proc.returncode == 0, proc.output
    wait_for(lambda: a.spool_counts().get("transport", 0) == 1,
             what="the message queued")
    proc = a.zmailer("drain", "--handoff", f"127.0.0.1:{free_port()}",
                     timeout=180)
    a.started = False
    assert proc.returncode == 1, proc.output
    assert "0 messages handed off, 1 kept" in proc.stdout, proc.output
    assert a.spool_counts().get("transport", 0) == 1
    assert a.spool_counts().get("queue", 0) == 1


def test_drain_usage_errors(node_factory):
    node = node_factory(start=False)
    proc = node.zmailer("drain", "--handoff", "nohostport")
    assert proc.returncode == 64, proc.output
    assert "--handoff nohostport" in proc.stderr
    (node.etc / "drain.conf").write_text("readiness-delay soon\n")
    proc = node.zmailer("drain")
    assert proc.returncode == 1
    assert "drain.conf:1: readiness-delay needs a duration" in proc.stderr
