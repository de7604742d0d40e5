"""SPF, DKIM and DMARC through a running node, with real keys and records
served by a dnsmasq the test starts.

The policy trusts 127.0.0.1 (it relays, and its mail is DKIM-signed),
while other clients are strangers whose mail is checked. libspf2 passes
every loopback client ("localhost is always allowed"), so the inbound
tests run in a network namespace the test creates (`unshare --net`), where
192.0.2.25 (the node) and 192.0.2.10 (the client) are on its own lo:
test_inbound_suite_in_a_network_namespace runs them there. good.test
publishes an SPF record for 192.0.2.10, a DKIM key and `p=reject`; the
other domains each show one treatment.

Outbound signatures are checked with dkimpy (Debian's python3-dkim), an
implementation independent of libopendkim; inbound test messages are
signed with dkimpy too.
"""

import os
import re
import shutil
import smtplib
import subprocess
import sys

import dkim
import pytest

from dns_util import dnsmasq, txt  # noqa: F401

POLICY = """\
_full_rights    relaycustnet + fulltrustnet +
[127.0.0.1]/32  = _full_rights
[127.0.0.0]/8   relaycustnet -
[192.0.2.0]/24  relaycustnet -
"""

IN_NETNS = os.environ.get("ZM_MAILAUTH_NETNS") == "1"
SERVER_IP = "192.0.2.25"
CLIENT_IP = "192.0.2.10"
needs_netns = pytest.mark.skipif(
    not IN_NETNS, reason="runs inside test_inbound_suite_in_a_network_namespace")

PARAMS = [
    "PARAM spf-threshold fail",
    "PARAM spf-received",
    "PARAM dkim-verify",
    "PARAM dmarc",
]


def long_txt(name, text):
    """A TXT record of several character-strings (DKIM keys pass 255)."""
    parts = [text[i:i + 250] for i in range(0, len(text), 250)]
    return f"txt-record={name}," + ",".join(f'"{p}"' for p in parts)


def keygen(node, domain, selector, *args):
    """`zmailer dkim keygen`: (key file path, TXT record text)."""
    proc = node.zmailer("dkim", "keygen", domain, selector, *args)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.decode() if isinstance(proc.stdout, bytes) else proc.stdout
    key = re.search(r"^; the key: (\S+)$", out, re.M).group(1)
    zone = re.search(r"^(\S+)\. IN TXT \((.*)\)$", out, re.M)
    assert zone.group(1) == f"{selector}._domainkey.{domain}", out
    record = "".join(re.findall(r'"([^"]*)"', zone.group(2)))
    line = re.search(rf"^{re.escape(domain)} {selector} \S+ \S+$", out, re.M)
    return key, record, line.group(0)


def traditional_rsa(path):
    """The PKCS#1 form of an RSA key, which every dkimpy version reads."""
    return subprocess.run(
        ["openssl", "rsa", "-in", str(path), "-traditional"],
        capture_output=True, check=True, timeout=30).stdout


def header(msg, name):
    """The unfolded value of the first `name` header of `msg`, or None."""
    want = name.lower() + ":"
    value = None
    for line in msg.split("\n"):
        if line == "":
            break
        if value is not None:
            if line[:1] in (" ", "\t"):
                value += " " + line.strip()
                continue
            break
        if line.lower().startswith(want):
            value = line[len(want):].strip()
    return value


def prepend_params(node, params):
    conf = node.etc / "smtpserver.conf"
    conf.write_text("\n".join(params) + "\n" + conf.read_text())


class World:
    """The DNS data and keys of one test."""

    def __init__(self, dns):
        self.dns = dns
        self.records = []
        self.keys = {}  # selector._domainkey.domain -> TXT

    def add(self, *records):
        self.records += records

    def publish(self):
        self.dns.restart(records=self.records)


@pytest.fixture
def world(dnsmasq):  # noqa: F811
    return World(dnsmasq([]))


def setup_node(world, node, inbound=True, sign=True):
    (node.etc / "smtp-policy.src").write_text(POLICY)
    if inbound:
        prepend_params(node, PARAMS + [f"PARAM BindAddress [{SERVER_IP}]"])
    if sign:
        lines = []
        for domain, selector, extra in (("rsa.test", "s1", ()),
                                        ("ed.test", "s2", ("--ed25519",))):
            _, record, line = keygen(node, domain, selector, *extra)
            world.keys[f"{selector}._domainkey.{domain}"] = record
            world.add(long_txt(f"{selector}._domainkey.{domain}", record))
            lines.append(line)
        (node.etc / "dkim-keys").write_text("\n".join(lines) + "\n")
    # An inbound key of good.test, made the same way, used by dkimpy.
    key, record, _ = keygen(node, "good.test", "in")
    world.add(long_txt("in._domainkey.good.test", record))
    world.inbound_key = traditional_rsa(key)
    world.publish()
    world.dns.configure(node)


