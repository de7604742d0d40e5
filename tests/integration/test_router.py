"""The router with a real DNS server (dnsmasq on loopback).

Every routing rule is checked through `zmailer route` (the explanation a
user sees) and, where it matters, through real mail: lists with owners,
alias loops, .forward on and off, null MX and NXDOMAIN bounces, hold on
SERVFAIL, hot reload of relations while mail flows.
"""

import re

from conftest import wait_for
from dns_util import dnsmasq, host, mx, null_mx  # noqa: F401

RECORDS = [
    mx("mx.test", "mail.mx.test", 10),
    host("mail.mx.test", "127.0.0.1"),
    host("aonly.test", "127.0.0.1"),
    null_mx("nullmx.test"),
]


def append(node, name, text):
    with open(node.etc / name, "a") as f:
        f.write("\n" + text + "\n")


def newdb(node):
    proc = node.zmailer("newdb")
    assert proc.returncode == 0, proc.output


def users(node, *names):
    for n in names:
        (node.mail / n).touch()


def make(node_factory, dns, aliases="", routes="", router_conf="",
         start=True):
    def setup(node):
        dns.configure(node)
        users(node, "alice", "bob", "carol", "dora", "erin")
        if aliases:
            append(node, "aliases", aliases)
        if routes:
            append(node, "routes", routes)
        if router_conf:
            append(node, "router.conf", router_conf)
        newdb(node)
    return node_factory(start=start, setup=setup)


def route(node, address):
    return node.zmailer("route", address)


def test_route_explains_each_rule(node_factory, dnsmasq):
    dns = dnsmasq(RECORDS, failing=["broken.test"])
    node = make(node_factory, dns, start=False,
                aliases="team: alice, bob\nchain1: chain2\nchain2: carol",
                routes="relay.test smtp![127.0.0.1]\n"
                       ".sub.test smtpx!gw.sub.test\n"
                       "etrn.test smtp-etrn!customer.etrn.test\n"
                       "closed.test error!nouser\n"
                       "moved.test error!moved domain moved away\n"
                       "inside.test local")
    p = route(node, "chain1@localhost")
    assert p.returncode == 0, p.output
    assert "aliases: chain1 -> chain2" in p.stdout, p.stdout
    assert "aliases: chain2 -> carol" in p.stdout, p.stdout
    assert re.search(r"routes:\n\s+local carol carol", p.stdout), p.stdout

    p = route(node, "x@relay.test")
    assert "routesdb: relay.test -> smtp![127.0.0.1]" in p.stdout, p.stdout
    assert "smtp [127.0.0.1] x@relay.test" in p.stdout, p.stdout
    p = route(node, "x@a.b.sub.test")
    assert "routesdb: .sub.test -> smtpx!gw.sub.test" in p.stdout, p.stdout
    assert "smtpx gw.sub.test x@a.b.sub.test" in p.stdout, p.stdout
    p = route(node, "x@etrn.test")
    assert "smtp-etrn customer.etrn.test x@etrn.test" in p.stdout, p.stdout
    p = route(node, "x@closed.test")
    assert p.returncode == 67, p.output
    assert 'error nouser x@closed.test diag="user unknown"' in p.stdout
    p = route(node, "x@moved.test")
    assert 'error moved x@moved.test diag="domain moved away"' in p.stdout
    p = route(node, "dora@inside.test")
    assert "local dora dora" in p.stdout, p.stdout

    # DNS: MX, A only, null MX, NXDOMAIN, SERVFAIL.
    p = route(node, "u@mx.test")
    assert p.returncode == 0, p.output
    assert "dns: mx.test MX 10 mail.mx.test" in p.stdout, p.stdout
    assert "smtp mx.test u@mx.test" in p.stdout, p.stdout
    p = route(node, "u@aonly.test")
    assert "no MX, A 127.0.0.1" in p.stdout, p.stdout
    assert "smtp aonly.test u@aonly.test" in p.stdout, p.stdout
    p = route(node, "u@nullmx.test")
    assert p.returncode == 67, p.output
    assert "error nullmx u@nullmx.test" in p.stdout, p.stdout
    p = route(node, "u@nosuch.test")
    assert "error nodomain u@nosuch.test" in p.stdout, p.stdout
    p = route(node, "u@x.broken.test")
    assert p.returncode == 75, p.output
    assert "hold dns:x.broken.test u@x.broken.test" in p.stdout, p.stdout

    # Unknown local user, pipes from outside, %-hack and !-paths.
    p = route(node, "ghost@localhost")
    assert 'error nouser ghost@localhost diag="user unknown"' in p.stdout
    p = route(node, '"|/bin/sh"@localhost')
    assert "error refused" in p.stdout, p.stdout
    p = route(node, "bob%mx.test@localhost")
    assert "error nouser" in p.stdout, p.stdout
    p = route(node, "mx.test!bob@localhost")
    assert "error nouser" in p.stdout, p.stdout
    # Source routes are ignored unless allowsourceroute.
    p = route(node, "<@hop.test:bob@localhost>")
    assert "source route: @hop.test: ignored" in p.stdout, p.stdout
    assert "local bob bob" in p.stdout, p.stdout
    append(node, "router.conf", "allowsourceroute yes")
    p = route(node, "<@hop.test:bob@localhost>")
    assert "smtp hop.test @hop.test:bob@localhost" in p.stdout, p.stdout

    p = node.zmailer("route")
    assert p.returncode == 64, p.output


