"""Parallel delivery to one destination and connection reuse, through a
whole node (sendmail -> router -> scheduler -> smtp -> sink), against
sinks that count concurrent connections and messages per connection.

The sinks can hold their reply to DATA until the test opens a gate, so
"several connections at once" and "a held destination does not hold back
another" are shown by state, not by timing. Destinations: slow.test ->
127.0.0.2 and fast.test -> 127.0.0.3 (dnsmasq started by the test), both
sinks on the same port, one `smtp -p PORT` command: one ring for both.
"""

import socket
import threading

from conftest import free_port, wait_for
from dns_util import dnsmasq, host  # noqa: F401

MSG = "From: alice@localhost\nSubject: parallel {n}\n\nbody {n}\n"
HOLD_LIMIT = 120.0  # the longest a held DATA reply waits for the gate


class CountingSink:
    """A minimal SMTP server on (ip, port), one thread per connection.
    Counts connections open at once (`max_active`) and messages per
    connection (`per_conn`, one entry per connection). With `hold`, the
    250 after DATA waits until `release()` (bounded by HOLD_LIMIT)."""

    def __init__(self, ip, port, hold=False, both=None):
        self.ip, self.port = ip, port
        self.both = both  # a Concurrency shared with other sinks
        self.gate = threading.Event()
        if not hold:
            self.gate.set()
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        self.per_conn = []
        self.messages = []  # (recipients, data)
        self.waiting_data = 0  # transactions held at the gate now
        self.sock = socket.create_server((ip, port))
        self.sock.settimeout(0.2)
        self.stopping = False
        self.threads = []

    def __enter__(self):
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def __exit__(self, *exc):
        self.stopping = True
        self.gate.set()
        for t in self.threads:
            t.join(10)
        self.sock.close()

    def release(self):
        self.gate.set()

    def count(self):
        with self.lock:
            return len(self.messages)

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,),
                                 daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, conn):
        conn.settimeout(HOLD_LIMIT)
        f = conn.makefile("rb")
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            slot = len(self.per_conn)
            self.per_conn.append(0)
        if self.both:
            self.both.opened()

        def say(line):
            conn.sendall(line.encode() + b"\r\n")

        try:
            say("220 sink ESMTP")
            rcpts = []
            for _ in range(100000):
                line = f.readline(4096)
                if not line:
                    return
                cmd = line.strip().decode(errors="replace")
                verb = cmd[:4].upper()
                if verb in ("EHLO", "LHLO"):
                    conn.sendall(b"250-sink\r\n250-PIPELINING\r\n"
                                 b"250 8BITMIME\r\n")
                elif verb == "HELO":
                    say("250 sink")
                elif verb == "MAIL":
                    rcpts = []
                    say("250 2.1.0 ok")
                elif verb == "RCPT":
                    rcpts.append(cmd[8:].strip())
                    say("250 2.1.5 ok")
                elif verb == "DATA":
                    say("354 go ahead")
                    data = b""
                    while True:
                        chunk = f.readline(65536)
                        if not chunk or chunk == b".\r\n":
                            break
                        data += chunk
                        if len(data) > (8 << 20):
                            return
                    with self.lock:
                        self.waiting_data += 1
                    self.gate.wait(HOLD_LIMIT)
                    with self.lock:
                        self.waiting_data -= 1
                        self.messages.append((list(rcpts), data))
                        self.per_conn[slot] += 1
                    say("250 2.0.0 queued")
                elif verb == "RSET":
                    rcpts = []
                    say("250 2.0.0 ok")
                elif verb == "NOOP":
                    say("250 2.0.0 ok")
                elif verb == "QUIT":
                    say("221 2.0.0 bye")
                    return
                else:
                    say("502 5.5.2 what")
        except OSError:
            return
        finally:
            with self.lock:
                self.active -= 1
            if self.both:
                self.both.closed()
            conn.close()


class Concurrency:
    """Connections open at once over several sinks."""

    def __init__(self):
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0

    def opened(self):
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)

    def closed(self):
        with self.lock:
            self.active -= 1


def free_port_on_both():
    """A port free on 127.0.0.2 and 127.0.0.3."""
    for _ in range(50):
        p = free_port()
        try:
            for ip in ("127.0.0.2", "127.0.0.3"):
                socket.create_server((ip, p)).close()
            return p
        except OSError:
            continue
    raise RuntimeError("no port free on 127.0.0.2 and 127.0.0.3")


