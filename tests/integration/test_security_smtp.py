"""Hostile SMTP clients and the node's own hardening.

- SMTP smuggling: every fake end-of-data sequence (<LF>.<LF>, <CR>.<CR>,
  <LF>.<CR><LF>, ... ) inside DATA is answered once, as one message, and
  never starts a second, smuggled transaction; with and without
  `normalise-bare-newlines`;
- STARTTLS command injection (RFC 3207, CVE-2011-0411): a whole
  transaction pipelined behind STARTTLS is thrown away;
- AUTH brute force: failures are tarpitted and, past `auth-failrate`, the
  address is refused (`454 4.7.0`) even with the right password, while
  other addresses still log in;
- random bytes (scanners, broken clients) leave the server serving;
- (the TLS configuration is test_security_tls.py)
- sendmail is not set-uid; the smtpserver started as root with `PARAM
  user` runs as that user (every uid and gid) after binding a privileged
  port; strings from the network never reach a shell.
"""

import base64
import os
import pathlib
import pwd
import random
import socket
import stat
import subprocess
import time

import pytest

from conftest import BIN, COMMAND_TIMEOUT, free_port, wait_for
from reliability_util import (privileged_free_port, smtp, status_field,
                              transaction)
from smtpserver_util import (client_context, command, passwd_hash, read_reply,
                             set_params)

# --- SMTP smuggling -----------------------------------------------------------

# Fake ends of data, each placed right after "outer body" (no line end of
# its own), then a complete smuggled transaction, then the real end.
FAKE_ENDS = [
    b"\n.\n",
    b"\r.\r",
    b"\n.\r\n",
    b"\r.\n",
    b"\r.\r\n",
    b"\r\n.\n",
    b"\r\n.\r",
    b"\n.\r",
    b"\r\n.\r\r\n",
    b"\r\n.\x00\r\n",
    b"\r\n \r\n.\n",
]


@pytest.mark.parametrize("normalise", [False, True],
                         ids=["strict", "normalise-bare-newlines"])
def test_smtp_smuggling_never_splits_a_message(node_factory, normalise):
    node = node_factory(setup=lambda n: set_params(
        n, normalise_bare_newlines=True) if normalise else None)
    outcomes = []
    for i, fake in enumerate(FAKE_ENDS):
        with smtp(node) as s:
            assert command(s, "EHLO client.example").startswith("250")
            assert command(s, "MAIL FROM:<a@localhost>").startswith("250")
            assert command(s, "RCPT TO:<root@localhost>").startswith("250")
            assert command(s, "DATA").startswith("354")
            s.sendall(
                f"Subject: outer {i}\r\n\r\nouter body".encode() + fake
                + b"MAIL FROM:<smuggler@localhost>\r\n"
                b"RCPT TO:<root@localhost>\r\nDATA\r\n"
                + f"Subject: smuggled {i}\r\n\r\nsmuggled {i}\r\n".encode()
                + b".\r\nQUIT\r\n")
            # Everything the server says until it closes: exactly one reply
            # to the data and the 221.
            data = b""
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(data) < 65536:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
            lines = [l for l in data.decode(errors="replace").split("\r\n")
                     if l]
            codes = [l[:3] for l in lines if l[3:4] == " "]
            assert len(codes) == 2 and codes[1] == "221", (fake, lines)
            assert codes[0] in ("250", "550"), (fake, lines)
            outcomes.append((fake, lines[0]))
    print("smuggling outcomes:", *outcomes, sep="\n  ")
    # A control message last; once the queue is empty, look at the mbox.
    with smtp(node) as s:
        command(s, "EHLO client.example")
        assert transaction(s, "a@localhost", ["root@localhost"],
                           "Subject: control\n\ncontrol\n").startswith("250")
    node.wait_mbox_message("root", "control")
    wait_for(node.queue_empty, what="an empty queue")
    for m in node.mbox_messages("root"):
        subject = next((l for l in m.split("\n") if l.startswith("Subject:")),
                       "")
        assert "smuggled" not in subject, m
        assert not m.lstrip().startswith("MAIL FROM"), m
    # Whatever was accepted holds the smuggled text inside its body.
    accepted = [i for i, (_, r) in enumerate(outcomes) if r.startswith("250")]
    text = node.mbox("root")
    for i in accepted:
        assert f"smuggled {i}" in text


