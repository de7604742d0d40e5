"""Queue management through a whole node: mailq shows freezer/ and
postman/, `zmailer thaw|requeue|delete|etrn`, retry state across a
scheduler restart."""

import json
import os
import signal
import time

from conftest import wait_for
from scheduler_util import (add_admin_user, admin_command, queue_deferred,
                            slow_local_user)

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def fake_qid(n):
    s = ""
    base = int(time.time() * 1000000) + n
    for _ in range(16):
        s = ALPHABET[base % 32] + s
        base //= 32
    return s + "-t1"


def message_file(qid, rcpt, body):
    head = (f"zmnode-message 1\nid {qid}\narrival {int(time.time())}.000000\n"
            f"from root@localhost\nto {rcpt}\nprotocol local\n"
            f"size {len(body):016d}\nenv-end\n")
    return head + body


def test_freezer_and_postman_listed_thawed_deleted(node):
    frozen = fake_qid(1)
    (node.spool / "freezer" / f"{frozen}.policy").write_text(
        message_file(frozen, "root@localhost",
                     "Subject: thaw-token\n\nwas frozen\n"))
    broken = fake_qid(2)
    (node.spool / "postman" / f"{broken}.malformed").write_text("garbage\n")

    out = node.mailq()
    assert out.returncode == 0, out.output
    assert "Frozen (spool/freezer/):" in out.stdout, out.stdout
    assert f"{frozen}: (policy," in out.stdout, out.stdout
    assert "Postman (spool/postman/):" in out.stdout, out.stdout
    assert f"{broken}: (malformed," in out.stdout, out.stdout
    js = [json.loads(l) for l in node.mailq("--json").stdout.splitlines()
          if l.strip()]
    held = {j["queue_id"]: j for j in js}
    assert held[frozen]["queue_name"] == "hold"
    assert held[broken]["queue_name"] == "corrupt"
    assert held[broken]["cause"] == "malformed"

    # A postman file that is no message cannot be requeued; it can go.
    proc = node.zmailer("requeue", broken)
    assert proc.returncode == 1, proc.output
    assert "not a message file" in proc.stderr
    proc = node.zmailer("delete", broken)
    assert proc.returncode == 0, proc.output
    assert not (node.spool / "postman" / f"{broken}.malformed").exists()

    # Thawed: the router takes it and it is delivered.
    proc = node.zmailer("thaw", frozen)
    assert proc.returncode == 0, proc.output
    assert "thawed" in proc.stdout
    node.wait_mbox_message("root", "thaw-token")
    assert not list((node.spool / "freezer").iterdir())

    assert node.zmailer("thaw", frozen).returncode == 66
    assert node.zmailer("delete", "not-a-qid").returncode == 64


def test_etrn_and_delete_queued_message(node_factory):
    def setup(n):
        slow_local_user(n)
        add_admin_user(n)
    node = node_factory(setup=setup)
    proc = node.zmailer("etrn", "nothing.example")
    assert proc.returncode == 0, proc.output
    assert "ETRN nothing.example: nothing queued" in proc.stdout
    qid = queue_deferred(node, "Subject: delete-token\n\nx\n")
    proc = node.zmailer("etrn", "slowpoke")
    assert proc.returncode == 0, proc.output
    assert "1 recipients scheduled" in proc.stdout, proc.stdout
    proc = node.zmailer("delete", qid)
    assert proc.returncode == 0, proc.output
    wait_for(lambda: not (node.spool / "queue" / qid).exists(),
             what="deleted message removed")
    wait_for(node.queue_empty, what="queue empty")
    assert not any("delete-token" in m for m in node.mbox_messages("root"))


def test_retry_state_survives_scheduler_restart(node_factory):
    node = node_factory(setup=slow_local_user)
    qid = queue_deferred(node, "Subject: restart-token\n\nx\n")
    wait_for(lambda: (node.spool / "retry" / qid).exists(),
             what="retry state written")
    # Another deferral makes the count 2 (the clock moves past the retry).
    assert admin_command(node, "CLOCK ADVANCE 70")
    wait_for(lambda: (node.spool / "retry" / qid).exists() and
             (node.spool / "retry" / qid).read_text().split()[1] == "2",
             what="second attempt recorded")
    old = node.pid("scheduler")
    os.kill(old, signal.SIGKILL)  # no goodbye: the file is all there is
    node.wait_restarted("scheduler", old)

    def attempts():
        proc = node.mailq("--json")
        for line in proc.stdout.splitlines():
            if line.strip():
                j = json.loads(line)
                if j["queue_id"] == qid:
                    return j["recipients"][0]["attempts"]
        return None
    assert wait_for(attempts, what="message listed after restart") == 2


def test_a_frozen_message_over_64_mib_is_thawed(node):
    # `zmailer thaw` read the file with ReadFile's 64 MiB default and
    # called a bigger message "not a message file"; sendmail takes 256 MiB.
    frozen = fake_qid(3)
    line = "x" * 999 + "\n"
    body = "Subject: big-thaw\n\n" + line * (66 * 1024)  # 66 MiB
    path = node.spool / "freezer" / f"{frozen}.policy"
    path.write_text(message_file(frozen, "root@localhost", body))
    proc = node.zmailer("thaw", frozen)
    assert proc.returncode == 0, proc.output
    assert "thawed" in proc.stdout
    assert not path.exists()