def parallel_node(node_factory, dns, port, params):
    """A node whose smtp/* clause runs `smtp -p PORT` with `params`."""
    def setup(node):
        dns.configure(node)
        conf = node.etc / "scheduler.conf"
        text = conf.read_text()
        old = 'smtp/*\n    maxchannel=199\n    maxring=50\n    command="smtp"'
        assert old in text, "the default smtp/* clause changed"
        body = "".join(f"    {p}\n" for p in params)
        text = text.replace(
            old, f'smtp/*\n{body}    command="smtp -p {port} -T 60"')
        conf.write_text(text)
    return node_factory(setup=setup)


def send(node, rcpt, n):
    proc = node.sendmail("-f", "alice@localhost", rcpt,
                         message=MSG.format(n=n))
    assert proc.returncode == 0, proc.output


def dns_records():
    return [host("slow.test", "127.0.0.2"), host("fast.test", "127.0.0.3")]


def test_backlog_goes_out_over_maxthr_connections_reused(node_factory,
                                                          dnsmasq):
    port = free_port_on_both()
    dns = dnsmasq(dns_records())
    with CountingSink("127.0.0.2", port, hold=True) as sink:
        node = parallel_node(node_factory, dns, port,
                             ["maxthr=3", "maxring=10", "overfeed=10"])
        for i in range(24):
            send(node, f"u{i}@slow.test", i)
        # Three transactions held at once: three agents on one thread.
        wait_for(lambda: sink.waiting_data >= 3, 120,
                 what="3 connections held at DATA")
        sink.release()
        wait_for(lambda: sink.count() >= 24, 180, what="24 messages")
        assert sink.max_active <= 3, sink.max_active
        # The backlog went over kept connections (RSET between messages).
        assert max(sink.per_conn) > 1, sink.per_conn
        assert len(sink.per_conn) < 24, sink.per_conn
        got = sorted(r[0] for r, _ in sink.messages)
        assert got == sorted(f"<u{i}@slow.test>" for i in range(24))


def test_maxchannel_caps_connections_over_destinations(node_factory,
                                                        dnsmasq):
    port = free_port_on_both()
    dns = dnsmasq(dns_records())
    both = Concurrency()
    with CountingSink("127.0.0.2", port, hold=True, both=both) as slow, \
            CountingSink("127.0.0.3", port, hold=True, both=both) as fast:
        node = parallel_node(node_factory, dns, port,
                             ["maxchannel=2", "maxthr=0", "maxring=10"])
        for i in range(6):
            send(node, f"s{i}@slow.test", i)
            send(node, f"f{i}@fast.test", i)
        wait_for(lambda: slow.waiting_data + fast.waiting_data >= 2, 120,
                 what="2 connections held at DATA")
        slow.release()
        fast.release()
        wait_for(lambda: slow.count() + fast.count() >= 12, 180,
                 what="12 messages")
        # Two agents in the channel at most, over both destinations.
        assert both.max_active == 2, both.max_active
        # The sink has a message before the agent's result reaches the log.
        def sent():
            return node.maillog.read_text(errors="replace").count(
                "status=sent")
        wait_for(lambda: sent() >= 12, 60, what="12 status=sent lines")
        assert sent() == 12


def test_held_destination_does_not_hold_back_another(node_factory, dnsmasq):
    port = free_port_on_both()
    dns = dnsmasq(dns_records())
    with CountingSink("127.0.0.2", port, hold=True) as slow, \
            CountingSink("127.0.0.3", port) as fast:
        node = parallel_node(node_factory, dns, port,
                             ["maxthr=2", "maxring=4", "overfeed=10"])
        for i in range(10):
            send(node, f"s{i}@slow.test", i)
        wait_for(lambda: slow.waiting_data >= 2, 120,
                 what="slow.test's 2 connections held")
        send(node, "f@fast.test", 99)
        # fast.test's message goes out while every slow.test transaction
        # still waits: it was not queued behind them in a busy agent.
        wait_for(lambda: fast.count() >= 1, 120, what="fast.test delivery")
        assert slow.count() == 0
        assert slow.max_active == 2
        slow.release()
        wait_for(lambda: slow.count() >= 10, 180, what="slow.test's 10")