def message(sender_header, subject, body="Hello,\r\nthis is a test.\r\n"):
    return (f"From: {sender_header}\r\nTo: root@localhost\r\n"
            f"Subject: {subject}\r\nDate: Fri, 21 Nov 2025 10:00:00 +0000\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@test>\r\n\r\n"
            f"{body}").encode()


def sign_inbound(world, msg, domain="good.test"):
    sig = dkim.sign(msg, b"in", domain.encode(), world.inbound_key,
                    canonicalize=(b"relaxed", b"relaxed"),
                    include_headers=[b"from", b"to", b"subject", b"date"])
    return sig + msg


def send(node, mail_from, msg, source=CLIENT_IP, host=SERVER_IP):
    """(stage, code, text): where the transaction stopped and the reply."""
    with smtplib.SMTP(timeout=60, source_address=(source, 0)) as s:
        s.connect(host, node.smtp_port)
        s.ehlo("client.good.test")
        code, text = s.mail(mail_from)
        if code != 250:
            return "mail", code, text.decode(errors="replace")
        code, text = s.rcpt("root@localhost")
        assert code == 250, text
        code, text = s.data(msg)
        return "data", code, text.decode(errors="replace")


def delivered(node, subject):
    node.wait_mbox_message("root", f"Subject: {subject}")
    for m in node.mbox_messages("root"):
        if f"Subject: {subject}" in m:
            return m
    raise AssertionError(subject)


