"""The smtpserver's client DNS against a dnsmasq the test starts: the
reverse name (PTR plus forward confirmation) in the log, the Received:
header, the EHLO reply and hdr220's %R; the off switch; DNS blocklists
(test-dns-rbl at MAIL, rcpt-dns-rbl for recipients that ask for it).

Loopback addresses stand in for clients: 127.0.0.2 has a confirmed name,
127.0.0.3 a PTR whose name does not point back, 127.0.0.4 is listed in
the blocklist zone bl.test (as zen.spamhaus.org lists 127.0.0.2).
"""

import smtplib
import socket

import pytest

from dns_util import dnsmasq, host, ptr, txt  # noqa: F401
from smtpserver_util import command, read_reply, set_params

RECORDS = [
    ptr("127.0.0.2", "good.client.test"),
    host("good.client.test", "127.0.0.2"),
    ptr("127.0.0.3", "liar.client.test"),
    host("liar.client.test", "192.0.2.99"),
    host("4.0.0.127.bl.test", "127.0.0.2"),
    txt("4.0.0.127.bl.test", "Listed for testing, see bl.test"),
    host("partner.test", "192.0.2.10"),
]

POLICY = """\
[127.0.0.1]/32  relaycustnet + fulltrustnet +
[127.0.0.0]/8   relaycustnet -  test-dns-rbl bl.test
[127.0.0.5]/32  relaycustnet -  rcpt-dns-rbl +
guarded.test    relaytarget +   test-rcpt-dns-rbl +
open.test       relaytarget +
"""

MSG = "Subject: dns test\r\n\r\nhello\r\n"


def _client(node, source):
    s = smtplib.SMTP(timeout=60, source_address=(source, 0))
    s.connect("127.0.0.1", node.smtp_port)
    return s


@pytest.fixture
def dnode(node_factory, dnsmasq):
    dns = dnsmasq(RECORDS)

    def setup(node):
        dns.configure(node)
        (node.etc / "smtp-policy.src").write_text(POLICY)
        set_params(node, hdr220="%H ESMTP hello %R", rcvd_auth_user=True)

    return node_factory(setup=setup)


def test_confirmed_reverse_name_everywhere(dnode):
    s = _client(dnode, "127.0.0.2")
    try:
        code, text = s.ehlo("helo.name.test")
        assert code == 250
        assert b"(good.client.test [127.0.0.2])" in text, text
        s.sendmail("a@open.test", ["root@localhost"], MSG + "marker-good\r\n")
    finally:
        s.quit()
    mbox = dnode.wait_mbox_message("root", "marker-good")
    assert "from helo.name.test (good.client.test [127.0.0.2])" in mbox, mbox
    dnode.wait_log(r"client=good\.client\.test\[127\.0\.0\.2\]")


def test_greeting_metatag_names_the_client(dnode):
    with socket.create_connection(
            ("127.0.0.1", dnode.smtp_port), timeout=60,
            source_address=("127.0.0.2", 0)) as raw:
        banner = read_reply(raw)
        assert banner.startswith("220 ") and "hello good.client.test" in banner
        command(raw, "QUIT")
    with socket.create_connection(
            ("127.0.0.1", dnode.smtp_port), timeout=60,
            source_address=("127.0.0.6", 0)) as raw:
        banner = read_reply(raw)
        assert "hello unknown" in banner, banner
        command(raw, "QUIT")


def test_unconfirmed_ptr_is_unknown(dnode):
    s = _client(dnode, "127.0.0.3")
    try:
        code, text = s.ehlo("liar.test")
        assert code == 250
        assert b"(unknown [127.0.0.3])" in text, text
    finally:
        s.quit()
    dnode.wait_log(r"reverse name liar\.client\.test of 127\.0\.0\.3 not "
                   r"confirmed")


def test_reverse_dns_off_switch(node_factory, dnsmasq):
    dns = dnsmasq(RECORDS)

    def setup(node):
        dns.configure(node)
        set_params(node, no_reverse_dns=True)

    node = node_factory(setup=setup)
    s = _client(node, "127.0.0.2")
    try:
        code, text = s.ehlo("helo.name.test")
        assert b"(unknown [127.0.0.2])" in text, text
    finally:
        s.quit()


def test_listed_client_refused_at_mail(dnode):
    s = _client(dnode, "127.0.0.4")
    try:
        s.ehlo("listed.test")
        code, text = s.docmd("MAIL FROM:<a@open.test>")
        assert code == 550, text
        assert b"5.7.1" in text and b"bl.test" in text, text
        assert b"Listed for testing" in text, text
    finally:
        s.quit()
    # An unlisted stranger is served.
    s = _client(dnode, "127.0.0.6")
    try:
        s.ehlo("clean.test")
        code, text = s.docmd("MAIL FROM:<a@open.test>")
        assert code == 250, text
    finally:
        s.quit()


def test_rcpt_dns_rbl_only_for_recipients_that_ask(node_factory, dnsmasq):
    # 127.0.0.5 is listed in this zone; its network asks for rcpt-dns-rbl
    # with the default zones ("+"), set to bl.test here.
    dns = dnsmasq(RECORDS + [host("5.0.0.127.bl.test", "127.0.0.2")])

    def setup(node):
        dns.configure(node)
        (node.etc / "smtp-policy.src").write_text(POLICY)
        set_params(node, dnsbl_zones="bl.test")

    node = node_factory(setup=setup)
    s = _client(node, "127.0.0.5")
    try:
        s.ehlo("listed.test")
        code, text = s.docmd("MAIL FROM:<a@elsewhere.test>")
        assert code == 250, text
        code, text = s.docmd("RCPT TO:<user@guarded.test>")
        assert code == 550 and b"bl.test" in text, text
        code, text = s.docmd("RCPT TO:<user@open.test>")
        assert code == 250, text
        code, text = s.docmd("RCPT TO:<postmaster@guarded.test>")
        assert code == 250, text
    finally:
        s.quit()


def test_bad_rbl_zone_is_file_line(node_factory):
    def setup(node):
        (node.etc / "smtp-policy.src").write_text(
            "[127.0.0.0]/8 test-dns-rbl bad/zone\n")

    node = node_factory(start=False, setup=setup)
    proc = node.zmailer("newdb")
    assert proc.returncode != 0
    assert "smtp-policy.src:1:" in proc.stderr and "test-dns-rbl" in \
        proc.stderr, proc.stderr
