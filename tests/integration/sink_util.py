"""SMTP/LMTP sinks for the transport-agent tests.

- `Sink`: an aiosmtpd server in a thread of the test process, on
  127.0.0.1:<free port>, that keeps every message it accepts. Options
  change what it announces and answers (reject some recipients, hide
  8BITMIME, offer STARTTLS, speak LMTP).
- `ScriptedServer`: a raw socket server that answers with fixed lines, for
  misbehaving peers (garbage replies, hangs, drops, BDAT).
- `make_ca()`: a test CA and a server certificate signed by it (openssl).
- `postfix_smtp_sink()`: Postfix's smtp-sink, unpacked from the Debian
  package into a cache folder (None when it cannot be had).

Every wait is bounded; nothing here sleeps for readiness.
"""

import os
import pathlib
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP

from conftest import free_port, wait_for


class _Handler:
    def __init__(self, sink):
        self.sink = sink

    async def handle_EHLO(self, server, session, envelope, hostname,
                          responses):
        session.host_name = hostname
        out = []
        for r in responses:
            kw = r[4:].split(" ")[0].upper()
            if kw in self.sink.hide:
                continue
            out.append(r)
        # Extensions aiosmtpd handles without announcing them.
        if "PIPELINING" not in self.sink.hide:
            out.insert(len(out) - 1, "250-PIPELINING")
        if self.sink.announce_rcptlimit:
            out.insert(len(out) - 1,
                       f"250-X-RCPTLIMIT {self.sink.announce_rcptlimit}")
        if self.sink.size_limit:
            out = [r for r in out if not r[4:].upper().startswith("SIZE")]
            out.insert(len(out) - 1, f"250-SIZE {self.sink.size_limit}")
        # The last line must be "250 ...".
        out = [r.replace("250 ", "250-", 1) for r in out]
        out[-1] = out[-1].replace("250-", "250 ", 1)
        self.sink.ehlo_lines.append(list(out))
        return out

    async def handle_MAIL(self, server, session, envelope, address,
                          mail_options):
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        self.sink.mail_options.append(list(mail_options))
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address,
                          rcpt_options):
        self.sink.rcpt_options.append((address, list(rcpt_options)))
        local = address.split("@")[0].lower()
        if self.sink.max_rcpts and \
                len(envelope.rcpt_tos) >= self.sink.max_rcpts:
            return "452 4.5.3 Too many recipients"
        if local in self.sink.reject:
            return self.sink.reject[local]
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        msg = {
            "from": envelope.mail_from,
            "to": list(envelope.rcpt_tos),
            "data": envelope.original_content,
            "tls": session.ssl is not None,
            "mail_options": list(envelope.mail_options),
        }
        with self.sink.lock:
            self.sink.messages.append(msg)
        if self.sink.lmtp:
            # One reply per recipient; a rejected one gets the reject text.
            replies = []
            for rcpt in envelope.rcpt_tos:
                local = rcpt.split("@")[0].lower()
                replies.append(self.sink.lmtp_reject.get(
                    local, f"250 2.0.0 <{rcpt}> delivered"))
            return "\r\n".join(replies)
        return self.sink.data_reply


class _LMTPController(Controller):
    def factory(self):
        return LMTP(self.handler, **self.SMTP_kwargs)


class _SMTPController(Controller):
    def factory(self):
        return SMTP(self.handler, **self.SMTP_kwargs)


