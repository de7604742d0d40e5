"""Full disk: the spool on a 16 MiB tmpfs made by the test.

What must hold (docs/reliability.md, "Full disk"):
- below `min-availspace` the smtpserver answers MAIL with `452 4.3.1` and
  the session goes on;
- a message that runs the disk out while it is written is refused with
  `452 4.3.1` after the final dot, and nothing of it stays in the spool;
- `sendmail` on a full spool exits EX_TEMPFAIL (75) and leaves nothing;
- messages acknowledged before the disk filled up survive a router that
  works against the full disk (no loss, nothing sent to postman/), and
  are delivered, complete, once space returns; SMTP and sendmail accept
  mail again.
"""

import os
import signal

import pytest

from conftest import wait_for
from reliability_util import (can_mount, fill, free_kib, mount_small_spool,
                              smtp, transaction, unfill, unmount)
from smtpserver_util import command, set_params

SPOOL_KIB = 16 * 1024
MIN_AVAIL_KIB = 2048
QUEUED = 5

pytestmark = pytest.mark.skipif(not can_mount(), reason="needs root to mount")


@pytest.fixture
def disk_node(node_factory):
    mounted = []

    def setup(n):
        set_params(n, min_availspace=MIN_AVAIL_KIB)
        mounted.append(mount_small_spool(n, SPOOL_KIB))

    node = node_factory(setup=setup)
    yield node
    # Stop before unmounting, so that no daemon writes to the old folder.
    node.stop()
    for m in mounted:
        unmount(m)


def message(tag, lines=3):
    return (f"From: a@localhost\nSubject: {tag}\n\n{tag}\n"
            + "body line of some length to fill the file a little\n" * lines
            + f"end of {tag}\n")


def ehlo(s):
    assert command(s, "EHLO client.example").startswith("250")


def delivered_complete(node, tag):
    text = node.mbox("root")
    return text.count(f"\n{tag}\n") >= 1 and f"end of {tag}\n" in text


def test_full_disk_refuses_then_resumes(disk_node):
    node = disk_node
    spool = node.spool
    assert free_kib(spool) > MIN_AVAIL_KIB * 2

    with smtp(node) as s:
        ehlo(s)
        reply = transaction(s, "a@localhost", ["root@localhost"],
                            message("before the fill"))
        assert reply.startswith("250"), reply
    node.wait_mbox_message("root", "end of before the fill")

    # The router is paused, so acknowledged messages wait in router/ while
    # the disk fills up.
    router = node.pid("router")
    os.kill(router, signal.SIGSTOP)
    try:
        with smtp(node) as s:
            ehlo(s)
            for i in range(QUEUED):
                reply = transaction(s, "a@localhost", ["root@localhost"],
                                    message(f"queued {i}"))
                assert reply.startswith("250"), reply
        assert len(node.spool_files("router")) == QUEUED

        # 1. Below min-availspace: MAIL is refused, the session goes on.
        left = fill(spool, leave_kib=MIN_AVAIL_KIB // 2)
        assert left < MIN_AVAIL_KIB
        with smtp(node) as s:
            ehlo(s)
            reply = command(s, "MAIL FROM:<a@localhost>")
            assert reply.startswith("452 4.3.1"), reply
            assert command(s, "NOOP").startswith("250")
        node.wait_log(r"MAIL from \S+ refused: \d+ KiB free in the spool, "
                      rf"min-availspace {MIN_AVAIL_KIB}")

        # 2. Enough room at MAIL, not enough for the message: refused after
        # the final dot, nothing half-written stays behind.
        unfill(spool)
        fill(spool, leave_kib=MIN_AVAIL_KIB + 512)
        # Under maxsize (10 MB), over the space left.
        big = message("too big for the disk", lines=8 * 1024 * 1024 // 52)
        with smtp(node) as s:
            ehlo(s)
            reply = transaction(s, "a@localhost", ["root@localhost"], big)
            assert reply.startswith("452 4.3.1"), reply
            assert command(s, "NOOP").startswith("250")
        assert not node.spool_files("public")
        assert len(node.spool_files("router")) == QUEUED

        # 3. Full: sendmail gives up with EX_TEMPFAIL and leaves nothing.
        assert fill(spool) == 0
        proc = node.sendmail("-i", "-f", "a@localhost", "root@localhost",
                             message=message("sendmail on a full disk"))
        assert proc.returncode == 75, proc.output
        assert proc.stderr.strip(), "sendmail says why"
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert not node.spool_files("public")
    finally:
        os.kill(router, signal.SIGCONT)

    # The router now works against a full disk: it must keep every message
    # (retrying), not damage or quarantine it.
    node.wait_log(r"router\[\d+\]: .*(?i:no space)", timeout=120)
    assert not node.spool_files("postman")

    # 4. Space returns: everything that was acknowledged is delivered,
    # complete, and both ways in accept mail again.
    unfill(spool)
    for i in range(QUEUED):
        node.wait_mbox_message("root", f"end of queued {i}", timeout=180)
    with smtp(node) as s:
        ehlo(s)
        reply = transaction(s, "a@localhost", ["root@localhost"],
                            message("smtp after the fill"))
        assert reply.startswith("250"), reply
    proc = node.sendmail("-i", "-f", "a@localhost", "root@localhost",
                         message=message("sendmail after the fill"))
    assert proc.returncode == 0, proc.output
    node.wait_mbox_message("root", "end of smtp after the fill")
    node.wait_mbox_message("root", "end of sendmail after the fill")
    for i in range(QUEUED):
        assert delivered_complete(node, f"queued {i}")
    text = node.mbox("root")
    assert "too big for the disk" not in text
    assert "sendmail on a full disk" not in text
    # Nothing half-written or quarantined is left anywhere in the spool.
    wait_for(node.queue_empty, what="an empty queue")
    for folder in ("postman", "tmp", "deferred", "freezer"):
        assert not node.spool_files(folder), (folder, node.spool_files(folder))
