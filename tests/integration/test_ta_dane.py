"""DANE (RFC 7672) in the smtp agent, against NSD serving a
DNSSEC-signed zone (keys and signatures made by the test) that libunbound
validates with the test's trust anchor: a DANE-EE match and a DANE-TA
match are delivered over TLS, a mismatch is deferred saying DANE decided,
an unsigned zone's TLSA records are ignored (opportunistic TLS), a zone
that validates as bogus is deferred, and the TLS reporting data counts
the sessions (`zmailer tlsrpt`)."""

import json

from conftest import wait_for
from sink_util import Sink, set_smtp_command
from tlspolicy_util import (LocalCa, cert_sha256, signed_dns,  # noqa: F401
                            spki_sha256)

MSG = "From: alice@localhost\nSubject: dane test\n\nhello\n"
WRONG = "00" * 32


def maillog(node):
    return node.maillog.read_text(errors="replace") if node.maillog.exists() \
        else ""


def result_line(node, addr):
    return next((l for l in maillog(node).splitlines()
                 if f"to=<{addr}>" in l and "status=" in l), None)


def test_dane_match_mismatch_and_unsigned(node_factory, signed_dns,
                                          tmp_path):
    ca = LocalCa(tmp_path / "ca")
    crt, key = ca.issue("mx", ["mx-ee.dane.test", "mx-ta.dane.test",
                               "mx-bad.dane.test", "mx.plain.test"])
    chain = tmp_path / "chain.pem"
    chain.write_text(open(crt).read() + ca.cert.read_text())
    with Sink(tls=(str(chain), key)) as sink:
        p = sink.port
        ee = spki_sha256(crt)
        dns = signed_dns(
            signed={"dane.test": [
                "ee IN MX 10 mx-ee", "mx-ee IN A 127.0.0.1",
                f"_{p}._tcp.mx-ee IN TLSA 3 1 1 {ee}",
                # DANE-TA: the CA's certificate; the server's names count.
                "ta IN MX 10 mx-ta", "mx-ta IN A 127.0.0.1",
                f"_{p}._tcp.mx-ta IN TLSA 2 0 1 {cert_sha256(ca.cert)}",
                "bad IN MX 10 mx-bad", "mx-bad IN A 127.0.0.1",
                f"_{p}._tcp.mx-bad IN TLSA 3 1 1 {WRONG}",
            ], "bogus.test": [
                "@ IN MX 10 mx", "mx IN A 127.0.0.1",
            ]},
            wrong_anchor=("bogus.test",),
            unsigned={"plain.test": [
                "@ IN MX 10 mx", "mx IN A 127.0.0.1",
                f"_{p}._tcp.mx IN TLSA 3 1 1 {WRONG}",
            ]})

        def setup(node):
            dns.configure(node)
            set_smtp_command(node, f"smtp -p {p} -T 5")
        node = node_factory(setup=setup)
        rcpts = ["a@ee.dane.test", "b@ta.dane.test", "c@bad.dane.test",
                 "d@plain.test", "e@bogus.test"]
        for rcpt in rcpts:
            proc = node.sendmail("-f", "alice@localhost", rcpt, message=MSG)
            assert proc.returncode == 0, proc.output
        wait_for(lambda: all(result_line(node, a) for a in rcpts), 90,
                 what="a result for every recipient")
        sink.wait_messages(3)

        got = {m["to"][0]: m for m in sink.messages}
        assert set(got) == {"a@ee.dane.test", "b@ta.dane.test",
                            "d@plain.test"}
        assert all(m["tls"] for m in got.values())
        assert "status=sent" in result_line(node, "a@ee.dane.test")
        assert "status=sent" in result_line(node, "b@ta.dane.test")
        assert "status=sent" in result_line(node, "d@plain.test")
        bad = result_line(node, "c@bad.dane.test")
        assert "status=deferred" in bad
        assert f"DANE (_{p}._tcp.mx-bad.dane.test)" in bad
        bogus = result_line(node, "e@bogus.test")
        assert "status=deferred" in bogus
        assert "DANE: the MX records of bogus.test fail DNSSEC validation" \
            in bogus
        log = maillog(node)
        assert f"TLSA match 3 1 1 {ee}" in log
        assert "TLSA match 2 0 1" in log
        # The unsigned zone's (wrong) TLSA record was not used.
        assert "opportunistic TLS" in log

        day = json.loads(node.zmailer("tlsrpt").stdout)
        by_domain = {r["policies"][0]["policy"]["policy-domain"]: r
                     for r in day}
        ee_pol = by_domain["ee.dane.test"]["policies"][0]
        assert ee_pol["policy"]["policy-type"] == "tlsa"
        assert ee_pol["summary"]["total-successful-session-count"] >= 1
        bad_pol = by_domain["bad.dane.test"]["policies"][0]
        assert bad_pol["summary"]["total-failure-session-count"] >= 1
        assert bad_pol["failure-details"][0]["result-type"] == \
            "validation-failure"
        assert by_domain["plain.test"]["policies"][0]["policy"][
            "policy-type"] == "no-policy-found"


def test_dane_follows_secure_cname_of_the_mx_host(node_factory, signed_dns,
                                                   tmp_path):
    """RFC 7672 section 2.2.2: an MX host that is an alias (CNAME) in a
    signed zone has its TLSA records looked up at the expanded name first
    (here the matching one; the alias's own is wrong), and at the alias
    when the target has none (here the wrong one: deferred)."""
    ca = LocalCa(tmp_path / "ca")
    crt, key = ca.issue("mx", ["mx-real.dane.test"])
    with Sink(tls=(crt, key)) as sink:
        p = sink.port
        ee = spki_sha256(crt)
        dns = signed_dns(signed={"dane.test": [
            "cn IN MX 10 mx-alias", "mx-alias IN CNAME mx-real",
            "mx-real IN A 127.0.0.1",
            f"_{p}._tcp.mx-real IN TLSA 3 1 1 {ee}",
            f"_{p}._tcp.mx-alias IN TLSA 3 1 1 {WRONG}",
            "fb IN MX 10 mx-alias2", "mx-alias2 IN CNAME mx-notlsa",
            "mx-notlsa IN A 127.0.0.1",
            f"_{p}._tcp.mx-alias2 IN TLSA 3 1 1 {WRONG}",
        ]})

        def setup(node):
            dns.configure(node)
            set_smtp_command(node, f"smtp -p {p} -T 5")
        node = node_factory(setup=setup)
        rcpts = ["a@cn.dane.test", "b@fb.dane.test"]
        for rcpt in rcpts:
            proc = node.sendmail("-f", "alice@localhost", rcpt, message=MSG)
            assert proc.returncode == 0, proc.output
        wait_for(lambda: all(result_line(node, a) for a in rcpts), 90,
                 what="a result for every recipient")
        sink.wait_messages(1)
        assert [m["to"][0] for m in sink.messages] == ["a@cn.dane.test"]
        assert "status=sent" in result_line(node, "a@cn.dane.test")
        log = maillog(node)
        assert f"DANE (_{p}._tcp.mx-real.dane.test)" in log
        assert f"TLSA match 3 1 1 {ee}" in log
        fb = result_line(node, "b@fb.dane.test")
        assert "status=deferred" in fb
        assert f"DANE (_{p}._tcp.mx-alias2.dane.test)" in fb
