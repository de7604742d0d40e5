"""sendmail as real callers use it, and its command-line contract."""

import os

import pytest

from conftest import header_value, wait_for

# (name, argv, message): the flag sets of real callers (issue 2).
CALLERS = [
    ("php", ["-t", "-i"],
     "To: root@localhost\nSubject: php-token\n\nline\n.\nafter a lone dot\n"),
    ("cron", ["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"],
     "Subject: cron-token\n\noutput of a job\n"),
    ("mutt", ["-oem", "-oi", "root@localhost"],
     "From: u@localhost\nTo: root@localhost\nSubject: mutt-token\n\nhello\n"),
    ("mailx", ["-oi", "-f", "mailx@localhost", "-t"],
     "To: root@localhost\nSubject: mailx-token\n\nhello\n"),
    ("git-send-email", ["-i", "-f", "git@localhost", "root@localhost"],
     "From: git@localhost\nTo: root@localhost\nSubject: git-token\n\n"
     "patch\n"),
]


@pytest.mark.parametrize("name,argv,message", CALLERS,
                         ids=[c[0] for c in CALLERS])
def test_real_caller_flags_deliver(node, name, argv, message):
    proc = node.sendmail(*argv, message=message)
    assert proc.returncode == 0, f"{name}: {proc.output}"
    got = node.wait_mbox_message("root", f"{name.split('-')[0]}-token")
    if name == "php":
        # -i: a lone dot does not end the message.
        assert "after a lone dot" in got, got
    if name == "cron":
        assert "CronDaemon" in (header_value(got, "From") or ""), got
    if name == "mailx":
        assert header_value(got, "Return-Path") == "<mailx@localhost>", got
    if name == "git-send-email":
        assert header_value(got, "Return-Path") == "<git@localhost>", got


def test_dot_ends_message_without_i(node):
    proc = node.sendmail("root@localhost",
                         message="Subject: dot-token\n\nbefore\n.\nafter\n")
    assert proc.returncode == 0, proc.output
    got = node.wait_mbox_message("root", "dot-token")
    assert "before" in got
    assert "after" not in got.split("\n\n", 1)[1], got


def test_t_removes_bcc_and_delivers_to_it(node):
    for sub in ("cur", "new", "tmp"):
        os.makedirs(node.mail / "bccuser" / sub)
    proc = node.sendmail(
        "-t", "-i",
        message=("To: root@localhost\nBcc: bccuser@localhost\n"
                 "Subject: bcc-token\n\nsecret copy\n"))
    assert proc.returncode == 0, proc.output
    got = node.wait_mbox_message("root", "bcc-token")
    assert header_value(got, "Bcc") is None, got
    copies = wait_for(lambda: node.maildir_messages("bccuser"),
                      what="the Bcc recipient's copy")
    assert "bcc-token" in copies[0]
    assert header_value(copies[0], "Bcc") is None, copies[0]


def test_no_recipients_is_usage_error(node):
    proc = node.sendmail(message="Subject: x\n\nx\n")
    assert proc.returncode == 64, proc.output
    assert proc.stderr.strip(), "a one-line reason on stderr"


def test_bv_verifies_without_sending(node):
    proc = node.sendmail("-bv", "root@localhost")
    assert proc.returncode == 0, proc.output
    assert "deliverable" in proc.stdout, proc.output
    assert "channel=local" in proc.stdout, proc.output
    assert not node.spool_files("router")
    assert not node.mbox("root")
