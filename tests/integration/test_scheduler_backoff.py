"""Per-thread back-off: when the smtp agent cannot reach a destination at
all, the recipients it tried are deferred, and the thread's other
messages wait (untried, not counted as tried) until that retry time
instead of each trying the dead host in turn. ETRN lifts the wait."""

import json

from conftest import wait_for
from scheduler_util import admin_command, enable_test_clock
from sink_util import ScriptedServer, set_smtp_command

BUSY = [(None, b"421 4.3.2 too busy, come back later\r\n"), (None, "close")]


def busy_node(node_factory, port):
    def setup(node):
        enable_test_clock(node)
        set_smtp_command(node, f"smtp -F [127.0.0.1]:{port} -T 5")
    return node_factory(setup=setup)


def send(node, subject):
    proc = node.sendmail("-f", "alice@localhost", "bob@example.test",
                         message=f"Subject: {subject}\n\nhello\n")
    assert proc.returncode == 0, proc.output


def queue(node):
    out = node.mailq("--json")
    assert out.returncode == 0, out.output
    return [json.loads(l) for l in out.stdout.splitlines() if l.strip()]


def results(node):
    return [l for l in node.log_lines() if "status=deferred" in l]


def test_unreachable_destination_holds_the_thread(node_factory):
    with ScriptedServer(BUSY) as srv:
        node = busy_node(node_factory, srv.port)
        send(node, "first")
        node.wait_log(r"status=deferred .*421 4\.3\.2 too busy")
        node.wait_log(r"smtp/\S+ unreachable: its other messages wait")
        assert len(srv.conns) == 1

        send(node, "second")
        send(node, "third")
        # Both are in the scheduler's queue: then one more request, so that
        # the loop has had a pass over them since.
        wait_for(lambda: len(queue(node)) == 3, 30,
                 what="three messages in the queue")
        msgs = queue(node)
        waiting = [m for m in msgs
                   if m["recipients"][0]["attempts"] == 0]
        assert len(waiting) == 2, msgs
        for m in waiting:
            assert m["recipients"][0]["state"] == "waiting", m
        assert len(results(node)) == 1
        assert len(srv.conns) == 1

        # Past the retry time all three are tried again.
        assert admin_command(node, "CLOCK ADVANCE 120")
        wait_for(lambda: len(results(node)) >= 4, 60,
                 what="the held messages tried")
        assert len(srv.conns) >= 2
        assert not node.sanitizer_reports()


def test_etrn_lifts_the_hold(node_factory):
    with ScriptedServer(BUSY) as srv:
        node = busy_node(node_factory, srv.port)
        send(node, "first")
        node.wait_log(r"smtp/\S+ unreachable: its other messages wait")
        send(node, "second")
        wait_for(lambda: len(queue(node)) == 2, 30,
                 what="two messages in the queue")
        assert len(results(node)) == 1
        proc = node.zmailer("etrn", "example.test")
        assert proc.returncode == 0, proc.output
        wait_for(lambda: len(results(node)) >= 3, 60,
                 what="both messages tried after ETRN")
