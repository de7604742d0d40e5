"""Floods, slow clients and oversized input against a running smtpserver.

- a connection flood from one address past MaxSameIpSource, and from many
  addresses past MaxParallelConnections: the surplus gets `421 4.7.0`,
  sessions already open keep working, another client is served;
- slowloris: a client that trickles a command one byte at a time is cut
  by the idle timeout (it bounds the whole line, not each byte);
- a message over maxsize (`552 5.3.4`) and a recipient list over
  RcptLimitCount (`452 4.5.3`) are refused at their limits, and the
  session goes on;
- memory: the smtpserver's RSS with N sessions held open, printed (the
  figure in docs/reliability.md) and bounded.

Clients use loopback source addresses (127.0.0.x, 127.0.1.x) so that each
flood comes from the addresses it says.
"""

import os
import resource
import socket

import pytest

from conftest import wait_for
from reliability_util import rss_kib, smtp, transaction
from smtpserver_util import (IO_TIMEOUT, client_context, command, read_reply,
                             set_params)

MSG = "From: a@localhost\nSubject: flood test\n\nstill served\n"


def ehlo(s):
    reply = command(s, "EHLO client.example")
    assert reply.startswith("250"), reply


def dial(node, source):
    """A connection from `source` and its first reply (220 or 421)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(IO_TIMEOUT)
    s.bind((source, 0))
    s.connect(("127.0.0.1", node.smtp_port))
    return s, read_reply(s)


def close_all(socks):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


def test_connection_floods_get_421_and_others_are_served(node_factory):
    node = node_factory(setup=lambda n: set_params(
        n, MaxSameIpSource=5, MaxParallelConnections=40))
    held, refused = [], []
    try:
        # One address floods: 5 sessions, the rest 421 4.7.0 and closed.
        for _ in range(60):
            s, reply = dial(node, "127.0.0.2")
            if reply.startswith("220"):
                held.append(s)
            else:
                assert reply.startswith("421 4.7.0"), reply
                assert s.recv(100) == b"", "closed after the 421"
                refused.append(s)
        assert (len(held), len(refused)) == (5, 55)
        close_all(refused)
        refused.clear()

        # Another client is served meanwhile, and so is an open session.
        with smtp(node, source="127.0.0.3") as s:
            ehlo(s)
            reply = transaction(s, "a@localhost", ["root@localhost"], MSG)
            assert reply.startswith("250"), reply
        assert command(held[0], "NOOP").startswith("250")

        # Many addresses flood past MaxParallelConnections (40 in all).
        for i in range(100):
            s, reply = dial(node, f"127.0.1.{i + 1}")
            if reply.startswith("220"):
                held.append(s)
            else:
                assert reply.startswith("421 4.7.0"), reply
                refused.append(s)
        assert len(held) == 40 and len(refused) == 65, (len(held),
                                                        len(refused))
        for s in held[::7]:
            assert command(s, "NOOP").startswith("250")
    finally:
        close_all(held + refused)
    node.wait_log(r"MaxSameIpSource reached")
    node.wait_log(r"MaxParallelConnections reached")

    # Once the flood is gone, a new client is served again (the server
    # counts closed sessions out; wait for that, bounded).
    def served():
        s, reply = dial(node, "127.0.0.4")
        with s:
            if not reply.startswith("220"):
                return False
            ehlo(s)
            return transaction(s, "a@localhost", ["root@localhost"],
                               MSG).startswith("250")
    wait_for(served, timeout=60, interval=0.2, what="a client served")
    node.wait_mbox_message("root", "still served")


def trickle(sock, data, every):
    """Sends `data` one byte every `every` seconds; returns how many bytes
    went out before the server closed or answered."""
    sock.settimeout(every)
    for i, b in enumerate(data):
        try:
            got = sock.recv(4096)
            return i, got  # the server spoke (421) or closed
        except socket.timeout:
            pass
        try:
            sock.sendall(bytes([b]))
        except OSError:
            return i, b""
    return len(data), b""


def test_slowloris_command_is_cut_by_the_idle_timeout(node_factory):
    node = node_factory(setup=lambda n: set_params(n, idle_timeout=3))
    line = b"EHLO a-long-and-slowly-typed-client-name.example\r\n"
    with smtp(node) as s:
        # One byte a second: each byte comes well within the 3 s timeout,
        # the whole line would take 50 s.
        sent, got = trickle(s, line, every=1.0)
        if got == b"":
            s.settimeout(IO_TIMEOUT)
            got = s.recv(4096)
        assert sent < len(line), "the trickled line was never cut"
        assert got.startswith(b"421 4.4.2"), got
    node.wait_log(r"timeout after 3s from unknown\[127\.0\.0\.1\]")


def test_slowloris_does_not_starve_other_clients(node_factory):
    node = node_factory(setup=lambda n: set_params(n, idle_timeout=30))
    slow = []
    try:
        for i in range(8):
            s, reply = dial(node, f"127.0.2.{i + 1}")
            assert reply.startswith("220"), reply
            s.sendall(b"EH")  # and then nothing
            slow.append(s)
        with smtp(node, source="127.0.0.3") as s:
            ehlo(s)
            reply = transaction(s, "a@localhost", ["root@localhost"], MSG)
            assert reply.startswith("250"), reply
    finally:
        close_all(slow)


def test_huge_message_and_recipient_list_refused_at_their_limits(
        node_factory):
    node = node_factory(setup=lambda n: set_params(
        n, maxsize=200000, RcptLimitCount=100))
    with smtp(node) as s:
        ehlo(s)
        # Declared too big: refused at MAIL.
        reply = command(s, "MAIL FROM:<a@localhost> SIZE=200001")
        assert reply.startswith("552 5.3.4"), reply
        # Undeclared, sent anyway: read to the end, then refused.
        big = "Subject: huge\n\n" + ("y" * 99 + "\n") * 3000
        reply = transaction(s, "a@localhost", ["root@localhost"], big)
        assert reply.startswith("552 5.3.4"), reply
        # 100 recipients are taken, the 101st is told to come back later.
        assert command(s, "MAIL FROM:<a@localhost>").startswith("250")
        for i in range(100):
            reply = command(s, "RCPT TO:<root@localhost>")
            assert reply.startswith("250"), (i, reply)
        reply = command(s, "RCPT TO:<root@localhost>")
        assert reply.startswith("452 4.5.3"), reply
        assert command(s, "RSET").startswith("250")
        reply = transaction(s, "a@localhost", ["root@localhost"],
                            "Subject: small\n\nafter the huge ones\n")
        assert reply.startswith("250"), reply
    node.wait_mbox_message("root", "after the huge ones")
    assert "yyyyyyyyyy" not in node.mbox("root")
    assert not node.spool_files("public")


HELD = int(os.environ.get("ZM_RELIABILITY_HELD", "500"))


def test_memory_bounded_under_held_connections(node_factory, monkeypatch):
    # Sanitizer builds: freed memory is not kept in ASan's quarantine, so
    # RSS shows what the sessions hold (redzones still inflate it).
    opts = os.environ.get("ASAN_OPTIONS", "")
    monkeypatch.setenv("ASAN_OPTIONS",
                       (opts + ":" if opts else "") + "quarantine_size_mb=0")
    need = 2 * HELD + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        if hard < need:
            pytest.skip(f"RLIMIT_NOFILE {hard} < {need}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    node = node_factory(setup=lambda n: set_params(
        n, MaxSameIpSource=0, MaxParallelConnections=HELD + HELD // 10 + 10))
    pid = node.pid("smtpserver")
    # Warm up (thread pools, TLS context, allocator arenas), then measure.
    with smtp(node) as s:
        ehlo(s)
        assert transaction(s, "a@localhost", ["root@localhost"],
                           MSG).startswith("250")
    base = rss_kib(pid)
    plain, tls = [], []
    ctx = client_context()
    try:
        for i in range(HELD):
            s, reply = dial(node, f"127.0.{3 + i // 250}.{1 + i % 250}")
            assert reply.startswith("220"), (i, reply)
            ehlo(s)
            plain.append(s)
        with_plain = rss_kib(pid)
        for i in range(HELD // 10):
            s, reply = dial(node, f"127.0.9.{1 + i % 250}")
            assert reply.startswith("220"), (i, reply)
            ehlo(s)
            assert command(s, "STARTTLS").startswith("220")
            t = ctx.wrap_socket(s)
            ehlo(t)
            tls.append(t)
        with_tls = rss_kib(pid)
        # Every session still answers.
        for s in plain[::50] + tls[::10]:
            assert command(s, "NOOP").startswith("250")
    finally:
        close_all(plain + tls)
    per_plain = (with_plain - base) / HELD
    per_tls = (with_tls - with_plain) / max(1, HELD // 10)
    print(f"RSS smtpserver: idle {base} KiB; {HELD} plain sessions "
          f"{with_plain} KiB ({per_plain:.1f} KiB each); +{HELD // 10} TLS "
          f"sessions {with_tls} KiB ({per_tls:.1f} KiB each)")
    # Loose bounds (sanitizer builds inflate the figures several times): an
    # idle session must not cost a read buffer of its own, let alone a
    # thread; a TLS session holds its record buffers.
    assert per_plain < 64, per_plain
    assert per_tls < 1024, per_tls
