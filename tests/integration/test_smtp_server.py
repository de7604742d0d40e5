"""The smtpserver daemon: listeners, TLS, AUTH backends, limits, reload."""

import base64
import os
import signal
import smtplib
import socket
import ssl

import pytest

from conftest import free_port, have_ipv6_loopback
from smtpserver_util import (client_context, command, connect,
                             make_ca_and_client, passwd_hash, read_reply,
                             set_params, starttls)

MSG = ("From: a@localhost\r\nTo: root@localhost\r\nSubject: {}\r\n\r\n"
       "body\r\n")


# --- TLS --------------------------------------------------------------------

@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_starttls_and_session_resumption(node, version):
    v = getattr(ssl.TLSVersion, version)
    ctx = client_context(maximum=v, minimum=v)
    with connect(node.smtp_port) as raw:
        tls = starttls(raw, ctx)
        assert tls.version() == version.replace("_", "."), tls.version()
        # TLS 1.3 tickets arrive after the handshake: the EHLO above read
        # them. The session is resumable now.
        session = tls.session
        assert command(tls, "QUIT").startswith("221")
        tls.close()
    assert session is not None
    with connect(node.smtp_port) as raw:
        tls = starttls(raw, ctx, session=session)
        assert tls.session_reused, "the TLS session was not resumed"
        assert command(tls, "QUIT").startswith("221")
        tls.close()
    node.wait_log(r"TLS from .*" + version.replace("_", ".") + r".*resumed")


def test_old_tls_versions_are_refused(node):
    ctx = client_context(maximum=ssl.TLSVersion.TLSv1_1,
                         minimum=ssl.TLSVersion.TLSv1)
    try:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    except ssl.SSLError:
        pytest.skip("this OpenSSL cannot offer TLS 1.1 at all")
    with connect(node.smtp_port) as raw:
        read_reply(raw)
        command(raw, "EHLO client.example")
        assert command(raw, "STARTTLS").startswith("220")
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            tls = ctx.wrap_socket(raw)
            command(tls, "EHLO client.example")


def test_starttls_discards_pipelined_plaintext(node):
    """STARTTLS injection: commands sent with STARTTLS are never run."""
    with connect(node.smtp_port) as raw:
        read_reply(raw)
        command(raw, "EHLO client.example")
        raw.sendall(b"STARTTLS\r\nMAIL FROM:<evil@example.com>\r\n")
        assert read_reply(raw).startswith("220")
        tls = client_context().wrap_socket(raw)
        reply = command(tls, "EHLO client.example")
        assert reply.startswith("250"), reply
        # Had the injected MAIL run, this would be a 503 (nested MAIL).
        reply = command(tls, "MAIL FROM:<good@localhost>")
        assert reply.startswith("250"), reply
        tls.close()


def test_smtps_and_submission_ports(node_factory):
    smtps, submission = free_port(), free_port()

    def setup(n):
        set_params(n, listen_ssmtp=smtps, BindSubmit=submission,
                   rcvd_tls_mode=True)

    node = node_factory(setup=setup)
    with smtplib.SMTP_SSL("127.0.0.1", smtps, timeout=60,
                          context=client_context()) as s:
        code, _ = s.ehlo("client.example")
        assert code == 250
        assert not s.has_extn("starttls")  # already under TLS
        assert s.sendmail("a@localhost", ["root@localhost"],
                          MSG.format("smtps-token")) == {}
    got = node.wait_mbox_message("root", "smtps-token")
    assert "TLS" in got.split("\n\n", 1)[0], got  # rcvd-tls-mode
    with smtplib.SMTP("127.0.0.1", submission, timeout=60) as s:
        code, _ = s.ehlo("client.example")
        assert code == 250
    node.wait_log(r"connect from .* to smtps")
    node.wait_log(r"connect from .* to submission")


def test_client_certificate_is_asked_for(node_factory, tmp_path):
    ca, cert, key = make_ca_and_client(tmp_path / "pki")

    def setup(n):
        set_params(n, tls_CAfile=str(ca), tls_ask_cert=1)

    node = node_factory(setup=setup)
    ctx = client_context()
    ctx.load_cert_chain(str(cert), str(key))
    with connect(node.smtp_port) as raw:
        tls = starttls(raw, ctx)
        command(tls, "QUIT")
        tls.close()
    node.wait_log(r"TLS from .*client .*CN ?= ?client\.example.* \(verified\)")
    # Without a certificate the handshake still succeeds (asked, not
    # required).
    with connect(node.smtp_port) as raw:
        tls = starttls(raw, client_context())
        command(tls, "QUIT")
        tls.close()


