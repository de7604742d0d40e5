"""SMTP reception end to end: a real client -> smtpserver -> local mailbox."""

import smtplib

from conftest import header_value, wait_for


def test_smtplib_message_lands(node):
    msg = ("From: Sender <sender@localhost>\r\n"
           "To: root@localhost\r\n"
           "Subject: smtplib-token-1\r\n"
           "\r\n"
           "first line\r\n"
           ".a line that starts with a dot\r\n"
           "last line\r\n")
    with smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=60) as s:
        code, _ = s.ehlo("client.example")
        assert code == 250
        assert s.has_extn("pipelining")
        assert s.has_extn("enhancedstatuscodes")
        refused = s.sendmail("sender@localhost", ["root@localhost"], msg)
        assert refused == {}
    got = node.wait_mbox_message("root", "smtplib-token-1")
    # Dot-unstuffed, stored with LF line ends.
    assert "\n.a line that starts with a dot\n" in got, got
    assert "\r" not in got
    assert header_value(got, "Return-Path") == "<sender@localhost>", got
    # The smtpserver put its Received: line on top.
    assert header_value(got, "Received"), got
    lines = node.log_lines()
    assert any("connect from" in l for l in lines), lines
    assert any("client=" in l and "helo=<client.example>" in l
               for l in lines), lines


def test_swaks_message_lands(node):
    proc = node.swaks("--to", "root@localhost", "--from", "swaks@localhost",
                      "--header", "Subject: swaks-token-2")
    assert proc.returncode == 0, proc.output
    assert "queued as" in proc.output, proc.output
    got = node.wait_mbox_message("root", "swaks-token-2")
    assert header_value(got, "Return-Path") == "<swaks@localhost>", got


def test_unknown_command_and_sequence_errors(node):
    with smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=60) as s:
        s.ehlo("client.example")
        code, text = s.docmd("BOGUS")
        assert code == 500, text
        code, text = s.docmd("RCPT TO:<root@localhost>")
        assert code == 503, text
        code, text = s.docmd("DATA")
        assert code == 503, text


def test_two_recipients_one_transaction(node):
    for sub in ("cur", "new", "tmp"):
        (node.mail / "mduser" / sub).mkdir(parents=True)
    with smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=60) as s:
        refused = s.sendmail("sender@localhost",
                             ["root@localhost", "mduser@localhost"],
                             "Subject: two-token-3\r\n\r\nboth\r\n")
        assert refused == {}
    node.wait_mbox_message("root", "two-token-3")
    wait_for(lambda: node.maildir_messages("mduser"),
             what="Maildir delivery to mduser")
    assert "two-token-3" in node.maildir_messages("mduser")[0]