def run_suite_in_netns(test_file, keyword, addresses):
    """Runs the tests of `test_file` selected by `keyword` again inside a
    new network namespace whose loopback carries `addresses`, and fails
    unless they all ran and passed there."""
    if IN_NETNS:
        pytest.skip("already inside the namespace")
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("needs root, unshare and ip for a network namespace")
    addrs = " && ".join(f"ip addr add {ip}/32 dev lo" for ip in addresses)
    script = (f"ip link set lo up && {addrs} && "
              f"exec {sys.executable} -m pytest -q -p no:cacheprovider "
              f"-k '{keyword} and not namespace' {test_file}")
    env = dict(os.environ, ZM_MAILAUTH_NETNS="1")
    proc = subprocess.run(["unshare", "--net", "sh", "-c", script], env=env,
                          capture_output=True, text=True, timeout=900)
    tail = proc.stdout[-6000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, tail


def test_inbound_suite_in_a_network_namespace():
    run_suite_in_netns(__file__, "inbound", (SERVER_IP, CLIENT_IP))


@pytest.fixture
def inbound(node_factory, world):
    world.add(txt("good.test", f"v=spf1 ip4:{CLIENT_IP} -all"),
              txt("_dmarc.good.test", "v=DMARC1; p=reject"),
              txt("relay.test", "v=spf1 ip4:192.0.2.0/24 -all"),
              txt("spffail.test", "v=spf1 ip4:192.0.2.1 -all"),
              txt("_dmarc.quar.test", "v=DMARC1; p=quarantine"),
              txt("_dmarc.watch.test", "v=DMARC1; p=none"))
    return node_factory(setup=lambda n: setup_node(world, n, sign=False))


@needs_netns
def test_inbound_good_message_gets_pass_for_everything(inbound, world):
    msg = sign_inbound(world, message("Alice <alice@good.test>", "good one"))
    stage, code, text = send(inbound, "alice@good.test", msg)
    assert (stage, code) == ("data", 250), text
    m = delivered(inbound, "good one")
    ar = header(m, "Authentication-Results")
    assert ar is not None, m
    assert "spf=pass smtp.mailfrom=alice@good.test" in ar, ar
    assert "dkim=pass header.d=good.test header.s=in" in ar, ar
    assert "dmarc=pass policy.dmarc=reject header.from=good.test" in ar, ar
    assert header(m, "Received-SPF").startswith("pass"), m
    inbound.wait_log(r"mailauth: spf=pass dkim=pass:good.test "
                     r"dmarc=pass\(p=reject\):good.test")


@needs_netns
def test_inbound_spf_fail_is_refused_at_mail(inbound):
    stage, code, text = send(inbound, "x@spffail.test",
                             message("x@spffail.test", "spf fail"))
    assert (stage, code) == ("mail", 550), text
    assert "5.7.23" in text and "SPF" in text, text
    inbound.wait_log(r"from=<x@spffail.test> refused: spf=fail")


@needs_netns
def test_inbound_broken_signature_under_reject_policy_is_refused(inbound, world):
    msg = sign_inbound(world, message("alice@good.test", "broken sig"))
    msg = msg.replace(b"this is a test.", b"this is a forgery.")
    # The envelope passes SPF, but for relay.test: not aligned.
    stage, code, text = send(inbound, "bounce@relay.test", msg)
    assert (stage, code) == ("data", 550), text
    assert "5.7.1" in text and "DMARC" in text and "good.test" in text, text
    inbound.wait_log(r"mailauth: spf=pass dkim=fail:good.test "
                     r"dmarc=fail\(p=reject\):good.test: rejected")


@needs_netns
def test_inbound_quarantine_policy_freezes(inbound):
    stage, code, text = send(inbound, "bounce@relay.test",
                             message("news@quar.test", "quarantined"))
    assert (stage, code) == ("data", 250), text
    inbound.wait_log(r"frozen: dmarc: DMARC quarantine policy of quar.test")
    frozen = inbound.spool_files("freezer")
    assert any(name.endswith(".dmarc") for name in frozen), frozen
    assert not any("Subject: quarantined" in m
                   for m in inbound.mbox_messages("root"))


@needs_netns
def test_inbound_none_policy_is_recorded(inbound):
    stage, code, text = send(inbound, "bounce@relay.test",
                             message("news@watch.test", "watched"))
    assert (stage, code) == ("data", 250), text
    m = delivered(inbound, "watched")
    ar = header(m, "Authentication-Results")
    assert "dkim=none" in ar and "dmarc=fail policy.dmarc=none" in ar, ar


@pytest.fixture
def signer(node_factory, world):
    return node_factory(setup=lambda n: setup_node(world, n, inbound=False))


@pytest.mark.parametrize("domain", ["rsa.test", "ed.test"])
def test_trusted_mail_is_signed_and_verifies_with_dkimpy(signer, world,
                                                         domain):
    subject = f"signed by {domain}"
    stage, code, text = send(signer, f"a@{domain}",
                             message(f"A <a@{domain}>", subject),
                             source="127.0.0.1", host="127.0.0.1")
    assert (stage, code) == ("data", 250), text
    m = delivered(signer, subject)
    assert "DKIM-Signature:" in m, m
    raw = m.replace("\r\n", "\n").replace("\n", "\r\n").encode()

    def dnsfunc(name, timeout=5):
        return world.keys.get(name.decode().rstrip("."), "").encode()

    d = dkim.DKIM(raw)
    assert d.verify(dnsfunc=dnsfunc), (d.domain, m)
    algorithm = b"ed25519-sha256" if domain == "ed.test" else b"rsa-sha256"
    assert d.signature_fields[b"a"] == algorithm
    assert d.signature_fields[b"c"] == b"relaxed/relaxed"
    signer.wait_log(rf"mailauth: signed d={domain}")
    # The signature covers the body: a changed body no longer verifies.
    changed = raw.replace(b"this is a test.", b"this is changed.")
    try:
        still_good = dkim.DKIM(changed).verify(dnsfunc=dnsfunc)
    except dkim.ValidationError:
        still_good = False
    assert not still_good


def test_strangers_mail_is_not_signed(signer):
    stage, code, text = send(signer, "a@rsa.test",
                             message("a@rsa.test", "stranger"),
                             source="127.0.0.2", host="127.0.0.1")
    assert (stage, code) == ("data", 250), text
    assert "DKIM-Signature:" not in delivered(signer, "stranger")


def test_keygen_refuses_to_overwrite(signer):
    proc = signer.zmailer("dkim", "keygen", "rsa.test", "s1")
    assert proc.returncode == 73
    proc = signer.zmailer("dkim", "keygen", "bad domain", "s1")
    assert proc.returncode == 64
    key = signer.etc / "dkim" / "rsa.test.s1.pem"
    assert key.stat().st_mode & 0o777 == 0o600
