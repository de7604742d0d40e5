"""mailq: a message for a remote domain waits in the queue and shows up.

The node's smtp agent relays to a loopback port where nothing listens, so
remote mail is deferred (connection refused), stays queued on the
smtp/remote.example thread and is visible through the scheduler.
"""

import json

import pytest

from conftest import free_port, wait_for
from sink_util import set_smtp_command

REMOTE = "user@remote.example"


def queue_remote(node):
    proc = node.sendmail(REMOTE, message="Subject: remote-token\n\nfar\n")
    assert proc.returncode == 0, proc.output
    return node.submitted_ids()[0]


@pytest.fixture
def node(node_factory):
    dead = free_port()  # nothing listens there: every attempt defers
    return node_factory(setup=lambda n: set_smtp_command(
        n, f"smtp -F [127.0.0.1]:{dead} -T 5"))


def test_mailq_lists_remote_message(node):
    qid = queue_remote(node)

    def listed():
        proc = node.mailq()
        return proc if proc.returncode == 0 and qid in proc.stdout else None
    proc = wait_for(listed, what=f"mailq listing {qid}")
    assert "remote.example" in proc.stdout, proc.stdout
    # Still queued, not bounced back to root.
    assert node.spool_files("queue") == [qid]
    assert not any("status=bounced" in l for l in node.log_lines(qid))
    assert not node.mbox("root")


def test_mailq_overview(node):
    qid = queue_remote(node)
    wait_for(lambda: qid in node.mailq().stdout, what=f"mailq listing {qid}")
    proc = node.mailq("-Q")
    assert proc.returncode == 0, proc.output
    assert "smtp/remote.example" in proc.stdout, proc.stdout


def test_mailq_json(node):
    qid = queue_remote(node)

    def entry():
        proc = node.mailq("--json")
        if proc.returncode != 0:
            return None
        for line in proc.stdout.splitlines():
            if line.strip():
                obj = json.loads(line)  # every line parses
                if obj.get("queue_id") == qid:
                    return obj
        return None
    obj = wait_for(entry, what=f"{qid} in mailq --json")
    for key in ("queue_name", "queue_id", "arrival_time", "message_size",
                "sender", "recipients"):
        assert key in obj, (key, obj)
    assert isinstance(obj["arrival_time"], int), obj
    assert obj["message_size"] > 0, obj
    assert [r["address"] for r in obj["recipients"]] == [REMOTE], obj
    assert "delay_reason" in obj["recipients"][0], obj


def test_mailq_ss_lists_programs(node):
    proc = node.mailq("-ss")
    assert proc.returncode == 0, proc.output
    for prog in ("scheduler", "router", "smtpserver"):
        assert prog in proc.stdout, proc.stdout
    for folder in ("router", "queue", "transport"):
        assert folder in proc.stdout, proc.stdout


def test_mailq_with_node_down(node_factory):
    node = node_factory(start=False)
    proc = node.mailq()
    assert proc.returncode == 69, proc.output
    assert proc.stderr.strip(), proc.output
    proc = node.mailq("-ss")
    assert proc.returncode == 0, proc.output
    assert "scheduler" in proc.stdout, proc.stdout