class Sink:
    """An aiosmtpd sink. `hide`: EHLO keywords not to announce;
    `reject`: {local part: reply line} refused at RCPT; `tls`: (cert, key)
    to offer STARTTLS; `lmtp`: speak LMTP; `size_limit`: SIZE value;
    `max_rcpts`: recipients per transaction, the next get "452 4.5.3";
    `announce_rcptlimit`: an X-RCPTLIMIT value to announce; `host`, `port`:
    where to listen (default 127.0.0.1, a free port)."""

    def __init__(self, hide=(), reject=None, tls=None, lmtp=False,
                 size_limit=0, data_reply="250 2.0.0 OK queued",
                 lmtp_reject=None, require_tls=False, max_rcpts=0,
                 announce_rcptlimit=0, host="127.0.0.1", port=None):
        self.hide = {h.upper() for h in hide}
        self.reject = reject or {}
        self.lmtp = lmtp
        self.lmtp_reject = lmtp_reject or {}
        self.size_limit = size_limit
        self.max_rcpts = max_rcpts
        self.announce_rcptlimit = announce_rcptlimit
        self.data_reply = data_reply
        self.messages = []
        self.mail_options = []
        self.rcpt_options = []
        self.ehlo_lines = []
        self.lock = threading.Lock()
        self.port = port or free_port()
        kwargs = {"decode_data": False, "enable_SMTPUTF8":
                  "SMTPUTF8" not in self.hide}
        if tls:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(*tls)
            kwargs["tls_context"] = ctx
            kwargs["require_starttls"] = require_tls
        cls = _LMTPController if lmtp else _SMTPController
        self.controller = cls(_Handler(self), hostname=host,
                              port=self.port, **kwargs,
                              ready_timeout=10)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()

    def wait_messages(self, n, timeout=30):
        return wait_for(lambda: len(self.messages) >= n, timeout,
                        what=f"{n} message(s) at the sink")


class ScriptedServer:
    """Answers each client with `script`: a list of (expect, reply) where
    `expect` is a prefix of the client's next line (None: send `reply`
    first, e.g. the greeting) and `reply` is bytes to send, or "hang" (keep
    the connection open and silent), or "close". After a line "DATA" the
    server reads the message up to the final dot as one input; after
    "BDAT n" it reads n bytes. `host`, `port`: where to listen (default
    127.0.0.1, a free port)."""

    def __init__(self, script, host="127.0.0.1", port=None):
        self.script = script
        self.port = port or free_port()
        self.lines = []
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, self.port))
        self.sock.listen(5)
        self.sock.settimeout(0.2)
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.conns = []

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop_flag.set()
        self.thread.join(10)
        for c in self.conns:
            c.close()
        self.sock.close()

    def _run(self):
        while not self.stop_flag.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns.append(conn)
            conn.settimeout(0.2)
            self._serve(conn)

    def _readline(self, conn, buf):
        while b"\n" not in buf[0]:
            if self.stop_flag.is_set():
                return None
            try:
                chunk = conn.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return None
            if not chunk:
                return None
            buf[0] += chunk
        line, _, rest = buf[0].partition(b"\n")
        buf[0] = rest
        return line.rstrip(b"\r").decode(errors="replace")

    def _serve(self, conn):
        buf = [b""]
        for expect, reply in self.script:
            if expect is not None:
                line = self._readline(conn, buf)
                if line is None:
                    return
                self.lines.append(line)
                if line.upper().startswith("DATA") and reply == b"354 go\r\n":
                    conn.sendall(reply)
                    body = []
                    while True:
                        l = self._readline(conn, buf)
                        if l is None:
                            return
                        if l == ".":
                            break
                        body.append(l)
                    self.lines.append("<body:%d lines>" % len(body))
                    continue
                if line.upper().startswith("BDAT"):
                    n = int(line.split()[1])
                    while len(buf[0]) < n:
                        if self.stop_flag.is_set():
                            return
                        try:
                            chunk = conn.recv(65536)
                        except socket.timeout:
                            continue
                        if not chunk:
                            return
                        buf[0] += chunk
                    self.lines.append(buf[0][:n].decode(errors="replace"))
                    buf[0] = buf[0][n:]
            if reply == "hang":
                while not self.stop_flag.is_set():
                    self.stop_flag.wait(0.2)
                return
            if reply == "close":
                conn.close()
                return
            conn.sendall(reply)
        # Script done: answer QUIT/RSET politely until the client goes.
        while True:
            line = self._readline(conn, buf)
            if line is None:
                return
            self.lines.append(line)
            conn.sendall(b"221 2.0.0 bye\r\n" if line.upper().startswith(
                "QUIT") else b"250 2.0.0 ok\r\n")


