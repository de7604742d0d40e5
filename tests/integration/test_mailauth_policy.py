"""smtp-policy acting on SPF, DKIM and DMARC results, DMARC pct= sampling
and the organizational-domain fallback, through a running node with the
records served by a dnsmasq the test starts.

As in test_mailauth.py the inbound tests run in a network namespace the
test creates, where the node is 192.0.2.25 and the clients 192.0.2.10
(default treatment), 192.0.2.11 (a policy that freezes and tags instead
of refusing) and 192.0.2.12 (`mailauth -`: exempt).
"""

import os

import pytest

from dns_util import dnsmasq, txt  # noqa: F401
from test_mailauth import (CLIENT_IP, SERVER_IP, delivered, header,
                           message, run_suite_in_netns, send, setup_node,
                           sign_inbound, world)  # noqa: F401

IN_NETNS = os.environ.get("ZM_MAILAUTH_NETNS") == "1"
LENIENT_IP = "192.0.2.11"
EXEMPT_IP = "192.0.2.12"
needs_netns = pytest.mark.skipif(
    not IN_NETNS, reason="runs inside test_policy_suite_in_a_network_namespace")

POLICY_RULES = f"""\
[{LENIENT_IP}]/32  spf-fail freeze  dkim-none tag  dmarc-reject freeze
[{EXEMPT_IP}]/32   mailauth -
watch.test        dmarc-none reject
"""


def test_policy_suite_in_a_network_namespace():
    run_suite_in_netns(__file__, "policy",
                       (SERVER_IP, CLIENT_IP, LENIENT_IP, EXEMPT_IP))


@pytest.fixture
def policy_node(node_factory, world):  # noqa: F811
    world.add(txt("good.test", f"v=spf1 ip4:{CLIENT_IP} -all"),
              txt("_dmarc.good.test", "v=DMARC1; p=reject"),
              txt("relay.test", "v=spf1 ip4:192.0.2.0/24 -all"),
              txt("spffail.test", "v=spf1 ip4:192.0.2.1 -all"),
              txt("_dmarc.watch.test", "v=DMARC1; p=none"),
              # The organizational domain's record serves its subdomains,
              # with sp=.
              txt("_dmarc.org.test", "v=DMARC1; p=reject; sp=quarantine"),
              txt("_dmarc.pct0.test", "v=DMARC1; p=reject; pct=0"),
              txt("_dmarc.pctq.test", "v=DMARC1; p=quarantine; pct=0"),
              txt("_dmarc.pct100.test", "v=DMARC1; p=reject; pct=100"))

    def setup(node):
        setup_node(world, node, sign=False)
        src = node.etc / "smtp-policy.src"
        src.write_text(src.read_text() + POLICY_RULES)
    return node_factory(setup=setup)


def frozen_as(node, cause):
    return [n for n in node.spool_files("freezer") if n.endswith("." + cause)]


@needs_netns
def test_policy_spf_fail_freezes_instead_of_refusing(policy_node):
    # The default client is refused at MAIL (spf-threshold fail) ...
    stage, code, text = send(policy_node, "x@spffail.test",
                             message("x@spffail.test", "spf default"))
    assert (stage, code) == ("mail", 550), text
    # ... this one's policy says freeze: accepted, and held.
    stage, code, text = send(policy_node, "x@spffail.test",
                             message("x@spffail.test", "spf frozen"),
                             source=LENIENT_IP)
    assert (stage, code) == ("data", 250), text
    policy_node.wait_log(
        rf"frozen: spf: spf-fail freeze \(\[{LENIENT_IP}\]/32\)")
    assert frozen_as(policy_node, "spf")


@needs_netns
def test_policy_dkim_none_tags(policy_node):
    stage, code, text = send(policy_node, "bob@relay.test",
                             message("bob@relay.test", "unsigned tagged"),
                             source=LENIENT_IP)
    assert (stage, code) == ("data", 250), text
    m = delivered(policy_node, "unsigned tagged")
    warn = header(m, "X-Authentication-Warning")
    assert warn is not None and "dkim=none" in warn, m
    assert "spf=pass" in header(m, "Authentication-Results")
    # Without the attribute: no tag.
    stage, code, text = send(policy_node, "bob@relay.test",
                             message("bob@relay.test", "unsigned plain"))
    assert (stage, code) == ("data", 250), text
    m = delivered(policy_node, "unsigned plain")
    assert header(m, "X-Authentication-Warning") is None, m


@needs_netns
def test_policy_dmarc_reject_overridden_to_freeze(policy_node, world):  # noqa: F811
    msg = sign_inbound(world, message("alice@good.test", "forged"))
    msg = msg.replace(b"this is a test.", b"this is a forgery.")
    stage, code, text = send(policy_node, "bounce@relay.test", msg,
                             source=LENIENT_IP)
    assert (stage, code) == ("data", 250), text
    policy_node.wait_log(r"frozen: dmarc: dmarc-reject freeze")
    assert frozen_as(policy_node, "dmarc")


@needs_netns
def test_policy_sender_key_makes_dmarc_none_refuse(policy_node):
    stage, code, text = send(policy_node, "news@watch.test",
                             message("news@watch.test", "watched"))
    assert (stage, code) == ("data", 550), text
    assert "5.7.1" in text and "watch.test" in text, text
    policy_node.wait_log(r"rejected: dmarc-none reject \(watch.test\)")


@needs_netns
def test_policy_exempt_client_is_not_checked(policy_node):
    stage, code, text = send(policy_node, "x@spffail.test",
                             message("x@spffail.test", "exempt"),
                             source=EXEMPT_IP)
    assert (stage, code) == ("data", 250), text
    m = delivered(policy_node, "exempt")
    assert header(m, "Authentication-Results") is None, m


@needs_netns
def test_policy_dmarc_subdomain_uses_the_organizational_record(policy_node):
    # No _dmarc.news.sub.org.test nor _dmarc.sub.org.test: org.test's
    # record, whose sp=quarantine applies to subdomains.
    stage, code, text = send(policy_node, "bounce@relay.test",
                             message("x@news.sub.org.test", "subdomain"))
    assert (stage, code) == ("data", 250), text
    policy_node.wait_log(
        r"dmarc=fail\(p=quarantine\):news.sub.org.test: dmarc: DMARC "
        r"quarantine policy of news.sub.org.test")
    assert frozen_as(policy_node, "dmarc")


@needs_netns
def test_policy_dmarc_pct_sampling(policy_node):
    # pct=100: every failing message gets p=reject.
    stage, code, text = send(policy_node, "bounce@relay.test",
                             message("x@pct100.test", "pct all"))
    assert (stage, code) == ("data", 550), text
    # pct=0: none is in the sample; reject is applied as quarantine.
    stage, code, text = send(policy_node, "bounce@relay.test",
                             message("x@pct0.test", "pct none reject"))
    assert (stage, code) == ("data", 250), text
    policy_node.wait_log(r"dmarc=fail\(p=reject pct=0->quarantine\)")
    # ... and quarantine as none: delivered, the header says why.
    stage, code, text = send(policy_node, "bounce@relay.test",
                             message("x@pctq.test", "pct none quarantine"))
    assert (stage, code) == ("data", 250), text
    m = delivered(policy_node, "pct none quarantine")
    ar = header(m, "Authentication-Results")
    assert "p=quarantine pct=0, not sampled" in ar, ar
    assert "policy.dmarc=none" in ar, ar
