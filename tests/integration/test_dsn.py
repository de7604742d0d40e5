"""DSNs through a whole node, parsed with Python's email package.

Failure (RET=FULL and RET=HDRS, ENVID, ORCPT-less local submission),
success with NOTIFY=SUCCESS, NOTIFY=NEVER, and a delay warning then an
expiry bounce driven by the scheduler's test clock (no waiting).
"""

import email
import email.policy

from conftest import wait_for
from scheduler_util import admin_command, queue_deferred, slow_local_user


def parse(text):
    msg = email.message_from_string(text, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/report", text
    assert msg.get_param("report-type") == "delivery-status", text
    parts = list(msg.iter_parts())
    assert len(parts) == 3, text
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "message/delivery-status"
    # message/delivery-status: a list of header blocks (per-message first).
    blocks = [dict(b.items()) for b in parts[1].get_payload()]
    return msg, blocks, parts[2]


def dsns_for(node, needle):
    return [m for m in node.mbox_messages("root") if needle in m]


def test_failure_dsn_ret_full_envid(node):
    proc = node.sendmail("-f", "root@localhost", "-R", "full", "-V", "env-77",
                         "nosuchuser@localhost",
                         message="Subject: dsn-full-token\n\nbody-token\n")
    assert proc.returncode == 0, proc.output
    dsn = node.wait_mbox_message("root", "dsn-full-token")
    msg, blocks, orig = parse(dsn)
    assert "Undelivered" in msg["Subject"]
    assert blocks[0]["Original-Envelope-Id"] == "env-77"
    assert blocks[0]["Reporting-MTA"].startswith("dns;")
    rcpt = blocks[1]
    assert rcpt["Action"] == "failed"
    assert rcpt["Status"] == "5.1.1"
    assert "nosuchuser@" in rcpt["Final-Recipient"]
    assert orig.get_content_type() == "message/rfc822"
    assert "body-token" in dsn  # RET=FULL: the whole message came back


def test_failure_dsn_ret_hdrs(node):
    proc = node.sendmail("-f", "root@localhost", "-R", "hdrs",
                         "nosuchuser@localhost",
                         message="Subject: dsn-hdrs-token\n\nsecret-body\n")
    assert proc.returncode == 0, proc.output
    dsn = node.wait_mbox_message("root", "dsn-hdrs-token")
    _, blocks, orig = parse(dsn)
    assert orig.get_content_type() == "text/rfc822-headers"
    assert "secret-body" not in dsn
    assert "Original-Envelope-Id" not in blocks[0]


def test_success_dsn_and_never(node):
    proc = node.sendmail("-f", "root@localhost", "-N", "success", "postmaster",
                         message="Subject: dsn-success-token\n\nhi\n")
    assert proc.returncode == 0, proc.output
    proc = node.sendmail("-f", "root@localhost", "-N", "never",
                         "nosuchuser@localhost",
                         message="Subject: dsn-never-token\n\nhi\n")
    assert proc.returncode == 0, proc.output

    def success():
        return [m for m in node.mbox_messages("root")
                if "Successful Mail Delivery Report" in m]
    got = wait_for(success, what="success DSN")
    _, blocks, _ = parse(got[0])
    assert blocks[1]["Action"] == "delivered"
    assert blocks[1]["Status"].startswith("2.")
    wait_for(node.queue_empty, what="queue empty")
    assert not dsns_for(node, "dsn-never-token")


def test_delay_warning_then_expiry(node_factory):
    node = node_factory(setup=slow_local_user)
    qid = queue_deferred(node, "Subject: dsn-delay-token\n\nwait\n")
    assert admin_command(node, "CLOCK ADVANCE 18000")  # 5 h: past warning
    delay = wait_for(lambda: [m for m in node.mbox_messages("root")
                              if "Delayed Mail" in m], what="delay DSN")[0]
    msg, blocks, orig = parse(delay)
    assert blocks[1]["Action"] == "delayed"
    assert blocks[1]["Status"].startswith("4.")
    assert "Will-Retry-Until" in blocks[1]
    assert orig.get_content_type() == "text/rfc822-headers"
    assert qid in delay
    assert admin_command(node, "CLOCK ADVANCE 400000")  # past expiry (3d)
    bounce = wait_for(lambda: [m for m in node.mbox_messages("root")
                               if "Undelivered" in m and qid in m],
                      what="expiry DSN")[0]
    _, blocks, _ = parse(bounce)
    assert blocks[1]["Action"] == "failed"
    assert blocks[1]["Status"] == "4.4.7"
    wait_for(lambda: not (node.spool / "queue" / qid).exists(),
             what="expired message removed")
    # Exactly one delay warning.
    assert len([m for m in node.mbox_messages("root")
                if "Delayed Mail" in m]) == 1