def make_ca(folder, names=("localhost",), ips=("127.0.0.1",)):
    """A CA and a server certificate for `names`/`ips`. Returns
    (ca_cert, server_cert, server_key) paths."""
    folder = pathlib.Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = folder / "ca.key", folder / "ca.crt"
    key, csr, crt = folder / "srv.key", folder / "srv.csr", folder / "srv.crt"
    ext = folder / "ext.cnf"
    san = ",".join([f"DNS:{n}" for n in names] + [f"IP:{i}" for i in ips])
    ext.write_text(f"subjectAltName={san}\n")

    def run(*args):
        subprocess.run(["openssl", *args], check=True, timeout=60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
        str(ca_key), "-out", str(ca_crt), "-days", "2", "-subj",
        "/CN=zmnode test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
        str(csr), "-subj", f"/CN={names[0]}")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey",
        str(ca_key), "-CAcreateserial", "-out", str(crt), "-days", "2",
        "-extfile", str(ext))
    return str(ca_crt), str(crt), str(key)


def postfix_smtp_sink(cache=None):
    """Path of Postfix's smtp-sink, unpacked from the Debian package
    (`apt-get download postfix` + `dpkg -x`) into `cache` once; None if
    that is not possible here (no network, no apt)."""
    cache = pathlib.Path(cache or os.environ.get(
        "ZM_SINK_CACHE", "/tmp/zm-postfix-sink"))
    exe = cache / "usr" / "sbin" / "smtp-sink"
    if exe.exists():
        return str(exe)
    if not shutil.which("apt-get") or not shutil.which("dpkg"):
        return None
    work = cache.parent / (cache.name + ".dl")
    work.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["apt-get", "download", "postfix"], cwd=work,
                       check=True, timeout=120, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        debs = sorted(work.glob("postfix_*.deb"))
        if not debs:
            return None
        subprocess.run(["dpkg", "-x", str(debs[-1]), str(cache)], check=True,
                       timeout=120)
    except (subprocess.SubprocessError, OSError):
        return None
    return str(exe) if exe.exists() else None


def set_smtp_command(node, command):
    """Makes the scheduler.conf clause `smtp/*` run `command`."""
    conf = node.etc / "scheduler.conf"
    text = conf.read_text()
    text = text.replace('command="smtp"', f'command="{command}"', 1)
    conf.write_text(text)


class PostfixSink:
    """Postfix's smtp-sink on 127.0.0.1:<free port>, each transaction
    dumped to a file in a fresh folder under /tmp (smtp-sink runs as
    nobody, which cannot enter pytest's private tmp_path). Use only when
    postfix_smtp_sink() gave a path."""

    def __init__(self, exe):
        self.exe = exe
        self.folder = pathlib.Path(tempfile.mkdtemp(prefix="zm-sink-",
                                                    dir="/tmp"))
        os.chmod(self.folder, 0o777)
        self.port = free_port()
        self.proc = None

    def __enter__(self):
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = str(
            pathlib.Path(self.exe).parent.parent / "lib" / "postfix")
        self.proc = subprocess.Popen(
            [self.exe, "-u", "nobody", "-h", "sink.test", "-d",
             str(self.folder / "%H%M%S."), f"127.0.0.1:{self.port}", "50"],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def listening():
            try:
                with socket.create_connection(("127.0.0.1", self.port), 1):
                    return True
            except OSError:
                return self.proc.poll() is not None
        wait_for(listening, 30, what="smtp-sink listening")
        assert self.proc.poll() is None, "smtp-sink exited"
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.folder, ignore_errors=True)

    def dumps(self):
        return sorted(p for p in self.folder.iterdir() if p.is_file())
