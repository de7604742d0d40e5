"""Local ETRN and queue runs through the scheduler's gRPC admin service.

The smtpserver's ETRN (RFC 1985 replies) and `sendmail -q`, `-qR`, `-qI`
ask the scheduler over run/scheduler.sock (docs/admin-protocol.md). The
node's smtp agent relays to a loopback port where nothing listens, so
remote mail stays queued; the scheduler's ETRN answer shows whether the
request reached it. (Fleet-wide ETRN: test_fleet.py.)

RFC 1985's `459 Node X not allowed: ...` has two sources, both tested
over SMTP: the smtpserver's policy (a client that may not relay may ETRN
only our own domains and relay targets; 127.0.0.2, a loopback alias the
policy gives no relay rights, is that client) and the scheduler's
refusal (scheduler.auth's "nobody", as which the smtpserver asks, without
the ETRN token, or absent). A scheduler that is down is 458.
"""

import os
import signal
import smtplib

import pytest

from conftest import free_port, wait_for
from scheduler_util import queue_tried
from sink_util import set_smtp_command

REMOTE = "user@remote.example"


@pytest.fixture
def node(node_factory):
    return node_factory(setup=lambda n: set_smtp_command(
        n, f"smtp -F [127.0.0.1]:{free_port()} -T 5"))


def queued(node):
    return queue_tried(node, REMOTE, "Subject: etrn\n\nwaits\n")


def etrn(node, arg, source="127.0.0.1"):
    with smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=30,
                      source_address=(source, 0)) as s:
        s.ehlo("client.test")
        return s.docmd("ETRN", arg)


STRANGER = "127.0.0.2"  # no relay rights in the test's policy


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


def stranger_policy(n):
    """The stranger may not relay; customer.example is a relay target."""
    set_smtp_command(n, f"smtp -F [127.0.0.1]:{free_port()} -T 5")
    with open(n.etc / "smtp-policy.src", "a") as f:
        f.write(f"\n[{STRANGER}]/32 relaycustnet - fulltrustnet -\n"
                "customer.example = _relaytarget\n")
    newdb = n.zmailer("newdb")
    assert newdb.returncode == 0, newdb.output


def test_459_for_a_client_that_may_not_relay(node_factory):
    node = node_factory(setup=stranger_policy)
    queued(node)
    # The client's address decides: the same ETRN from 127.0.0.1 (full
    # rights) is started, from the stranger it is refused.
    code, text = etrn(node, "remote.example", source=STRANGER)
    assert code == 459, text
    assert text == (b"4.7.1 Node remote.example not allowed: "
                    b"no relaying for it from here"), text
    code, text = etrn(node, "@remote.example", source=STRANGER)
    assert code == 459, text
    code, text = etrn(node, "remote.example")
    assert code == 250, text
    # The stranger may still ETRN a relay target of ours and our own names.
    code, text = etrn(node, "customer.example", source=STRANGER)
    assert code == 250, text
    node.wait_log(r"ETRN customer\.example: nothing queued")
    code, text = etrn(node, "localhost", source=STRANGER)
    assert code == 250, text


def reload_auth(node, text):
    (node.etc / "scheduler.auth").write_text(text)
    before = sum("configuration reloaded" in l for l in node.log_lines())
    os.kill(node.pid("scheduler"), signal.SIGHUP)
    wait_for(lambda: sum("configuration reloaded" in l
                         for l in node.log_lines()) > before,
             what="the scheduler's reload")


def test_459_when_the_scheduler_refuses(node):
    queued(node)
    # "nobody" without the ETRN token: the scheduler's PERMISSION_DENIED.
    reload_auth(node, "nobody:nobody:SNMP QQ TT:[127.0.0.1]/32\n")
    code, text = etrn(node, "remote.example")
    assert code == 459, text
    assert text == (b"4.7.1 Node remote.example not allowed: "
                    b"refused by the scheduler"), text
    node.wait_log(r"admin gRPC Etrn refused for user 'nobody' from unix:.*: "
                  r"token missing")
    # No "nobody" at all: UNAUTHENTICATED, the same 459.
    reload_auth(node, "root:secret:ALL:[127.0.0.1]/32\n")
    code, text = etrn(node, "remote.example")
    assert code == 459, text
    node.wait_log(r"admin gRPC Etrn refused for user 'nobody' from unix:.*: "
                  r"no such user for this address")
    # Given back, the same ETRN starts delivery again.
    reload_auth(node, "nobody:nobody:SNMP QQ TT ETRN:[127.0.0.1]/32\n")
    code, text = etrn(node, "remote.example")
    assert code == 250, text


def test_458_when_the_scheduler_does_not_answer(node):
    queued(node)
    # Frozen (SIGSTOP), so the supervisor does not restart it: the
    # smtpserver's call runs into its 10 s deadline.
    pid = node.pid("scheduler")
    os.kill(pid, signal.SIGSTOP)
    try:
        code, text = etrn(node, "remote.example")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert code == 458, text
    assert text == b"4.3.0 Unable to queue messages for node remote.example", \
        text
