"""MTA-STS (RFC 8461) in the smtp agent: policies served over HTTPS by a
test server with a test CA, `_mta-sts` TXT records and MX records from a
dnsmasq, and one sink whose certificate (same CA) names only
mx.ok.test. enforce with a wrong certificate or an unlisted MX defers
saying which policy decided; testing delivers and records the failure;
a matching certificate delivers; an explicit smtp-tls.conf rule
overrides the policy; the policy is cached on disk, and refreshed in the
background. Also TLS reports (RFC 8460) mailed by `zmailer tlsrpt
--send`."""

import email
import gzip
import json
import time

from conftest import wait_for
from dns_util import dnsmasq, host, mx, txt  # noqa: F401
from sink_util import Sink, set_smtp_command
from tlspolicy_util import PolicyServer, LocalCa, sts_policy

MSG = "From: alice@localhost\nSubject: mta-sts test\n\nhello\n"

POLICIES = {
    "enf.test": sts_policy("enforce", "mx.enf.test"),
    "tst.test": sts_policy("testing", "mx.tst.test"),
    "ok.test": sts_policy("enforce", "*.ok.test"),
    "nolist.test": sts_policy("enforce", "*.elsewhere.test"),
    "override.test": sts_policy("enforce", "mx.override.test"),
}


def maillog(node):
    return node.maillog.read_text(errors="replace") if node.maillog.exists() \
        else ""


def result_line(node, addr):
    return next((l for l in maillog(node).splitlines()
                 if f"to=<{addr}>" in l and "status=" in l), None)


def test_mta_sts_enforce_testing_and_match(node_factory, dnsmasq, tmp_path):
    ca = LocalCa(tmp_path / "ca")
    web_crt, web_key = ca.issue("web", [f"mta-sts.{d}" for d in POLICIES])
    mx_crt, mx_key = ca.issue("mx", ["mx.ok.test"])
    # One HTTPS server for every domain: the Host header picks the policy.
    server = PolicyServer(web_crt, web_key, "", policy_for=POLICIES)
    with server, Sink(tls=(mx_crt, mx_key)) as sink:
        records = []
        for d in POLICIES:
            records += [mx(d, f"mx.{d}", 10), host(f"mx.{d}", "127.0.0.1"),
                        host(f"mta-sts.{d}", "127.0.0.1"),
                        txt(f"_mta-sts.{d}", "v=STSv1; id=20261121")]
        dns = dnsmasq(records)

        def setup(node):
            dns.configure(node)
            set_smtp_command(node, f"smtp -p {sink.port} -T 5")
            (node.etc / "smtp-tls.conf").write_text(
                f"mta-sts-ca={ca.cert}\nmta-sts-port={server.port}\n"
                "mta-sts-timeout=10\noverride.test may\n")
        node = node_factory(setup=setup)
        rcpts = [f"u@{d}" for d in POLICIES]
        for rcpt in rcpts:
            proc = node.sendmail("-f", "alice@localhost", rcpt, message=MSG)
            assert proc.returncode == 0, proc.output
        wait_for(lambda: all(result_line(node, a) for a in rcpts), 90,
                 what="a result for every recipient")

        enf = result_line(node, "u@enf.test")
        assert "status=deferred" in enf
        assert "MTA-STS enforce policy of enf.test" in enf
        assert "hostname mismatch" in enf
        nolist = result_line(node, "u@nolist.test")
        assert "status=deferred" in nolist
        assert "MTA-STS enforce policy of nolist.test" in nolist
        assert "not listed in the policy" in nolist
        for d in ("tst.test", "ok.test", "override.test"):
            assert "status=sent" in result_line(node, f"u@{d}"), d
        sink.wait_messages(3)
        got = {m["to"][0] for m in sink.messages}
        assert got == {"u@tst.test", "u@ok.test", "u@override.test"}
        assert all(m["tls"] for m in sink.messages)
        log = maillog(node)
        assert "MTA-STS testing policy of tst.test: the certificate" in log
        assert "(MTA-STS enforce policy of ok.test)" in log
        assert "(smtp-tls.conf policy may for override.test)" in log
        # The override needed no policy; the others were fetched and kept.
        cache = node.home / "db" / "mta-sts"
        assert (cache / "ok.test").exists()
        assert not (cache / "override.test").exists()
        assert "mode: enforce" in (cache / "enf.test").read_text()

        reports = json.loads(node.zmailer("tlsrpt").stdout)
        by_domain = {r["policies"][0]["policy"]["policy-domain"]: r
                     for r in reports}
        tst = by_domain["tst.test"]["policies"][0]
        assert tst["policy"]["policy-type"] == "sts"
        assert "mode: testing" in tst["policy"]["policy-string"]
        assert tst["summary"]["total-failure-session-count"] >= 1
        assert tst["failure-details"][0]["result-type"] == \
            "certificate-host-mismatch"
        ok = by_domain["ok.test"]["policies"][0]
        assert ok["summary"]["total-successful-session-count"] >= 1
        assert ok["summary"]["total-failure-session-count"] == 0
        one = json.loads(node.zmailer("tlsrpt", "--domain", "enf.test").stdout)
        assert one["policies"][0]["summary"][
            "total-failure-session-count"] >= 1


