"""Helpers for the scheduler's integration tests: a test-clock node and
MAILQv2 admin commands as an ALL user (see docs/admin-protocol.md)."""

import hashlib
import json
import socket

from conftest import wait_for

ADMIN_USER, ADMIN_PASS = "root", "itest-secret"


def enable_test_clock(node):
    """setup= hook: scheduler with ZM_SCHEDULER_TEST_CLOCK=1 and an ALL
    admin user."""
    node.env["ZM_SCHEDULER_TEST_CLOCK"] = "1"
    add_admin_user(node)


def add_admin_user(node):
    with open(node.etc / "scheduler.auth", "a") as f:
        f.write(f"{ADMIN_USER}:{ADMIN_PASS}:ALL:[127.0.0.1]/32\n")


def admin_command(node, command, user=ADMIN_USER, password=ADMIN_PASS,
                  timeout=20):
    """Runs one command on the scheduler's UNIX socket; the reply's data
    lines, or None if refused."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(str(node.home / "run" / "mailq.sock"))
        f = s.makefile("rw", newline="\n")
        greeting = f.readline().split()
        proof = hashlib.md5((greeting[-1] + password).encode()).hexdigest()
        f.write(f"AUTH {user} {proof}\n")
        f.flush()
        if not f.readline().startswith("+"):
            return None
        f.write(command + "\n")
        f.flush()
        if not f.readline().startswith("+"):
            return None
        lines = []
        for _ in range(100000):
            line = f.readline()
            if not line or line == ".\n":
                break
            lines.append(line.rstrip("\n"))
        return lines or [""]
    finally:
        s.close()


def slow_local_user(node):
    """setup= hook: local user `slowpoke` whose thread has no agent (so its
    mail waits, deferred), and the test clock."""
    enable_test_clock(node)
    (node.mail / "slowpoke").mkdir(parents=True, exist_ok=True)
    conf = node.etc / "scheduler.conf"
    text = conf.read_text()
    clause = 'local/slowpoke\n    command="zm-no-such-agent"\n\n'
    conf.write_text(text.replace("local/*\n", clause + "local/*\n", 1))


def queue_deferred(node, message):
    """Submits `message` to slowpoke@localhost (see slow_local_user) and
    waits until the scheduler deferred it; returns its queue id."""
    proc = node.sendmail("-f", "root@localhost", "slowpoke@localhost",
                         message=message)
    assert proc.returncode == 0, proc.output
    m = node.wait_log(r"(\S+): to=<slowpoke@[^>]*>.*status=deferred")
    return m.group(1)


def queue_tried(node, rcpt, message):
    """Submits `message` to `rcpt` with sendmail and waits until mailq
    --json shows its first recipient tried at least once; its queue id."""
    proc = node.sendmail(rcpt, message=message)
    assert proc.returncode == 0, proc.output
    qid = node.submitted_ids()[0]

    def tried():
        for line in node.mailq("--json").stdout.splitlines():
            obj = json.loads(line)
            if obj.get("queue_id") == qid and obj["recipients"] and \
                    obj["recipients"][0]["attempts"] >= 1:
                return obj
        return None
    wait_for(tried, what=f"{qid} tried once")
    return qid