def test_bad_router_conf_is_file_line(node_factory, dnsmasq):
    dns = dnsmasq(RECORDS)
    node = make(node_factory, dns, start=False, router_conf="forward maybe")
    p = route(node, "root")
    assert p.returncode == 78, p.output
    assert re.search(r"router\.conf:\d+: bad value 'maybe' for forward",
                     p.stderr), p.stderr


def test_list_owner_gets_the_bounces(node_factory, dnsmasq):
    dns = dnsmasq(RECORDS)
    node = make(node_factory, dns,
                aliases="team: alice, ghost\nowner-team: carol")
    p = route(node, "team@localhost")
    assert "owner: envelope sender becomes <owner-team@" in p.stdout, p.stdout
    proc = node.sendmail("-f", "bob@localhost", "team@localhost",
                         message="Subject: list-token\n\nto the list\n")
    assert proc.returncode == 0, proc.output
    node.wait_mbox_message("alice", "list-token")
    # The bounce for ghost goes to the list owner, not to bob.
    dsn = node.wait_mbox_message("carol", "ghost")
    assert "list-token" in dsn
    node.wait_log(r"replaced by list owner <owner-team@")
    wait_for(node.queue_empty, what="queue empty")
    assert "ghost" not in node.mbox("bob")


def test_two_lists_and_a_person_each_bounce_to_their_own(node_factory,
                                                         dnsmasq):
    """One message to two lists (different owners) and a person: each
    list's bounce goes to its owner, the poster's to the poster, and every
    member gets the message exactly once."""
    dns = dnsmasq(RECORDS)
    node = make(node_factory, dns,
                aliases="team: alice, ghost\nowner-team: carol\n"
                        "crew: dora, phantom\nowner-crew: erin")
    proc = node.sendmail("-f", "bob@localhost", "team@localhost",
                         "crew@localhost", "nobody-at-all@localhost",
                         message="Subject: split-token\n\nto both lists\n")
    assert proc.returncode == 0, proc.output
    node.wait_mbox_message("alice", "split-token")
    node.wait_mbox_message("dora", "split-token")
    carol = node.wait_mbox_message("carol", "ghost")
    erin = node.wait_mbox_message("erin", "phantom")
    bob = node.wait_mbox_message("bob", "nobody-at-all")
    assert "split-token" in carol and "split-token" in erin
    assert "phantom" not in carol and "ghost" not in erin
    wait_for(node.queue_empty, what="queue empty")
    assert "ghost" not in bob and "phantom" not in bob
    assert len(node.mbox_messages("alice")) == 1
    assert len(node.mbox_messages("dora")) == 1
    node.wait_log(r"to=<crew@localhost>: list owner <owner-crew@\S+> "
                  r"differs from this message's sender")