def test_mta_sts_fetch_failure_means_no_policy(node_factory, dnsmasq,
                                               tmp_path):
    # The policy host's certificate is from another CA: the fetch fails,
    # there is no cached policy, the domain gets the default (delivered)
    # and the failure is recorded as sts-policy-fetch-error.
    ca = LocalCa(tmp_path / "ca")
    other = LocalCa(tmp_path / "other", name="another CA")
    web_crt, web_key = other.issue("web", ["mta-sts.fail.test"])
    server = PolicyServer(web_crt, web_key,
                          sts_policy("enforce", "nothing.invalid"))
    with server, Sink() as sink:
        dns = dnsmasq([mx("fail.test", "mx.fail.test", 10),
                       host("mx.fail.test", "127.0.0.1"),
                       host("mta-sts.fail.test", "127.0.0.1"),
                       txt("_mta-sts.fail.test", "v=STSv1; id=1")])

        def setup(node):
            dns.configure(node)
            set_smtp_command(node, f"smtp -p {sink.port} -T 5")
            (node.etc / "smtp-tls.conf").write_text(
                f"mta-sts-ca={ca.cert}\nmta-sts-port={server.port}\n")
        node = node_factory(setup=setup)
        node.sendmail("-f", "alice@localhost", "u@fail.test", message=MSG)
        sink.wait_messages(1)
        wait_for(lambda: result_line(node, "u@fail.test"), 60,
                 what="a result")
        assert "status=sent" in result_line(node, "u@fail.test")
        assert "MTA-STS policy of fail.test not fetched" in maillog(node)
        assert server.requests == 0
        rep = json.loads(node.zmailer("tlsrpt", "--domain",
                                      "fail.test").stdout)
        results = [d["result-type"] for p in rep["policies"]
                   for d in p.get("failure-details", [])]
        assert "sts-policy-fetch-error" in results


def test_mta_sts_policy_refreshed_in_the_background(node_factory, dnsmasq,
                                                    tmp_path):
    """A cached policy is fetched again when the `_mta-sts` id changes or
    it has lived half its max_age (RFC 8461 section 10.2), in the
    background: a delivery meanwhile goes by the cached policy and does
    not wait for the policy host, here held until the test lets it go."""
    ca = LocalCa(tmp_path / "ca")
    web_crt, web_key = ca.issue("web", ["mta-sts.ref.test"])
    mx_crt, mx_key = ca.issue("mx", ["mx.ref.test"])
    server = PolicyServer(web_crt, web_key,
                          sts_policy("enforce", "mx.ref.test"))
    with server, Sink(tls=(mx_crt, mx_key)) as sink:
        # sep.test (no policy, the same sink) comes between two messages
        # to ref.test, so that each opens a connection of its own (an
        # open one is reused, with the policy it was opened under).
        base = [mx("ref.test", "mx.ref.test", 10),
                host("mx.ref.test", "127.0.0.1"),
                host("mta-sts.ref.test", "127.0.0.1"),
                mx("sep.test", "mx.sep.test", 10),
                host("mx.sep.test", "127.0.0.1")]
        # TTL 0: the agent sees each new id at once.
        dns = dnsmasq(base + [txt("_mta-sts.ref.test", "v=STSv1; id=1")],
                      ttl=0)

        def setup(node):
            dns.configure(node)
            set_smtp_command(node, f"smtp -p {sink.port} -T 5")
            (node.etc / "smtp-tls.conf").write_text(
                f"mta-sts-ca={ca.cert}\nmta-sts-port={server.port}\n"
                "mta-sts-timeout=60\n")
        node = node_factory(setup=setup)
        cache = node.home / "db" / "mta-sts" / "ref.test"

        def deliver(n):
            for rcpt in (f"u{n}@ref.test", f"u{n}@sep.test"):
                proc = node.sendmail("-f", "alice@localhost", rcpt,
                                     message=MSG)
                assert proc.returncode == 0, proc.output
                wait_for(lambda: result_line(node, rcpt), 90,
                         what="a result")
                assert "status=sent" in result_line(node, rcpt)
            sink.wait_messages(2 * n)

        def enforced():
            return maillog(node).count("(MTA-STS enforce policy of ref.test)")

        # No cached policy: fetched before the delivery.
        deliver(1)
        assert server.requests == 1
        assert cache.read_text().startswith("1 ")
        assert enforced() == 1

        # A new id while the policy host hangs: delivered by the cached
        # (enforce) policy; the new one (testing) arrives afterwards.
        server.policy = sts_policy("testing", "mx.ref.test")
        server.gate.clear()
        dns.restart(records=base + [txt("_mta-sts.ref.test",
                                        "v=STSv1; id=2")])
        deliver(2)
        assert enforced() == 2
        wait_for(lambda: server.requests == 2, 60, what="the refresh fetch")
        assert cache.read_text().startswith("1 ")
        server.gate.set()
        wait_for(lambda: cache.read_text().startswith("2 "), 90,
                 what="the refreshed policy in the cache")
        assert "mode: testing" in cache.read_text()
        assert "MTA-STS policy of ref.test refreshed: mode testing, id 2" \
            in maillog(node)

        # The same id, but the cached policy has lived more than half its
        # max_age (86400 s): fetched again, the cache's time renewed.
        first, rest = cache.read_text().split("\n", 1)
        old = int(first.split()[1]) - 50000
        cache.write_text(f"2 {old}\n{rest}")
        deliver(3)
        assert "(MTA-STS testing policy of ref.test)" in maillog(node)
        wait_for(lambda: server.requests == 3, 60, what="the refresh fetch")
        wait_for(lambda: int(cache.read_text().split()[1]) > old + 40000, 90,
                 what="the renewed cache entry")