# --- AUTH -------------------------------------------------------------------

def test_auth_with_credentials_file(node_factory):
    def setup(n):
        (n.etc / "smtp-auth.passwd").write_text(
            f"# made with openssl passwd -6\nalice:{passwd_hash('s3cret')}\n")

    node = node_factory(setup=setup)
    with smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=60) as s:
        s.ehlo("client.example")
        assert not s.has_extn("auth"), "AUTH offered in the clear"
        s.starttls(context=client_context())
        s.ehlo("client.example")
        assert s.has_extn("auth")
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login("alice", "wrong")
        assert e.value.smtp_code == 535
        code, _ = s.login("alice", "s3cret")
        assert code == 235
        # Authenticated: may relay.
        assert s.sendmail("alice@localhost", ["someone@remote.example"],
                          MSG.format("auth-relay-token")) == {}
    node.wait_log(r"sasl_username=alice")


def test_auth_pipe_program(node_factory):
    def setup(n):
        prog = n.etc / "check-pw"
        prog.write_text("#!/bin/sh\nread pw\n"
                        "[ \"$1\" = bob ] && [ \"$pw\" = hunter2 ] && exit 0\n"
                        "[ \"$1\" = broken ] && exit 7\n"
                        "exit 1\n")
        prog.chmod(0o755)
        set_params(n, SMTP_auth_pipe="$MAILVAR/check-pw",
                   AUTH_LOGIN_also_without_TLS=True)

    node = node_factory(setup=setup)
    with connect(node.smtp_port) as s:
        read_reply(s)
        assert "AUTH" in command(s, "EHLO client.example")
        token = base64.b64encode(b"\0bob\0wrong").decode()
        assert command(s, f"AUTH PLAIN {token}").startswith("535")
        token = base64.b64encode(b"\0broken\0x").decode()
        assert command(s, f"AUTH PLAIN {token}").startswith("454")
        token = base64.b64encode(b"\0bob\0hunter2").decode()
        assert command(s, f"AUTH PLAIN {token}").startswith("235")
        command(s, "QUIT")


def test_bad_auth_file_refuses_start(node_factory):
    def setup(n):
        (n.etc / "smtp-auth.passwd").write_text("alice:plaintext\n")

    node = node_factory(start=False, setup=setup)
    proc = node.start(check=False)
    assert proc.returncode != 0, proc.output
    assert "smtp-auth.passwd:1:" in proc.output, proc.output


# --- limits -----------------------------------------------------------------

def test_max_same_ip_source(node_factory):
    node = node_factory(setup=lambda n: set_params(n, MaxSameIpSource=2))
    held = [connect(node.smtp_port) for _ in range(2)]
    try:
        for s in held:
            assert read_reply(s).startswith("220")
        with connect(node.smtp_port) as third:
            reply = read_reply(third)
            assert reply.startswith("421 4.7.0"), reply
    finally:
        for s in held:
            s.close()
    node.wait_log(r"MaxSameIpSource reached")


def test_max_parallel_connections(node_factory):
    node = node_factory(
        setup=lambda n: set_params(n, MaxParallelConnections=1))
    with connect(node.smtp_port) as first:
        assert read_reply(first).startswith("220")
        with connect(node.smtp_port) as second:
            reply = read_reply(second)
            assert reply.startswith("421 4.7.0"), reply


def test_idle_timeout_says_421(node_factory):
    node = node_factory(setup=lambda n: set_params(n, idle_timeout=1))
    with connect(node.smtp_port) as s:
        assert read_reply(s).startswith("220")
        reply = read_reply(s)  # nothing sent: the server gives up
        assert reply.startswith("421 4.4.2"), reply
        assert s.recv(100) == b""


