"""Local delivery end to end: sendmail -> router -> scheduler -> mailbox.

Each test starts a fresh node and checks what a user sees: the mailbox
file (mbox or Maildir), the pipe's output, the bounce, the event log.
"""

import os
import re
import stat

from conftest import header_value, wait_for


def add_aliases(node, text):
    with open(node.etc / "aliases", "a") as f:
        f.write("\n" + text + "\n")
    proc = node.zmailer("newaliases")
    assert proc.returncode == 0, proc.output


def test_echo_hi_lands_in_root_mbox(node):
    proc = node.sendmail("root@localhost", message="hi\n")
    assert proc.returncode == 0, proc.output

    msg = node.wait_mbox_message("root", "hi")
    raw = node.mbox("root")
    first = raw.split("\n", 1)[0]
    assert re.match(r"^From \S+ \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$",
                    first), f"bad From_ line: {first!r}"
    assert header_value(msg, "Return-Path"), msg
    assert "root" in (header_value(msg, "Delivered-To") or ""), msg
    # sendmail adds the headers a bare body lacks.
    for name in ("Date", "Message-ID", "From", "Received"):
        assert header_value(msg, name), f"{name} missing:\n{msg}"
    body = msg.split("\n\n", 1)[1]
    assert body.startswith("hi\n"), repr(body)
    # mbox: a blank line after each message.
    assert raw.endswith("\n\n"), repr(raw[-20:])

    # The event log tells the story with the queue id on every line.
    qid = node.submitted_ids()[0]
    wait_for(lambda: any("removed" in l for l in node.log_lines(qid)),
             what="QID: removed")
    lines = node.log_lines(qid)
    assert any(re.search(r"uid=\d+ from=<", l) for l in lines), lines
    assert any(re.search(r"from=<[^>]*>, size=\d+, nrcpt=1", l)
               for l in lines), lines
    sent = [l for l in lines if "status=sent" in l]
    assert sent, lines
    assert re.search(r"to=<root@[^>]*>, .*relay=\S+, delay=[\d.]+, "
                     r"delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, dsn=2\.\d\.\d, "
                     r"status=sent", sent[0]), sent[0]
    wait_for(node.queue_empty, what="queue empty")


def test_alias_to_root(node):
    add_aliases(node, "testalias: root")
    proc = node.sendmail("testalias@localhost",
                         message="Subject: alias-token-1\n\nvia alias\n")
    assert proc.returncode == 0, proc.output
    msg = node.wait_mbox_message("root", "alias-token-1")
    assert "testalias" in (header_value(msg, "Delivered-To") or ""), msg


def shared_dir(node, name):
    """A folder any user can write: when the node runs as root, the mailbox
    agent runs |command and /file targets of a root-owned aliases file as
    `nobody`, never as root."""
    for d in (node.home.parent, node.home):
        d.chmod(0o755)
    path = node.home / name
    path.mkdir()
    path.chmod(0o1777)
    return path


def test_pipe_alias_runs_command(node):
    d = shared_dir(node, "pipe")
    out = d / "pipe.out"
    script = d / "pipe.sh"
    script.write_text(
        "#!/bin/sh\n"
        f"cat > {out}.tmp\n"
        f"echo \"RECIPIENT=$RECIPIENT SENDER=$SENDER\" >> {out}.tmp\n"
        f"mv {out}.tmp {out}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP
                 | stat.S_IXOTH)
    add_aliases(node, f"pipetest: |{script}")
    proc = node.sendmail("-f", "root@localhost", "pipetest@localhost",
                         message="Subject: pipe-token-2\n\nto a pipe\n")
    assert proc.returncode == 0, proc.output
    text = wait_for(lambda: out.exists() and out.read_text(),
                    what="the pipe's output file")
    assert "pipe-token-2" in text
    assert "to a pipe" in text
    assert "Return-Path: <root@localhost>" in text, text
    assert "SENDER=root@localhost" in text, text
    # Nothing went to a mailbox named after the alias.
    assert not (node.mail / "pipetest").exists()


def test_file_alias_appends_mbox(node):
    target = shared_dir(node, "archive") / "archive.mbox"
    add_aliases(node, f"filetest: {target}")
    proc = node.sendmail("filetest@localhost",
                         message="Subject: file-token-3\n\nto a file\n")
    assert proc.returncode == 0, proc.output
    text = wait_for(lambda: target.exists() and "to a file" in
                    target.read_text() and target.read_text(),
                    what="the file alias target")
    assert text.startswith("From "), text[:80]
    assert "file-token-3" in text


def test_maildir_user(node):
    for sub in ("cur", "new", "tmp"):
        os.makedirs(node.mail / "mduser" / sub)
    proc = node.sendmail("mduser@localhost",
                         message="Subject: maildir-token-4\n\nto a maildir\n")
    assert proc.returncode == 0, proc.output
    msgs = wait_for(lambda: os.listdir(node.mail / "mduser" / "new"),
                    what="a file in mail/mduser/new")
    assert len(msgs) == 1, msgs
    text = (node.mail / "mduser" / "new" / msgs[0]).read_text()
    assert "maildir-token-4" in text
    assert not text.startswith("From "), "a Maildir file has no From_ line"
    assert header_value(text, "Return-Path"), text
    assert "mduser" in (header_value(text, "Delivered-To") or ""), text
    assert os.listdir(node.mail / "mduser" / "tmp") == []


def test_unknown_user_bounces_to_sender(node):
    proc = node.sendmail("-f", "root@localhost", "nosuchuser@localhost",
                         message="Subject: bounce-token-5\n\nnobody home\n")
    assert proc.returncode == 0, proc.output
    dsn = node.wait_mbox_message("root", "nosuchuser")
    m = node.wait_log(r"(\S+): to=<nosuchuser@[^>]*>.*status=bounced")
    qid = m.group(1)
    assert "5.1.1" in dsn, dsn
    assert qid in dsn, f"original queue id {qid} not in the DSN:\n{dsn}"
    assert "multipart/report" in dsn, dsn
    assert "message/delivery-status" in dsn, dsn
    # A DSN has the null sender, so nothing can bounce back to it.
    assert header_value(dsn, "Return-Path") == "<>", dsn
    assert "MAILER-DAEMON" in (header_value(dsn, "From") or ""), dsn
    # The bounce itself was delivered and both messages left the queue.
    wait_for(node.queue_empty, what="queue empty")
    assert "bounce-token-5" in dsn  # original headers are returned
