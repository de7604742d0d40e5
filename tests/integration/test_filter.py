"""PARAM contentfilter through a running node: accept, reject, freeze,
and a hanging filter that must not let mail through."""

import smtplib

import pytest


FILTER = r"""#!/bin/sh
echo '#hungry'
while read path qid; do
  if grep -q '^Subject: hang' "$path"; then sleep 600; fi
  if grep -q '^Subject: spam' "$path"; then
    echo "-1 550 5.7.1 spam from the test filter"
  elif grep -q '^Subject: freeze' "$path"; then
    echo "1 held by the test filter"
  elif grep -q '^Subject: garbage' "$path"; then
    echo "whatever"
  else
    echo "0 ok"
  fi
  echo '#hungry'
done
"""


def with_filter(node):
    prog = node.home.parent / "filter.sh"
    prog.write_text(FILTER)
    prog.chmod(0o755)
    with open(node.etc / "smtpserver.conf", "a") as f:
        f.write(f"PARAM contentfilter {prog}\n")
        f.write("PARAM contentfilter-timeout 2\n")


def data_reply(node, subject):
    """The reply to the end of DATA for a message with `subject`."""
    with smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=60) as s:
        s.ehlo("filter.example")
        code, text = s.mail("sender@localhost")
        assert code == 250, text
        code, text = s.rcpt("root@localhost")
        assert code == 250, text
        code, text = s.data(f"Subject: {subject}\r\n\r\nbody\r\n".encode())
        return code, text.decode(errors="replace")


@pytest.fixture
def fnode(node_factory):
    return node_factory(setup=with_filter)


def test_filter_verdicts(fnode):
    code, text = data_reply(fnode, "hello")
    assert code == 250, text
    fnode.wait_mbox_message("root", "Subject: hello")

    code, text = data_reply(fnode, "spam")
    assert code == 550, text
    assert "5.7.1" in text and "spam from the test filter" in text, text

    code, text = data_reply(fnode, "freeze")
    assert code == 250, text
    fnode.wait_log(r"held by the test filter")


def test_broken_filter_never_accepts(fnode):
    for subject in ("hang", "garbage"):
        code, text = data_reply(fnode, subject)
        assert code == 451, (subject, text)
        assert "4.7.1" in text, text
    # A fresh filter process takes the next message.
    code, text = data_reply(fnode, "after")
    assert code == 250, text
    fnode.wait_mbox_message("root", "Subject: after")
    for m in fnode.mbox_messages("root"):
        assert "Subject: hang" not in m and "Subject: garbage" not in m