# --- STARTTLS injection -------------------------------------------------------

def test_starttls_injected_transaction_is_discarded(node):
    with smtp(node) as raw:
        assert command(raw, "EHLO client.example").startswith("250")
        raw.sendall(b"STARTTLS\r\nMAIL FROM:<inject@localhost>\r\n"
                    b"RCPT TO:<root@localhost>\r\nDATA\r\n"
                    b"Subject: injected\r\n\r\ninjected\r\n.\r\n")
        assert read_reply(raw).startswith("220")
        tls = client_context().wrap_socket(raw)
        assert command(tls, "EHLO client.example").startswith("250")
        # No MAIL survived the handshake: RCPT and DATA are out of order.
        assert command(tls, "RCPT TO:<root@localhost>").startswith("503")
        assert command(tls, "DATA").startswith("503")
        assert command(tls, "QUIT").startswith("221")
        tls.close()
    with smtp(node) as s:
        command(s, "EHLO client.example")
        assert transaction(s, "a@localhost", ["root@localhost"],
                           "Subject: control\n\ncontrol\n").startswith("250")
    node.wait_mbox_message("root", "control")
    assert "injected" not in node.mbox("root")


# --- AUTH brute force -----------------------------------------------------------

FAILRATE = 5


def auth_setup(node):
    (node.etc / "smtp-auth.passwd").write_text(
        f"alice:{passwd_hash('s3cret')}\n")
    set_params(node, smtp_auth=True, AUTH_LOGIN_also_without_TLS=True,
               auth_failrate=FAILRATE, tarpit="0.2 1 1")


def plain(user, password):
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def test_auth_brute_force_is_tarpitted_and_cut(node_factory):
    node = node_factory(setup=auth_setup)
    replies, seconds = [], []
    # Over several connections, as a brute forcer reconnects.
    for attempt in range(FAILRATE + 3):
        with smtp(node, source="127.0.0.2") as s:
            assert command(s, "EHLO client.example").startswith("250")
            started = time.monotonic()
            replies.append(command(s, f"AUTH PLAIN {plain('alice', f'guess{attempt}')}"))
            seconds.append(time.monotonic() - started)
    print("AUTH replies:", [r[:9] for r in replies])
    print("seconds per failed AUTH (tarpit):", [f"{x:.2f}" for x in seconds])
    assert all(r.startswith("535 5.7.8") for r in replies[:FAILRATE]), replies
    assert all(r.startswith("454 4.7.0") for r in replies[FAILRATE:]), replies
    # Cut: even the right password is refused from that address now.
    with smtp(node, source="127.0.0.2") as s:
        command(s, "EHLO client.example")
        reply = command(s, f"AUTH PLAIN {plain('alice', 's3cret')}")
        assert reply.startswith("454 4.7.0"), reply
    # Another address is not affected.
    with smtp(node, source="127.0.0.3") as s:
        command(s, "EHLO client.example")
        reply = command(s, f"AUTH PLAIN {plain('alice', 's3cret')}")
        assert reply.startswith("235 2.7.0"), reply
    node.wait_log(rf"AUTH refused: more than {FAILRATE} failures")


# --- privileges -------------------------------------------------------------------

