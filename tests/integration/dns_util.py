"""A dnsmasq the test starts: DNS records for integration tests.

    from dns_util import dnsmasq, mx, host, null_mx, txt  # noqa: F401

    def test_x(node_factory, dnsmasq):
        dns = dnsmasq([mx("example.test", "mx1.example.test", 10),
                       host("mx1.example.test", "127.0.0.1")],
                      failing=["broken.test"])
        node = node_factory(setup=dns.configure)   # writes etc/resolver.conf

dnsmasq serves on 127.0.0.1:<free port>. Names under .test that no record
names answer NXDOMAIN; names under fail.test and every domain in `failing`
are forwarded to a dead port, so lookups there fail temporarily (SERVFAIL
or timeout). `dns.restart(records=..., failing=...)` serves new data on the
same port (to release a held message, for example). Everything the fixture
started is stopped at the end of the test.
"""

import pathlib
import random
import shutil
import socket
import struct
import subprocess
import tempfile
import time

import pytest

DNSMASQ = "/usr/sbin/dnsmasq"
START_TIMEOUT = 30.0


def mx(domain, target, preference=10):
    return f"mx-host={domain},{target},{preference}"


def null_mx(domain):
    """RFC 7505: `domain MX 0 .` (the domain accepts no mail)."""
    return f"dns-rr={domain},15,000000"


def host(name, *addresses):
    """A and/or AAAA records for `name`."""
    return f"host-record={name},{','.join(addresses)}"


def txt(name, text):
    return f'txt-record={name},"{text}"'


def srv(name, target, port, priority=0, weight=0):
    return f"srv-host={name},{target},{port},{priority},{weight}"


def ptr(ip, name):
    """A PTR record for an IPv4 address."""
    rev = ".".join(reversed(ip.split("."))) + ".in-addr.arpa"
    return f"ptr-record={rev},{name}"


def _free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(port, name="ready.test"):
    """True if something on 127.0.0.1:port answers a DNS query for `name`."""
    qid = random.randrange(65536)
    packet = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        packet += bytes([len(label)]) + label.encode()
    packet += b"\0" + struct.pack(">HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        try:
            s.sendto(packet, ("127.0.0.1", port))
            data, _ = s.recvfrom(4096)
        except OSError:
            return False
    return len(data) >= 12 and struct.unpack(">H", data[:2])[0] == qid


class DnsServer:
    """One dnsmasq process with a generated configuration."""

    def __init__(self, workdir, records=(), failing=(), ttl=300):
        self.dir = pathlib.Path(workdir)
        self.port = _free_udp_port()
        self.dead_port = _free_udp_port()
        self.records = list(records)
        self.failing = list(failing)
        self.ttl = ttl
        self.proc = None

    @property
    def server(self):
        return f"127.0.0.1:{self.port}"

    def _write_conf(self):
        lines = ["no-resolv", "no-hosts", "bind-interfaces",
                 "listen-address=127.0.0.1", "local=/test/",
                 f"local-ttl={self.ttl}",
                 "host-record=ready.test,127.0.0.9"]
        for domain in ["fail.test", *self.failing]:
            lines.append(f"server=/{domain}/127.0.0.1#{self.dead_port}")
        lines += self.records
        conf = self.dir / "dnsmasq.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self):
        conf = self._write_conf()
        log = open(self.dir / "dnsmasq.log", "ab")
        self.proc = subprocess.Popen(
            [DNSMASQ, "--keep-in-foreground", "--user=root", "--pid-file=",
             "--log-facility=-", f"--conf-file={conf}", f"--port={self.port}"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(self.port):
            if self.proc.poll() is not None:
                raise AssertionError(
                    "dnsmasq exited: "
                    + (self.dir / "dnsmasq.log").read_text(errors="replace"))
            if time.monotonic() >= deadline:
                raise AssertionError("dnsmasq did not answer")
            time.sleep(0.05)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def restart(self, records=None, failing=None):
        """Serves new records (and failing domains) on the same port."""
        self.stop()
        if records is not None:
            self.records = list(records)
        if failing is not None:
            self.failing = list(failing)
        return self.start()

    def resolver_conf(self, timeout_ms=1000, attempts=1):
        return (f"nameserver {self.server}\ntimeout {timeout_ms}\n"
                f"attempts {attempts}\n")

    def configure(self, node, timeout_ms=1000, attempts=1):
        """Points `node` (a conftest Node) at this server."""
        (pathlib.Path(node.home) / "etc" / "resolver.conf").write_text(
            self.resolver_conf(timeout_ms, attempts))


def server_factory(cls, prefix):
    """The body of a fixture that starts servers of `cls` on demand, each
    in a fresh folder under /tmp (`cls(folder, *args, **kw).start()`),
    and stops them and removes their folders afterwards."""
    servers = []
    dirs = []

    def make(*args, **kw):
        d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
        dirs.append(d)
        s = cls(d, *args, **kw)
        servers.append(s)
        return s.start()

    yield make
    for s in servers:
        s.stop()
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def dnsmasq():
    """Factory: dnsmasq(records, failing=(), ttl=300) -> started DnsServer."""
    yield from server_factory(DnsServer, "zmdns-")


__all__ = ["dnsmasq", "DnsServer", "mx", "null_mx", "host", "txt", "srv",
           "ptr"]
