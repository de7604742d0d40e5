"""The smtp agent's MX handling against a dnsmasq the test starts:
preference order with a dead first MX, null MX, NXDOMAIN, and a DNS
server failure (deferred)."""

from conftest import wait_for
from dns_util import dnsmasq, host, mx, null_mx  # noqa: F401
from sink_util import Sink, set_smtp_command

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