def test_data_timeout_leaves_nothing_queued(node_factory):
    node = node_factory(setup=lambda n: set_params(n, data_timeout=1))
    with connect(node.smtp_port) as s:
        read_reply(s)
        command(s, "EHLO client.example")
        assert command(s, "MAIL FROM:<a@localhost>").startswith("250")
        assert command(s, "RCPT TO:<root@localhost>").startswith("250")
        assert command(s, "DATA").startswith("354")
        s.sendall(b"Subject: half\r\n\r\nno end")
        reply = read_reply(s)
        assert reply.startswith("421 4.4.2"), reply
    node.wait_log(r"timeout after 1s in DATA")
    node.wait_log(r"disconnect from unknown\[127\.0\.0\.1\]")
    assert not node.spool_files("public")
    assert not node.spool_files("router")


def test_min_availspace_refuses_mail(node_factory):
    # A threshold no file system meets: 2^40 KiB.
    node = node_factory(
        setup=lambda n: set_params(n, min_availspace=2 ** 40))
    with connect(node.smtp_port) as s:
        read_reply(s)
        command(s, "EHLO client.example")
        reply = command(s, "MAIL FROM:<a@localhost>")
        assert reply.startswith("452 4.3.1"), reply
        # The session goes on.
        assert command(s, "NOOP").startswith("250")


def test_tarpit_still_answers(node_factory):
    node = node_factory(setup=lambda n: set_params(n, tarpit="0.05 1 0.2"))
    with connect(node.smtp_port) as s:
        read_reply(s)
        command(s, "EHLO client.example")
        for _ in range(3):
            assert command(s, "BOGUS").startswith("500")
        assert command(s, "NOOP").startswith("250")


# --- configuration ----------------------------------------------------------

def test_broken_config_refuses_start(node_factory):
    def setup(n):
        set_params(n, tls_ask_cert="perhaps")

    node = node_factory(start=False, setup=setup)
    proc = node.start(check=False)
    assert proc.returncode != 0, proc.output
    assert "smtpserver.conf:" in proc.output, proc.output
    assert "tls-ask-cert" in proc.output, proc.output


def test_reload_keeps_running_sessions(node):
    old = connect(node.smtp_port)
    try:
        assert read_reply(old).startswith("220")
        assert command(old, "EHLO client.example").startswith("250")
        set_params(node, hdr220="%H reloaded-banner-token")
        os.kill(node.pid("smtpserver"), signal.SIGHUP)
        node.wait_log(r"configuration reloaded")
        with connect(node.smtp_port) as fresh:
            assert "reloaded-banner-token" in read_reply(fresh)
        # The old session goes on with its old configuration.
        assert command(old, "MAIL FROM:<a@localhost>").startswith("250")
        assert command(old, "RCPT TO:<root@localhost>").startswith("250")
        assert command(old, "DATA").startswith("354")
        old.sendall(MSG.format("after-reload-token").encode() + b".\r\n")
        assert read_reply(old).startswith("250")
    finally:
        old.close()
    node.wait_mbox_message("root", "after-reload-token")




@pytest.mark.skipif(not have_ipv6_loopback(), reason="no ::1 here")
def test_ipv6_bind_address(node_factory):
    node = node_factory(
        setup=lambda n: set_params(n, BindAddress="[IPv6.::1]"))
    with connect(node.smtp_port, host="::1", family=socket.AF_INET6) as s:
        assert read_reply(s).startswith("220")
        assert command(s, "QUIT").startswith("221")
    with connect(node.smtp_port) as s:  # IPv4 still there
        assert read_reply(s).startswith("220")
    node.wait_log(r"connect from unknown\[::1\]")


# --- durable accept ---------------------------------------------------------

def expected_batch_flush(folder):
    """What the smtpserver should pick for `folder`, found independently:
    /proc/self/mountinfo names the file system and its device, and an
    ext4 mount with a journal lists a data= mode in /proc/fs/ext4."""
    dev = os.stat(folder).st_dev
    want = f"{os.major(dev)}:{os.minor(dev)}"
    fstype = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[2] == want:
                fstype = fields[fields.index("-") + 1]
    if fstype == "ext4":
        name = os.path.basename(os.path.realpath(f"/sys/dev/block/{want}"))
        try:
            with open(f"/proc/fs/ext4/{name}/options") as f:
                if "data=" in f.read():
                    return "fsync of router/"
        except OSError:
            pass
    return "syncfs"


def test_startup_log_names_the_group_commit_flush(node):
    m = node.wait_log(r"listening on .*; group commit: (.*) per batch")
    assert m.group(1) == expected_batch_flush(node.spool / "router")
