"""Helpers for the smtpserver tests: config edits, raw SMTP, certificates."""

import pathlib
import socket
import ssl
import subprocess

from conftest import COMMAND_TIMEOUT

READ_LIMIT = 64 * 1024  # bytes read for one reply, at most
IO_TIMEOUT = 60  # seconds a socket read may block


def set_params(node, **params):
    """Appends PARAM lines to etc/smtpserver.conf, before the HELO patterns.

    Keyword names use '_' for '-'; True means a PARAM without value.
    """
    conf = node.etc / "smtpserver.conf"
    lines = conf.read_text().splitlines()
    first_pattern = next(
        (i for i, l in enumerate(lines)
         if l.strip() and not l.lstrip().startswith("#")
         and not l.lstrip().upper().startswith("PARAM")), len(lines))
    new = []
    for key, value in params.items():
        key = key.replace("_", "-")
        new.append(f"PARAM {key}" if value is True else f"PARAM {key} {value}")
    lines[first_pattern:first_pattern] = new
    conf.write_text("\n".join(lines) + "\n")


def read_reply(sock):
    """One complete (possibly multi-line) SMTP reply as text."""
    data = b""
    while len(data) < READ_LIMIT:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
        lines = data.split(b"\r\n")
        # Complete when the last full line has a space after the code.
        full = lines[:-1]
        if full and len(full[-1]) >= 4 and full[-1][3:4] == b" ":
            break
    return data.decode(errors="replace")


def connect(port, host="127.0.0.1", family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(IO_TIMEOUT)
    s.connect((host, port))
    return s


def command(sock, line):
    sock.sendall(line.encode() + b"\r\n")
    return read_reply(sock)


def client_context(maximum=None, minimum=None):
    """A client TLS context that does not check the node's self-signed cert."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if maximum:
        ctx.maximum_version = maximum
    if minimum:
        ctx.minimum_version = minimum
    return ctx


def starttls(sock, ctx, session=None):
    """EHLO, STARTTLS, handshake; returns the TLS socket (after a new EHLO)."""
    greeting = read_reply(sock)
    assert greeting.startswith("220"), greeting
    ehlo = command(sock, "EHLO client.example")
    assert "STARTTLS" in ehlo, ehlo
    reply = command(sock, "STARTTLS")
    assert reply.startswith("220"), reply
    tls = ctx.wrap_socket(sock, session=session)
    ehlo = command(tls, "EHLO client.example")
    assert ehlo.startswith("250"), ehlo
    return tls


def run(*args, cwd=None):
    proc = subprocess.run(list(args), cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=COMMAND_TIMEOUT)
    assert proc.returncode == 0, proc.stdout.decode(errors="replace")
    return proc.stdout.decode(errors="replace")


def make_ca_and_client(folder):
    """A test CA and a client certificate it signed; returns the paths."""
    d = pathlib.Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
        "-keyout", str(d / "ca-key.pem"), "-out", str(d / "ca.pem"),
        "-days", "2", "-subj", "/CN=zmnode test CA")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes",
        "-keyout", str(d / "client-key.pem"), "-out", str(d / "client.csr"),
        "-subj", "/CN=client.example")
    run("openssl", "x509", "-req", "-in", str(d / "client.csr"),
        "-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca-key.pem"),
        "-CAcreateserial", "-out", str(d / "client.pem"), "-days", "2")
    return d / "ca.pem", d / "client.pem", d / "client-key.pem"


def passwd_hash(password):
    """A crypt(3) SHA-512 hash, as an operator makes it."""
    return run("openssl", "passwd", "-6", password).strip()
