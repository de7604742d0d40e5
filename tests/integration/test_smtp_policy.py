"""smtp-policy against a running node: no open relay, relay for trusted
networks and after AUTH, rate limits (messages and recipients, IPv4 and
IPv6 sources), recipient verification, VRFY/EXPN.

Loopback addresses stand in for networks: the policy trusts 127.0.0.1
only, so a client bound to 127.0.0.2..4 is a stranger; ::1 is a stranger
too (its own rate limit shows IPv6 sources are tracked).
"""

import smtplib
import subprocess

import pytest

from conftest import have_ipv6_loopback

POLICY = """\
_full_rights    relaycustnet + fulltrustnet +
[127.0.0.1]/32  = _full_rights
[127.0.0.0]/8   relaycustnet -  ratelimitmsgs 3,100
[127.0.0.3]/32  relaycustnet -  ratelimitmsgs -2,-100
[127.0.0.4]/32  relaycustnet -  ratelimitmsgs 100,4
[127.0.0.5]/32  relaycustnet -
[ipv6:::1]/128  relaycustnet -  ratelimitmsgs 2,100
partner.example relaytarget +
"""

MSG = "Subject: policy test\r\n\r\nhello\r\n"


def _setup(node):
    (node.etc / "smtp-policy.src").write_text(POLICY)
    hashed = subprocess.run(["openssl", "passwd", "-6", "s3cret"],
                            capture_output=True, text=True, check=True,
                            timeout=30).stdout.strip()
    (node.etc / "smtp-auth.passwd").write_text(f"alice:{hashed}\n")
    conf = node.etc / "smtpserver.conf"
    extra = ["PARAM enable-router", "PARAM VRFYcmd", "PARAM EXPNcmd",
             "PARAM smtp-auth", "PARAM AUTH-LOGIN-also-without-TLS",
             "PARAM max-error-recipients 100"]
    if have_ipv6_loopback():
        extra.append("PARAM BindAddress [IPv6.::1]")
    # PARAM lines before the HELO pattern lines.
    text = conf.read_text()
    conf.write_text("\n".join(extra) + "\n" + text)


@pytest.fixture
def pnode(node_factory):
    return node_factory(setup=_setup)


def client(node, source="127.0.0.2", host="127.0.0.1"):
    s = smtplib.SMTP(timeout=60, source_address=(source, 0))
    s.connect(host, node.smtp_port)
    code, _ = s.ehlo("client.example")
    assert code == 250
    return s


def rcpt(s, address):
    code, text = s.docmd(f"RCPT TO:<{address}>")
    return code, text.decode(errors="replace")


def test_open_relay_refused_with_tricks(pnode):
    s = client(pnode)
    try:
        code, text = s.docmd("MAIL FROM:<someone@example.com>")
        assert code == 250, text
        for address in [
                "victim@elsewhere.example",
                "victim%elsewhere.example@localhost",
                "elsewhere.example!victim@localhost",
                '"victim@elsewhere.example"@localhost',
                "@localhost:victim@elsewhere.example",
                "victim@[192.0.2.1]",
                "victim@localhost.elsewhere.example",
        ]:
            code, text = rcpt(s, address)
            assert 500 <= code < 600, (address, code, text)
            if code == 554:
                assert "5.7.1" in text, (address, text)
        code, text = rcpt(s, "victim@elsewhere.example")
        assert (code, text[:5]) == (554, "5.7.1"), text
        assert "victim@elsewhere.example" in text, text
        # Our own domain and relay targets are accepted from anyone.
        assert rcpt(s, "root@localhost")[0] == 250
        assert rcpt(s, "anyone@partner.example")[0] == 250
    finally:
        s.close()


def test_relay_from_trusted_network_and_after_auth(pnode):
    with client(pnode, source="127.0.0.1") as s:
        s.docmd("MAIL FROM:<a@localhost>")
        assert rcpt(s, "victim@elsewhere.example")[0] == 250
    with client(pnode, source="127.0.0.5") as s:
        s.docmd("MAIL FROM:<a@localhost>")
        assert rcpt(s, "victim@elsewhere.example")[0] == 554
        s.docmd("RSET")
        with pytest.raises(smtplib.SMTPAuthenticationError):
            s.login("alice", "wrong")
        s.login("alice", "s3cret")
        s.docmd("MAIL FROM:<alice@localhost>")
        assert rcpt(s, "victim@elsewhere.example")[0] == 250


def _send(s, n=1):
    refused = s.sendmail("sender@localhost", ["root@localhost"] * n, MSG)
    assert refused == {}


def test_message_rate_limit_soft_then_hard(pnode):
    with client(pnode, source="127.0.0.2") as s:  # ratelimitmsgs 3
        for _ in range(3):
            _send(s)
        code, text = s.docmd("MAIL FROM:<sender@localhost>")
        assert (code, text[:5]) == (450, b"4.7.1"), text
    with client(pnode, source="127.0.0.3") as s:  # ratelimitmsgs -2
        for _ in range(2):
            _send(s)
        code, text = s.docmd("MAIL FROM:<sender@localhost>")
        assert (code, text[:5]) == (550, b"5.7.1"), text


def test_recipient_limit_limits_recipients(pnode):
    with client(pnode, source="127.0.0.4") as s:  # 100 messages, 4 rcpts
        _send(s, 3)
        s.docmd("MAIL FROM:<sender@localhost>")
        assert rcpt(s, "root@localhost")[0] == 250  # the 4th
        code, text = rcpt(s, "root@localhost")
        assert (code, text[:5]) == (450, "4.7.1"), text


@pytest.mark.skipif(not have_ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_source_is_tracked(pnode):
    with client(pnode, source="::1", host="::1") as s:  # ratelimitmsgs 2
        _send(s)
        _send(s)
        code, text = s.docmd("MAIL FROM:<sender@localhost>")
        assert (code, text[:5]) == (450, b"4.7.1"), text


def test_unknown_local_user_refused_at_rcpt(pnode):
    with client(pnode) as s:
        s.docmd("MAIL FROM:<sender@example.com>")
        code, text = rcpt(s, "no-such-user@localhost")
        assert (code, text[:5]) == (550, "5.1.1"), text
        assert "no-such-user@localhost" in text
        assert rcpt(s, "root@localhost")[0] == 250
        assert rcpt(s, "postmaster@localhost")[0] == 250


def test_vrfy_and_expn(pnode):
    with client(pnode) as s:
        code, text = s.verify("root")
        assert code == 250, text
        code, text = s.verify("no-such-user")
        assert (code, text[:5]) == (550, b"5.1.1"), text
        code, text = s.expn("postmaster")
        assert code == 250, text
        assert b"root@" in text, text