def test_tls_reports_are_mailed_to_the_rua_address(node_factory, dnsmasq,
                                                   tmp_path):
    """`zmailer tlsrpt --send` mails a day's report of each policy domain to
    the mailto: rua of its `_smtp._tls` record (RFC 8460 section 5.3):
    multipart/report, the JSON gzipped as application/tlsrpt+gzip."""
    ca = LocalCa(tmp_path / "ca")
    mx_crt, mx_key = ca.issue("mx", ["mx.rpt.test"])
    with Sink(tls=(mx_crt, mx_key)) as sink:
        dns = dnsmasq([
            mx("rpt.test", "mx.rpt.test", 10), host("mx.rpt.test", "127.0.0.1"),
            txt("_smtp._tls.rpt.test",
                "v=TLSRPTv1; rua=mailto:tls-reports@reports.test,"
                "https://reports.test/tlsrpt"),
            mx("reports.test", "mx.reports.test", 10),
            host("mx.reports.test", "127.0.0.1")])

        def setup(node):
            dns.configure(node)
            set_smtp_command(node, f"smtp -p {sink.port} -T 5")
        node = node_factory(setup=setup)
        proc = node.sendmail("-f", "alice@localhost", "u@rpt.test",
                             message=MSG)
        assert proc.returncode == 0, proc.output
        sink.wait_messages(1)
        wait_for(lambda: result_line(node, "u@rpt.test"), 60, what="a result")

        day = time.strftime("%Y-%m-%d", time.gmtime())
        out = node.zmailer("tlsrpt", "--send", "--day", day)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "rpt.test: report sent to tls-reports@reports.test" \
            in out.stdout, out.stdout
        assert "https://reports.test/tlsrpt: not sent (only mailto:" \
            in out.stdout, out.stdout
        sink.wait_messages(2)
        rep = next(m for m in sink.messages
                   if m["to"] == ["tls-reports@reports.test"])
        assert rep["from"] in ("", "<>"), rep["from"]
        msg = email.message_from_bytes(rep["data"])
        assert msg["Subject"].startswith("Report Domain: rpt.test Submitter: ")
        assert "Report-ID: <" in msg["Subject"]
        assert msg["TLS-Report-Domain"] == "rpt.test"
        assert msg.get_content_type() == "multipart/report"
        assert msg.get_param("report-type") == "tlsrpt"
        part = next(p for p in msg.walk()
                    if p.get_content_type() == "application/tlsrpt+gzip")
        # Section 5.1: submitter!policy-domain!begin!end.json.gz
        parts = part.get_filename().split("!")
        assert len(parts) == 4 and parts[1] == "rpt.test", parts
        assert parts[2].isdigit() and parts[3].endswith(".json.gz"), parts
        assert int(parts[3].split(".")[0]) - int(parts[2]) == 86399, parts
        report = json.loads(gzip.decompress(part.get_payload(decode=True)))
        policy = report["policies"][0]
        assert policy["policy"]["policy-domain"] == "rpt.test"
        assert policy["policy"]["policy-type"] == "no-policy-found"
        assert policy["summary"]["total-successful-session-count"] >= 1
