"""Separate hosts on one machine: network namespaces joined by a bridge.

    fabric = Fabric()                      # hub namespace with a bridge
    h1 = fabric.add_host("n1")             # namespace + veth, 10.a.b.11
    fabric.place(node, h1)                 # node's programs run in h1
    fabric.cut(h1); fabric.heal(h1)        # link down / up: a partition
    s = fabric.smtp(h1, h1.ip, 2525, source="127.0.0.2")   # smtplib.SMTP
    fabric.close()                         # stops what it started, deletes

Every namespace and link lives under names unique to the run; nothing is
created in the machine's own namespace (both ends of each veth pair are
made inside the hub and the host namespaces), so runs in parallel and a
failed run cannot collide. The hub namespace holds the bridge and its own
address (.1) for the DNS server and the mail sink (`start_in`). A socket
is opened inside a namespace by switching the calling thread there just
for the socket() call (setns(2)); UNIX sockets (the cluster agent's local
service) work from anywhere.

`netns_unavailable()` says why namespaces cannot be made here (not root,
no `ip`), for a skip with a reason.
"""

import ctypes
import os
import pathlib
import random
import shutil
import signal
import smtplib
import socket
import subprocess

from conftest import COMMAND_TIMEOUT, wait_for

CLONE_NEWNET = 0x40000000
IP = shutil.which("ip") or "/usr/sbin/ip"
_libc = ctypes.CDLL(None, use_errno=True)


def netns_unavailable():
    """"" when this process can create network namespaces, else why not."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs the suite as root)"
    if not os.path.exists(IP):
        return "the ip command (iproute2) is not installed"
    name = f"zmprobe{os.getpid()}"
    proc = subprocess.run([IP, "netns", "add", name], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=COMMAND_TIMEOUT)
    if proc.returncode != 0:
        return "cannot create a network namespace: " + \
            proc.stdout.decode(errors="replace").strip()
    subprocess.run([IP, "netns", "del", name], timeout=COMMAND_TIMEOUT)
    return ""


def _ip(*args, ns=None, check=True):
    argv = [IP] + (["-n", ns] if ns else []) + list(args)
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=COMMAND_TIMEOUT)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: "
                             f"{proc.stderr.decode(errors='replace').strip()}")
    return proc


class _InNamespace:
    """`with _InNamespace(ns):` the calling thread is in `ns` inside."""

    def __init__(self, ns):
        self.path = f"/run/netns/{ns}"

    def _enter(self, path):
        fd = os.open(path, os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns {path}: {os.strerror(err)}")
        finally:
            os.close(fd)

    def __enter__(self):
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        self._enter(self.path)
        return self

    def __exit__(self, *exc):
        try:
            if _libc.setns(self.home, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back")
        finally:
            os.close(self.home)


def connect(ns, host, port, source=None, timeout=30):
    """A TCP connection made from inside namespace `ns`."""
    with _InNamespace(ns):
        return socket.create_connection(
            (host, port), timeout=timeout,
            source_address=(source, 0) if source else None)


class NsSMTP(smtplib.SMTP):
    """smtplib.SMTP whose connection is made inside a namespace."""

    def __init__(self, ns, host, port, source=None, timeout=30):
        self._ns = ns
        self._source = source
        super().__init__(host, port, timeout=timeout)

    def _get_socket(self, host, port, timeout):
        return connect(self._ns, host, port, self._source, timeout)


class Host:
    def __init__(self, name, ns, ip, hub_if):
        self.name = name
        self.ns = ns
        self.ip = ip
        self.hub_if = hub_if  # its link's end on the bridge (in the hub)


class Fabric:
    """A bridge in a hub namespace and hosts linked to it (module doc)."""

    def __init__(self, tag=None):
        self.tag = tag or f"{os.getpid() % 100000}{random.randrange(1000)}"
        # A /24 of 10/8 picked per run; namespaces never see each other's.
        self.net = f"10.{random.randrange(64, 250)}.{random.randrange(1, 250)}"
        self.hub = f"zmhub{self.tag}"
        self.hub_ip = f"{self.net}.1"
        self.hosts = []
        self.procs = []
        self.namespaces = []
        self.placed = []
        _ip("netns", "add", self.hub)
        self.namespaces.append(self.hub)
        _ip("link", "set", "lo", "up", ns=self.hub)
        _ip("link", "add", "br0", "type", "bridge", ns=self.hub)
        _ip("addr", "add", f"{self.hub_ip}/24", "dev", "br0", ns=self.hub)
        _ip("link", "set", "br0", "up", ns=self.hub)

    def add_host(self, name):
        i = len(self.hosts)
        ns = f"zm{name}{self.tag}"[:40]
        _ip("netns", "add", ns)
        self.namespaces.append(ns)
        ip = f"{self.net}.{11 + i}"
        hub_if = f"v{i}"
        # Both ends are made in the hub, then one moves to the host.
        _ip("link", "add", hub_if, "type", "veth", "peer", "name", "eth0",
            "netns", ns, ns=self.hub)
        _ip("link", "set", hub_if, "master", "br0", ns=self.hub)
        _ip("link", "set", hub_if, "up", ns=self.hub)
        _ip("link", "set", "lo", "up", ns=ns)
        _ip("addr", "add", f"{ip}/24", "dev", "eth0", ns=ns)
        _ip("link", "set", "eth0", "up", ns=ns)
        h = Host(name, ns, ip, hub_if)
        self.hosts.append(h)
        return h

    # ----- partitions --------------------------------------------------------
    def cut(self, host):
        """Takes the host's link down: it reaches nobody, nobody reaches it."""
        _ip("link", "set", host.hub_if, "down", ns=self.hub)

    def heal(self, host):
        _ip("link", "set", host.hub_if, "up", ns=self.hub)

    # ----- processes -----------------------------------------------------------
    def argv_in(self, ns, argv):
        return [IP, "netns", "exec", ns, *map(str, argv)]

    def start_in(self, ns, argv, log_path, env=None):
        """A background process in `ns` (stopped by close())."""
        log = open(log_path, "ab")
        proc = subprocess.Popen(self.argv_in(ns, argv), stdout=log,
                                stderr=log, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True)
        log.close()
        self.procs.append(proc)
        return proc

    def place(self, node, host):
        """Runs the conftest Node's programs (zmailer start, sendmail, ...)
        inside `host`'s namespace."""
        original = node.run

        def run(program, *args, **kw):
            path = str(node.bin / program)
            env = dict(node.env)
            env.update(kw.pop("env", None) or {})
            data = kw.pop("input", None)
            if isinstance(data, str):
                data = data.encode()
            proc = subprocess.run(
                self.argv_in(host.ns, [path, *args]), input=data,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                cwd=str(node.home), timeout=kw.pop("timeout", COMMAND_TIMEOUT))
            proc.stdout = proc.stdout.decode(errors="replace")
            proc.stderr = proc.stderr.decode(errors="replace")
            proc.output = proc.stdout + proc.stderr
            return proc

        node.run = run
        node.host = host
        node._outside_run = original
        self.placed.append(node)

    def smtp(self, host, ip, port, source=None, timeout=30):
        return NsSMTP(host.ns, ip, port, source, timeout)

    def smtp_from_hub(self, ip, port, timeout=30):
        return NsSMTP(self.hub, ip, port, None, timeout)

    # ----- services in the hub -------------------------------------------------
    def dnsmasq(self, workdir, records, port=53):
        """dnsmasq on the hub address; `records` are dns_util lines."""
        d = pathlib.Path(workdir)
        conf = d / "dnsmasq.conf"
        conf.write_text("\n".join(
            ["no-resolv", "no-hosts", "bind-interfaces",
             f"listen-address={self.hub_ip}", "local=/test/", "local-ttl=1",
             *records]) + "\n")
        self.start_in(self.hub, ["/usr/sbin/dnsmasq", "--keep-in-foreground",
                                 "--user=root", "--pid-file=",
                                 "--log-facility=-", f"--conf-file={conf}",
                                 f"--port={port}"], d / "dnsmasq.log")

        def answers():
            return _udp_dns_answers(self.hub, self.hub_ip, port)
        wait_for(answers, 30, what="dnsmasq in the hub namespace")

    def sink(self, workdir, port):
        """An SMTP sink on the hub address that stores each message as a
        file in workdir/mail/ (first line: the recipients)."""
        d = pathlib.Path(workdir)
        out = d / "mail"
        out.mkdir(parents=True, exist_ok=True)
        script = d / "sink.py"
        script.write_text(_SINK)
        self.start_in(self.hub, ["/usr/bin/python3", script, self.hub_ip, port,
                                 out], d / "sink.log")
        wait_for(lambda: _port_open(self.hub, self.hub_ip, port), 30,
                 what="the sink in the hub namespace")
        return out

    # ----- teardown --------------------------------------------------------------
    def close(self):
        for node in self.placed:
            try:
                if node.started:
                    node.stop()
            except Exception:  # noqa: BLE001 - the node fixture kills later
                pass
            # The namespace goes away: the fixture's own teardown must not
            # try to enter it.
            node.run = node._outside_run
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)
        for ns in reversed(self.namespaces):
            _ip("netns", "del", ns, check=False)
        self.namespaces.clear()


