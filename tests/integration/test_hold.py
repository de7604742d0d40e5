"""Held mail end to end through one node: a temporary DNS failure sends the
recipient to the `hold` channel, the hold agent re-checks the condition
(still failing: deferred), and once the DNS server answers the message goes
back to the router, is routed to smtp and reaches the sink."""

import re

from conftest import wait_for
from dns_util import dnsmasq, host, mx  # noqa: F401
from sink_util import Sink, set_smtp_command


def maillog(node):
    return node.maillog.read_text(errors="replace") \
        if node.maillog.exists() else ""


def fast_hold_retries(node):
    """hold/* re-checks every second (the shipped clause: 5 minutes)."""
    conf = node.etc / "scheduler.conf"
    text = conf.read_text()
    clause = re.search(r"^hold/\*\n(?:[ \t]+.*\n)+", text, re.M)
    assert clause, text
    text = text.replace(clause.group(0), clause.group(0)
                        .replace("interval=5m", "interval=1s")
                        .replace('retries="1 1 2 3 6 12"', 'retries="1"'))
    conf.write_text(text)


def test_held_mail_is_released_when_dns_answers(node_factory, dnsmasq):
    with Sink() as sink:
        dns = dnsmasq([host("other.test", "127.0.0.1")], failing=["later.test"])

        def setup(node):
            dns.configure(node, timeout_ms=300)
            set_smtp_command(node, f"smtp -p {sink.port} -T 5")
            fast_hold_retries(node)
        node = node_factory(setup=setup)
        proc = node.sendmail("-f", "bob@localhost", "u@later.test",
                             message="Subject: held-token\n\nwait for it\n")
        assert proc.returncode == 0, proc.output
        m = node.wait_log(r"(\S+): to=<u@later\.test>, orig_to=<u@later\.test>:"
                          r" held \(dns:later\.test\)")
        first = m.group(1)
        # The hold agent checks again while DNS still fails: deferred.
        node.wait_log(r"still held: DNS lookup of later\.test")
        assert not sink.messages

        # DNS recovers: later.test has an MX (the sink's address).
        dns.restart(records=[mx("later.test", "mx.later.test", 10),
                             host("mx.later.test", "127.0.0.1")],
                    failing=[])
        m = node.wait_log(rf"{first}: .*dns:later\.test cleared; released to "
                          r"the router as ([0-9A-Z]+-\w+)", timeout=60)
        second = m.group(1)
        node.wait_log(rf"{second}: from=<bob@localhost>.* \(routed\)")
        sink.wait_messages(1, timeout=60)
        msg = sink.messages[0]
        assert msg["to"] == ["u@later.test"], msg
        assert msg["from"] == "bob@localhost", msg
        assert b"held-token" in msg["data"], msg
        wait_for(node.queue_empty, 60, what="queue empty")
        log = maillog(node)
        # Delivered once, by smtp, and never bounced.
        assert len(sink.messages) == 1
        assert re.search(rf"{second}: to=<u@later\.test>.*status=sent", log), \
            log
        assert "held-token" not in node.mbox("bob")