def test_sendmail_is_not_setuid():
    for prog in ("sendmail", "mailq", "rmail", "zmailer"):
        path = BIN / prog
        if path.exists():
            mode = path.stat().st_mode
            assert not mode & (stat.S_ISUID | stat.S_ISGID), (prog, oct(mode))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_smtpserver_drops_privileges_after_binding(node_factory):
    """Started as root by hand (no supervisor deciding for it), the
    smtpserver binds a port below 1024, then becomes PARAM user with no
    capability left, in every thread, and takes mail."""
    user = pwd.getpwnam("nobody")
    port = privileged_free_port()

    def setup(n):
        set_params(n, user="nobody", BindPort=port)
        # The smtpserver writes public/, router/ and its rate database as
        # that user.
        subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}",
                        str(n.home)], check=True, timeout=COMMAND_TIMEOUT)
        n.home.parent.chmod(0o755)  # mkdtemp made it 0700

    node = node_factory(start=False, setup=setup)
    proc = subprocess.Popen([str(BIN / "smtpserver"), "-C", str(node.home)],
                            env=node.env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: node.pid("smtpserver") == proc.pid,
                 what="smtpserver ready")
        node.wait_log(r"running as user nobody")
        for task in os.listdir(f"/proc/{proc.pid}/task"):
            tid = f"{proc.pid}/task/{task}"
            uids = status_field(tid, "Uid").split()
            gids = status_field(tid, "Gid").split()
            assert uids == [str(user.pw_uid)] * 4, (task, uids)
            assert gids == [str(user.pw_gid)] * 4, (task, gids)
            for caps in ("CapEff", "CapPrm", "CapAmb"):
                assert status_field(tid, caps) == "0000000000000000", (task,
                                                                       caps)
        with smtp(node, port=port) as s:
            command(s, "EHLO client.example")
            reply = transaction(s, "a@localhost", ["root@localhost"],
                                "Subject: unprivileged\n\nunprivileged\n")
            assert reply.startswith("250"), reply
    finally:
        proc.terminate()
        proc.wait(timeout=COMMAND_TIMEOUT)
    assert proc.returncode == 0, proc.returncode


# --- no shell -------------------------------------------------------------------

def test_network_strings_never_reach_a_shell(node_factory, tmp_path):
    """The AUTH pipe program gets the user name as argv[1]: shell syntax in
    it stays text."""
    marker = tmp_path / "pwned"
    seen = tmp_path / "seen"
    prog = tmp_path / "auth.sh"
    prog.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$1\" >> {seen}\nexit 1\n")
    prog.chmod(0o755)

    def setup(n):
        set_params(n, SMTP_auth_pipe=str(prog), smtp_auth=True,
                   AUTH_LOGIN_also_without_TLS=True)

    node = node_factory(setup=setup)
    evil = [f"x;touch {marker}", f"$(touch {marker})", f"`touch {marker}`",
            f"x|touch {marker}", f"x&&touch {marker}"]
    with smtp(node) as s:
        command(s, "EHLO client.example")
        for user in evil:
            reply = command(s, f"AUTH PLAIN {plain(user, 'pw')}")
            assert reply.startswith("535"), reply
    assert not marker.exists()
    assert seen.read_text().splitlines() == evil
    # The same strings as HELO name, sender and recipient.
    with smtp(node) as s:
        command(s, f"EHLO $(touch {marker})")
        command(s, f"MAIL FROM:<`touch {marker}`@localhost>")
        command(s, f"RCPT TO:<root+$(touch {marker})@localhost>")
        command(s, "QUIT")
    # A pipe or a file as the recipient's local part: pipes and files are
    # targets of aliases and .forward files only, never of an address.
    target = tmp_path / "written"
    for rcpt in (f'"|touch {marker}"@localhost', f'"{target}"@localhost'):
        with smtp(node) as s:
            command(s, "EHLO client.example")
            print(rcpt, transaction(s, "a@localhost", [rcpt],
                                    "Subject: pipe\n\npipe\n"))
    wait_for(node.queue_empty, what="an empty queue")
    assert not marker.exists()
    assert not target.exists()


# --- garbage ------------------------------------------------------------------

def test_random_bytes_leave_the_server_serving(node):
    """A scanner's or a broken client's noise: every connection gets error
    replies or is closed, the server process stays the same, and the next
    client is served."""
    rng = random.Random(10)
    pid = node.pid("smtpserver")
    for i in range(20):
        noise = rng.randbytes(rng.choice((10, 1000, 70000)))
        if i % 2:
            noise = noise.replace(b"\n", b"").replace(b"\r", b"")  # one line
        with smtp(node) as s:
            try:
                s.sendall(noise + b"\r\nQUIT\r\n")
                got = b""
                while len(got) < 1 << 20:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
            except (socket.timeout, ConnectionError):
                pass
    assert node.pid("smtpserver") == pid and node.running("smtpserver")
    with smtp(node) as s:
        command(s, "EHLO client.example")
        assert transaction(s, "a@localhost", ["root@localhost"],
                           "Subject: after noise\n\nafter noise\n"
                           ).startswith("250")
    node.wait_mbox_message("root", "after noise")
