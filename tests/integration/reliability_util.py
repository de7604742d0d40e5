"""Helpers for the reliability and security tests: a spool on a small file
system, filling it, raw SMTP dialogues from a chosen source address, and
process figures (RSS, credentials) read from /proc.

The small file system is a size-limited tmpfs mounted over the node's
spool/ (we run as root). It is mounted after `zmailer init` and before
`zmailer start`, and unmounted (lazily) once the node has stopped.
"""

import contextlib
import errno
import os
import pathlib
import socket
import subprocess

import pytest

from conftest import COMMAND_TIMEOUT
from smtpserver_util import IO_TIMEOUT, command, read_reply

FILLER = ".filler"  # dot name: the node's folder scans skip it


def can_mount():
    """Whether this process may mount file systems (root in a container that
    allows it)."""
    return os.geteuid() == 0


def mount_small_spool(node, size_kib):
    """Moves spool/ onto a fresh tmpfs of `size_kib` KiB, keeping its folders
    and their modes. Returns the mount point."""
    spool = node.spool
    aside = spool.with_name("spool.orig")
    spool.rename(aside)
    spool.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k",
                    "zmtest-spool", str(spool)], check=True,
                   timeout=COMMAND_TIMEOUT)
    subprocess.run(["cp", "-a", f"{aside}/.", f"{spool}/"], check=True,
                   timeout=COMMAND_TIMEOUT)
    return spool


def unmount(path):
    subprocess.run(["umount", "-l", str(path)], timeout=COMMAND_TIMEOUT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def free_kib(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize // 1024


def fill(spool, leave_kib=0):
    """Grows spool/.filler until about `leave_kib` KiB stay free (0: until
    the file system says ENOSPC). Returns the free KiB left."""
    path = pathlib.Path(spool) / FILLER
    chunk = b"\0" * (64 * 1024)
    with open(path, "ab") as f:
        for _ in range(1 << 20):  # bounded: 64 GiB of chunks at most
            room = free_kib(spool) - leave_kib
            if room <= 0:
                break
            piece = chunk[:min(len(chunk), room * 1024)]
            try:
                f.write(piece)
                f.flush()
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
                break
    return free_kib(spool)


def unfill(spool):
    with contextlib.suppress(FileNotFoundError):
        (pathlib.Path(spool) / FILLER).unlink()


def smtp(node, source="127.0.0.1", port=None, host="127.0.0.1"):
    """A raw SMTP socket from `source` (another loopback address is an
    untrusted client when the policy says so), greeting read."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(IO_TIMEOUT)
    s.bind((source, 0))
    s.connect((host, port or node.smtp_port))
    greeting = read_reply(s)
    assert greeting.startswith("220"), greeting
    return s


def transaction(sock, sender, rcpts, body):
    """MAIL, RCPT..., DATA, body; returns the final reply (or the first
    refusal)."""
    reply = command(sock, f"MAIL FROM:<{sender}>")
    if not reply.startswith("250"):
        return reply
    for r in rcpts:
        reply = command(sock, f"RCPT TO:<{r}>")
        if not reply.startswith("250"):
            return reply
    reply = command(sock, "DATA")
    if not reply.startswith("354"):
        return reply
    if isinstance(body, str):
        body = body.encode()
    sock.sendall(body.replace(b"\n", b"\r\n") + b".\r\n")
    return read_reply(sock)


def status_field(pid, name):
    """A field of /proc/<pid>/status ("VmRSS", "Uid", ...), as text."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return None


def rss_kib(pid):
    return int(status_field(pid, "VmRSS").split()[0])


def privileged_free_port():
    """A free port below 1024 on 127.0.0.1 (the test skips without one)."""
    for port in range(1000, 900, -1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    pytest.skip("no free port below 1024")
