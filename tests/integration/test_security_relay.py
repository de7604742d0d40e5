"""No open relay: every trick for getting mail to another domain through
the node, from an untrusted address, is refused at RCPT; nmap's
smtp-open-relay script (16 tests of its own) finds no relay either.

The policy makes all of 127.0.0.0/8 a stranger except 127.0.0.9 (the
trusted control: the same tricks there are relayed, which shows the
battery would see a relay if there were one).

max-error-recipients is raised so that the whole battery runs in one
session (by default the third refused recipient ends it).
"""

import shutil
import subprocess

import pytest

from conftest import COMMAND_TIMEOUT
from reliability_util import smtp
from smtpserver_util import command, set_params

POLICY = """\
_full_rights    relaycustnet + fulltrustnet +
[127.0.0.0]/8   relaycustnet -
[127.0.0.9]/32  = _full_rights
partner.example relaytarget +
"""

# Each is a way to name a mailbox at elsewhere.example (or an address
# literal) while looking local, looking like a relay target, or hiding
# the real destination from a naive parser.
TRICKS = [
    "victim@elsewhere.example",
    "VICTIM@ELSEWHERE.EXAMPLE",
    "victim@elsewhere.example.",
    "victim%elsewhere.example@localhost",
    "victim%elsewhere.example@LOCALHOST",
    "victim%elsewhere.example@localhost.",
    "victim%elsewhere.example@[127.0.0.1]",
    "victim%elsewhere.example",
    "elsewhere.example!victim@localhost",
    "elsewhere.example!victim",
    "localhost!elsewhere.example!victim",
    '"victim@elsewhere.example"@localhost',
    '"victim%elsewhere.example"@localhost',
    '"victim@elsewhere.example"',
    "@localhost:victim@elsewhere.example",
    "@localhost,@partner.example:victim@elsewhere.example",
    "victim@[192.0.2.1]",
    "victim@[IPv6:2001:db8::1]",
    "victim@localhost.elsewhere.example",
    "victim@partner.example.elsewhere.example",
    "victim@notpartner.example",
    "victim@elsewhere.example@localhost",
    "victim@localhost@elsewhere.example",
]


def setup_policy(node):
    (node.etc / "smtp-policy.src").write_text(POLICY)
    # The whole battery in one session: the policy would otherwise close
    # it after 3 refused recipients (a harvesting defence).
    set_params(node, max_error_recipients=1000)


@pytest.fixture
def rnode(node_factory):
    return node_factory(setup=setup_policy)


def rcpt_replies(node, source):
    out = {}
    with smtp(node, source=source) as s:
        assert command(s, "EHLO client.example").startswith("250")
        for address in TRICKS:
            assert command(s, "RSET").startswith("250")
            reply = command(s, "MAIL FROM:<someone@example.com>")
            assert reply.startswith("250"), reply
            out[address] = command(s, f"RCPT TO:<{address}>")
        # Our own domain and the relay target are open to anyone.
        for ok in ("root@localhost", "anyone@partner.example"):
            command(s, "RSET")
            command(s, "MAIL FROM:<someone@example.com>")
            out[ok] = command(s, f"RCPT TO:<{ok}>")
    return out


def test_relay_tricks_from_an_untrusted_address_are_refused(rnode):
    replies = rcpt_replies(rnode, "127.0.0.2")
    accepted = {a: r for a, r in replies.items()
                if a in TRICKS and not r.startswith("5")}
    assert not accepted, accepted
    for address in ("victim@elsewhere.example", "victim@[192.0.2.1]"):
        assert replies[address].startswith("554 5.7.1"), replies[address]
    assert replies["root@localhost"].startswith("250")
    assert replies["anyone@partner.example"].startswith("250")


def test_the_battery_sees_a_relay_where_there_is_one(rnode):
    # The trusted control address may relay: the same RCPTs are accepted.
    replies = rcpt_replies(rnode, "127.0.0.9")
    assert replies["victim@elsewhere.example"].startswith("250")
    assert replies["victim@[192.0.2.1]"].startswith("250")


def nmap_open_relay(node, source):
    proc = subprocess.run(
        ["nmap", "-Pn", "-n", "-S", source, "-e", "lo",
         "-p", str(node.smtp_port), "--script", "+smtp-open-relay",
         "--script-args", "smtp-open-relay.domain=nmap.example,"
         "smtp-open-relay.to=relaytest,smtp-open-relay.from=antispam",
         "127.0.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        timeout=COMMAND_TIMEOUT)
    out = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, out
    assert "smtp-open-relay" in out, out
    return out


@pytest.mark.skipif(not shutil.which("nmap"), reason="nmap not installed")
def test_nmap_smtp_open_relay_finds_no_relay(rnode):
    out = nmap_open_relay(rnode, "127.0.0.2")
    print(out)
    assert "doesn't seem to be an open relay" in out, out
    assert "is an open relay" not in out.replace("doesn't", ""), out
    # The control: from the trusted address, nmap does see a relay (so
    # the script really talked to the node and checks what we think).
    control = nmap_open_relay(rnode, "127.0.0.9")
    print(control)
    assert "Server is an open relay" in control, control