def _port_open(ns, ip, port):
    try:
        connect(ns, ip, port, timeout=1).close()
        return True
    except OSError:
        return False


def _udp_dns_answers(ns, ip, port):
    import struct
    qid = random.randrange(65536)
    packet = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in ("ready", "test"):
        packet += bytes([len(label)]) + label.encode()
    packet += b"\0" + struct.pack(">HH", 1, 1)
    with _InNamespace(ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with s:
        s.settimeout(0.5)
        try:
            s.sendto(packet, (ip, port))
            data, _ = s.recvfrom(4096)
        except OSError:
            return False
    return len(data) >= 12 and struct.unpack(">H", data[:2])[0] == qid


_SINK = r'''
import asyncio, os, sys, time
from aiosmtpd.controller import Controller

ip, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
count = 0

class Handler:
    async def handle_DATA(self, server, session, envelope):
        global count
        count += 1
        name = os.path.join(out, f"{time.time():.6f}-{count}.eml")
        with open(name + ".tmp", "wb") as f:
            f.write((" ".join(envelope.rcpt_tos) + "\n").encode())
            f.write(envelope.original_content or envelope.content)
        os.rename(name + ".tmp", name)
        return "250 2.0.0 stored"

c = Controller(Handler(), hostname=ip, port=port, ready_timeout=10)
c.start()
try:
    while True:
        time.sleep(3600)
finally:
    c.stop()
'''


def sink_messages(out):
    """[(recipients, text)] of what the sink stored so far."""
    msgs = []
    for p in sorted(pathlib.Path(out).glob("*.eml")):
        head, _, body = p.read_bytes().partition(b"\n")
        msgs.append((head.decode().split(), body.decode(errors="replace")))
    return msgs


def wait_until(predicate, timeout, what):
    """wait_for with a coarser poll for slow cluster convergence."""
    return wait_for(predicate, timeout, interval=0.2, what=what)


__all__ = ["Fabric", "Host", "NsSMTP", "connect", "netns_unavailable",
           "sink_messages", "wait_until"]
