"""The smtp agent's MX handling against a dnsmasq the test starts:
preference order with a dead first MX, null MX, NXDOMAIN, a DNS server
failure (deferred), the next MX after a temporary failure at greeting,
EHLO or MAIL, and a RCPT 4xx that defers only that recipient."""

import pytest

from conftest import wait_for
from dns_util import dnsmasq, host, mx, null_mx  # noqa: F401
from sink_util import ScriptedServer, Sink, set_smtp_command

MSG = "From: alice@localhost\nSubject: mx test\n\nhello\n"


def mx_node(node_factory, dns, port):
    def setup(node):
        dns.configure(node)
        set_smtp_command(node, f"smtp -p {port} -T 5")
    return node_factory(setup=setup)


def maillog(node):
    return node.maillog.read_text(errors="replace") if node.maillog.exists() \
        else ""


def test_mx_preference_and_fallback(node_factory, dnsmasq):
    with Sink() as sink:
        dns = dnsmasq([
            # The preferred MX refuses connections (nothing listens on
            # 127.0.0.2 at the sink's port); the second one is the sink.
            mx("example.test", "mx0.example.test", 5),
            mx("example.test", "mx1.example.test", 10),
            host("mx0.example.test", "127.0.0.2"),
            host("mx1.example.test", "127.0.0.1"),
        ])
        node = mx_node(node_factory, dns, sink.port)
        proc = node.sendmail("-f", "alice@localhost", "bob@example.test",
                             message=MSG)
        assert proc.returncode == 0, proc.output
        sink.wait_messages(1)
        wait_for(lambda: "status=sent" in maillog(node), 30,
                 what="status=sent")
        assert "mx1.example.test[127.0.0.1]" in maillog(node)


def test_null_mx_and_nxdomain_bounce_dns_failure_defers(node_factory,
                                                        dnsmasq):
    with Sink() as sink:
        dns = dnsmasq([null_mx("nomail.test")], failing=["broken.test"])
        node = mx_node(node_factory, dns, sink.port)
        for rcpt in ("a@nomail.test", "b@nxdomain.test", "c@broken.test"):
            proc = node.sendmail("-f", "alice@localhost", rcpt, message=MSG)
            assert proc.returncode == 0, proc.output

        def line(addr):
            return next((l for l in maillog(node).splitlines()
                         if f"to=<{addr}>" in l and "status=" in l), None)
        wait_for(lambda: all(line(a) for a in (
            "a@nomail.test", "b@nxdomain.test", "c@broken.test")), 60,
            what="a result for every recipient")
        assert "status=bounced" in line("a@nomail.test")
        assert "status=bounced" in line("b@nxdomain.test")
        assert "status=deferred" in line("c@broken.test")
        assert not sink.messages


FAILING_FIRST_MX = {
    # The preferred MX fails at each stage with a temporary reply; the
    # agent must go on to the next MX (the sink) within the same attempt.
    "connect-greeting-421": [(None, b"421 4.3.2 too busy\r\n"),
                             (None, "close")],
    "ehlo-421": [(None, b"220 mx0 ESMTP\r\n"),
                 ("EHLO", b"421 4.3.2 going away\r\n"), (None, "close")],
    "ehlo-451": [(None, b"220 mx0 ESMTP\r\n"),
                 ("EHLO", b"451 4.3.0 local problem\r\n"),
                 ("QUIT", b"221 bye\r\n")],
    "mail-451-pipelined": [
        (None, b"220 mx0 ESMTP\r\n"),
        ("EHLO", b"250-mx0\r\n250 PIPELINING\r\n"),
        ("MAIL", b"451 4.3.0 sender check failed, try later\r\n"),
        ("RCPT", b"503 5.5.1 need MAIL first\r\n")],
    "mail-421": [
        (None, b"220 mx0 ESMTP\r\n"), ("EHLO", b"250 mx0\r\n"),
        ("MAIL", b"421 4.3.2 shutting down\r\n"), (None, "close")],
}


def two_mx_dns(dnsmasq):
    return dnsmasq([
        mx("example.test", "mx0.example.test", 5),
        mx("example.test", "mx1.example.test", 10),
        host("mx0.example.test", "127.0.0.2"),
        host("mx1.example.test", "127.0.0.1"),
    ])


@pytest.mark.parametrize("stage", sorted(FAILING_FIRST_MX))
def test_next_mx_after_temporary_failure(node_factory, dnsmasq, stage):
    with Sink() as sink, ScriptedServer(FAILING_FIRST_MX[stage],
                                        host="127.0.0.2",
                                        port=sink.port) as srv:
        node = mx_node(node_factory, two_mx_dns(dnsmasq), sink.port)
        proc = node.sendmail("-f", "alice@localhost", "bob@example.test",
                             message=MSG)
        assert proc.returncode == 0, proc.output
        sink.wait_messages(1)
        wait_for(lambda: "status=sent" in maillog(node), 30,
                 what="status=sent")
        log = maillog(node)
        assert "mx1.example.test[127.0.0.1]" in log
        assert "no delivery through mx0.example.test[127.0.0.2]" in log
        assert srv.conns, "the first MX was never tried"
        if stage.startswith("mail"):
            assert any(l.startswith("MAIL") for l in srv.lines)
        assert "status=deferred" not in log
        assert len(sink.messages) == 1


def test_rcpt_4xx_defers_that_recipient_without_next_mx(node_factory,
                                                          dnsmasq):
    script = [
        (None, b"220 mx0 ESMTP\r\n"), ("EHLO", b"250 mx0\r\n"),
        ("MAIL", b"250 2.1.0 ok\r\n"),
        ("RCPT", b"450 4.2.0 mailbox busy\r\n"),
        ("RCPT", b"250 2.1.5 ok\r\n"),
        ("DATA", b"354 go\r\n"), (None, b"250 2.0.0 queued\r\n"),
    ]
    with Sink() as sink, ScriptedServer(script, host="127.0.0.2",
                                        port=sink.port) as srv:
        node = mx_node(node_factory, two_mx_dns(dnsmasq), sink.port)
        proc = node.sendmail("-f", "alice@localhost", "bob@example.test",
                             "carol@example.test", message=MSG)
        assert proc.returncode == 0, proc.output

        def results():
            return [l for l in maillog(node).splitlines() if "status=" in l]
        wait_for(lambda: len(results()) >= 2, 30, what="two results")
        lines = results()
        sent = [l for l in lines if "status=sent" in l]
        deferred = [l for l in lines if "status=deferred" in l]
        assert len(sent) == 1 and len(deferred) == 1, lines
        assert "mx0.example.test[127.0.0.2]" in sent[0]
        assert "450 4.2.0 mailbox busy" in deferred[0]
        assert "<body:" in " ".join(srv.lines)
        assert not sink.messages  # the second MX was not used