def test_alias_loop_bounces_with_the_chain(node_factory, dnsmasq):
    dns = dnsmasq(RECORDS)
    node = make(node_factory, dns, aliases="loopa: loopb\nloopb: loopa")
    p = route(node, "loopa@localhost")
    assert re.search(r'error loop loopa diag="alias loop \(loopa -> loopb '
                     r'-> loopa\)"', p.stdout), p.stdout
    proc = node.sendmail("-f", "bob@localhost", "loopa@localhost",
                         message="Subject: loop-token\n\nround\n")
    assert proc.returncode == 0, proc.output
    dsn = node.wait_mbox_message("bob", "loop-token")
    assert "loopa -> loopb -> loopa" in dsn, dsn


def test_forward_off_and_on(node_factory, dnsmasq):
    dns = dnsmasq(RECORDS)
    node = make(node_factory, dns,
                router_conf="forward-file $MAILHOME/forward/%u")
    fwd = node.home / "forward"
    fwd.mkdir()
    (fwd / "dora").write_text("erin\n")
    # Off by default: dora gets her mail.
    node.sendmail("dora@localhost", message="Subject: fwd-off\n\nx\n")
    node.wait_mbox_message("dora", "fwd-off")
    # On: the router follows the file (after a reload).
    append(node, "router.conf", "forward yes")
    p = route(node, "dora@localhost")
    assert ".forward: " in p.stdout and "local erin erin" in p.stdout, p.stdout
    assert node.zmailer("reload").returncode == 0
    node.wait_log(r"configuration and relations reloaded")
    node.sendmail("dora@localhost", message="Subject: fwd-on\n\nx\n")
    node.wait_mbox_message("erin", "fwd-on")
    assert "fwd-on" not in node.mbox("dora")


def test_null_mx_and_nxdomain_bounce(node_factory, dnsmasq):
    dns = dnsmasq(RECORDS)
    node = make(node_factory, dns)
    node.sendmail("-f", "bob@localhost", "u@nullmx.test", "v@nosuch.test",
                  message="Subject: nomx-token\n\nx\n")
    dsn = node.wait_mbox_message("bob", "nomx-token")
    wait_for(lambda: "nosuch.test" in node.mbox("bob") and
             "null MX" in node.mbox("bob"), what="both failures reported")
    assert "u@nullmx.test" in node.mbox("bob"), dsn


def test_servfail_holds_the_recipient(node_factory, dnsmasq):
    dns = dnsmasq(RECORDS, failing=["later.test"])
    node = make(node_factory, dns)
    node.sendmail("-f", "bob@localhost", "u@later.test",
                  message="Subject: hold-token\n\nx\n")
    m = node.wait_log(r"(\S+): to=<u@later\.test>, orig_to=<u@later\.test>: "
                      r"held \(dns:later\.test\)")
    qid = m.group(1)
    # The control file says why: channel hold, host dns:<domain>, diag.
    ctl = node.spool / "transport" / qid
    if ctl.exists():
        text = ctl.read_text()
        assert re.search(r"^r 0 hold dns:later\.test u@later\.test ", text,
                         re.M), text
        assert "diag=" in text, text
    assert "hold-token" not in node.mbox("bob")  # not bounced


def test_hot_reload_while_mail_flows(node_factory, dnsmasq):
    dns = dnsmasq(RECORDS)
    node = make(node_factory, dns, aliases="flow: alice")
    for i in range(10):
        node.sendmail("flow@localhost",
                      message=f"Subject: flow-a-{i}\n\nx\n")
        if i == 4:
            text = (node.etc / "aliases").read_text().replace(
                "flow: alice", "flow: bob")
            (node.etc / "aliases").write_text(text)
            newdb(node)
    for i in range(5):
        node.wait_mbox_message("alice", f"flow-a-{i}")
    wait_for(lambda: all(f"flow-a-{i}" in node.mbox("alice") +
                         node.mbox("bob") for i in range(10)),
             what="every message delivered")
    # After the swap the router uses the new database without a restart.
    node.sendmail("flow@localhost", message="Subject: flow-late\n\nx\n")
    node.wait_mbox_message("bob", "flow-late")
    wait_for(node.queue_empty, what="queue empty")
