"""MTA-STS (RFC 8461) in the smtp agent: policies served over HTTPS by a
test server with a test CA, `_mta-sts` TXT records and MX records from a
dnsmasq, and one sink whose certificate (same CA) names only
mx.ok.test. enforce with a wrong certificate or an unlisted MX defers
saying which policy decided; testing delivers and records the failure;
a matching certificate delivers; an explicit smtp-tls.conf rule
overrides the policy; the policy is cached on disk."""

import json

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
