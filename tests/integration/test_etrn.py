"""Local ETRN and queue runs through the scheduler's gRPC admin service.

The smtpserver's ETRN (RFC 1985 replies) and `sendmail -q`, `-qR`, `-qI`
ask the scheduler over run/scheduler.sock (docs/admin-protocol.md). The
node's smtp agent relays to a loopback port where nothing listens, so
remote mail stays queued; the scheduler's ETRN answer shows whether the
request reached it. (Fleet-wide ETRN: test_fleet.py.)
"""

import smtplib

import pytest

from conftest import free_port
from scheduler_util import queue_tried
from sink_util import set_smtp_command

REMOTE = "user@remote.example"


@pytest.fixture
def node(node_factory):
    return node_factory(setup=lambda n: set_smtp_command(
        n, f"smtp -F [127.0.0.1]:{free_port()} -T 5"))


def queued(node):
    return queue_tried(node, REMOTE, "Subject: etrn\n\nwaits\n")


def etrn(node, arg):
    with smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=30) as s:
        s.ehlo("client.test")
        return s.docmd("ETRN", arg)


def test_smtp_etrn_reaches_the_scheduler(node):
    queued(node)
    code, text = etrn(node, "remote.example")
    assert code == 250, text
    assert text == b"2.0.0 Queuing for node remote.example started", text
    # The scheduler's own answer, logged by the smtpserver.
    node.wait_log(r"ETRN remote\.example: 1 recipients scheduled")
    code, text = etrn(node, "@nothing.example")
    assert code == 250, text
    node.wait_log(r"ETRN nothing\.example: nothing queued")
    code, text = etrn(node, "#queue")
    assert code == 458, text


def test_sendmail_queue_runs(node):
    qid = queued(node)
    site = node.sendmail("-qRremote.example", message="")
    assert site.returncode == 0, site.output
    assert "ETRN remote.example: 1 recipients scheduled for delivery" in \
        site.stdout, site.output
    one = node.sendmail(f"-qI{qid}", message="")
    assert one.returncode == 0, one.output
    assert f"RUNQ ID {qid}: " in one.stdout, one.output
    everything = node.sendmail("-q", message="")
    assert everything.returncode == 0, everything.output
    assert everything.stdout.startswith("RUNQ: "), everything.output
    missing = node.sendmail("-qI" + "0" * len(qid), message="")
    assert missing.returncode == 66, missing.output
    assert "no message" in missing.stderr, missing.output
