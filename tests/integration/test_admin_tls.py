"""TLS on the scheduler's gRPC admin listener (PARAMgrpcaddr with
PARAMgrpccert/PARAMgrpckey, docs/admin-protocol.md).

Certificates come from a CA the test makes. `mailq -p ... --cafile`
verifies the scheduler's certificate; a client that trusts another CA, and
a plaintext client, fail with a one-line reason. TLS below 1.2 and a
non-AEAD TLS 1.2 suite are refused. A broken PARAMgrpc* setting is a
`scheduler.conf:LINE` error at start, and on reload the old configuration
(and listener) stays.
"""

import os
import pathlib
import signal
import socket
import ssl

import pytest

from conftest import free_port, wait_for
from sink_util import make_ca


def tls_conf(n, port, cert, key):
    conf = os.path.join(n.etc, "scheduler.conf")
    with open(conf) as f:
        text = f.read()
    lines = [line for line in text.splitlines(keepends=True)
             if not line.startswith("PARAMgrpc")]
    head = f'PARAMgrpcaddr = "TCP:127.0.0.1:{port}"\n'
    if cert:
        head += f'PARAMgrpccert = "{cert}"\n'
    if key:
        head += f'PARAMgrpckey = "{key}"\n'
    with open(conf, "w") as f:
        f.write(head + "".join(lines))


@pytest.fixture
def tls(tmp_path):
    ca, cert, key = make_ca(tmp_path / "ca")
    other_ca, _, _ = make_ca(tmp_path / "other")
    return {"ca": ca, "cert": cert, "key": key, "other_ca": other_ca}


@pytest.fixture
def port():
    return free_port()


@pytest.fixture
def node(node_factory, tls, port):
    return node_factory(
        setup=lambda n: tls_conf(n, port, tls["cert"], tls["key"]))


def mailq_tls(node, port, *args):
    return node.mailq("-QQ", "-p", f"127.0.0.1:{port}", *args)


def handshake(port, **ctx_args):
    """A TLS handshake with the listener; the version, or the SSLError."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    if "ciphers" in ctx_args:
        ctx.set_ciphers(ctx_args["ciphers"])
    ctx.minimum_version = ctx_args.get("minimum", ssl.TLSVersion.TLSv1_2)
    ctx.maximum_version = ctx_args.get("maximum", ssl.TLSVersion.TLSv1_3)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                return s.version()
        except (ssl.SSLError, OSError) as e:
            return e


def test_mailq_over_tls(node, tls, port):
    ok = mailq_tls(node, port, "--cafile", tls["ca"])
    assert ok.returncode == 0, ok.output
    assert "Msgs: 0 " in ok.stdout, ok.output


def test_untrusted_ca_and_plaintext_fail_with_one_line(node, tls, port):
    wrong = mailq_tls(node, port, "--cafile", tls["other_ca"])
    assert wrong.returncode == 69, wrong.output
    assert wrong.stdout == "", wrong.output
    assert wrong.stderr.count("\n") == 1, wrong.output
    assert f"TLS handshake with 127.0.0.1:{port} failed" in wrong.stderr, \
        wrong.output
    plain = mailq_tls(node, port)
    assert plain.returncode == 69, plain.output
    assert plain.stderr.count("\n") == 1, plain.output
    assert f"no answer from the scheduler at 127.0.0.1:{port}" in \
        plain.stderr, plain.output
    # The UNIX socket stays plain (and local).
    local = node.mailq("-QQ")
    assert local.returncode == 0, local.output


def test_tls_floor(node, port):
    assert handshake(port) in ("TLSv1.2", "TLSv1.3")
    assert handshake(port, maximum=ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    old = handshake(port, minimum=ssl.TLSVersion.TLSv1,
                    maximum=ssl.TLSVersion.TLSv1_1,
                    ciphers="DEFAULT:@SECLEVEL=0")
    assert isinstance(old, Exception), old
    cbc = handshake(port, maximum=ssl.TLSVersion.TLSv1_2,
                    ciphers="AES128-SHA:ECDHE-RSA-AES128-SHA")
    assert isinstance(cbc, Exception), cbc


def test_broken_setting_refuses_start(node_factory, tls, port):
    n = node_factory(start=False,
                     setup=lambda n: tls_conf(n, port, tls["cert"], ""))
    r = n.run("scheduler", "-C", n.home)
    assert r.returncode != 0, r.output
    assert "scheduler.conf:2: PARAMgrpccert without PARAMgrpckey" in \
        r.output, r.output
    tls_conf(n, port, tls["cert"], "/nonexistent/key.pem")
    r = n.run("scheduler", "-C", n.home)
    assert r.returncode != 0, r.output
    assert "scheduler.conf:3: PARAMgrpckey: " in r.output, r.output
    # A key that is not the certificate's.
    tls_conf(n, port, tls["cert"],
             str(pathlib.Path(tls["other_ca"]).parent / "srv.key"))
    r = n.run("scheduler", "-C", n.home)
    assert r.returncode != 0, r.output
    assert "is not the key of" in r.output, r.output


def test_reload_keeps_the_old_listener(node, tls, port):
    tls_conf(node, port, tls["cert"], "/nonexistent/key.pem")
    os.kill(node.pid("scheduler"), signal.SIGHUP)
    node.wait_log(r"reload refused, keeping the old configuration: "
                  r".*scheduler\.conf:3: PARAMgrpckey: ")
    ok = mailq_tls(node, port, "--cafile", tls["ca"])
    assert ok.returncode == 0, ok.output
    # A good reload without TLS reopens the listener plain.
    tls_conf(node, port, "", "")
    os.kill(node.pid("scheduler"), signal.SIGHUP)
    node.wait_log(r"admin gRPC reopened on 127\.0\.0\.1:\d+; "
                  r"calls on 127\.0\.0\.1:\d+ end within \d+ s$")
    plain = wait_for(lambda: (lambda p: p if p.returncode == 0 else None)(
        mailq_tls(node, port)), what="plaintext mailq after the reload")
    assert "Msgs: 0 " in plain.stdout, plain.output
