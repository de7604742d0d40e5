"""The TLS floor of every TLS listener of a node (docs/reliability.md).

The smtpserver (STARTTLS and the implicit-TLS port), admind's HTTPS and
clusterd's gossip port (gRPC, mutual TLS):

- sslscan: SSLv2, SSLv3, TLS 1.0 and 1.1 are refused; every accepted suite
  is TLS 1.2/1.3, at least 128 bits, with no NULL, RC4, DES, EXPORT,
  anonymous, MD5, IDEA, SEED or PSK suite, and none of the TLS 1.2 suites
  is CBC (each is AES-GCM or ChaCha20-Poly1305);
- a Python client that offers only CBC suites in TLS 1.2 fails its
  handshake, and the listener serves the next client;
- an operator who lists CBC suites (smtpserver.conf `PARAM
  tls-cipher-list`, admin.conf `tls-cipher-list`) gets them: the same
  client then completes its handshake with a CBC suite (so the refusal
  above is the configuration, not the client).
"""

import re
import shutil
import socket
import ssl
import subprocess

import pytest

from conftest import COMMAND_TIMEOUT, free_port
from admin_util import AdminApi
from reliability_util import smtp
from smtpserver_util import client_context, command, set_params

HAVE_SSLSCAN = shutil.which("sslscan") is not None
WEAK = re.compile(r"NULL|RC4|RC2|DES|EXP|ADH|AECDH|anon|MD5|IDEA|SEED|PSK",
                  re.I)
AEAD = re.compile(r"GCM|CHACHA20|POLY1305|CCM", re.I)
# What an old client that knows no AEAD suite offers in TLS 1.2.
CBC_ONLY = "AES:CAMELLIA:!AESGCM:!AESCCM:!aNULL:!PSK:!SRP:!kRSAPSK"
# Operator opt-in used by the tests: AEAD first, then ECDHE CBC suites.
CBC_OPT_IN = "ECDHE+AESGCM:ECDHE+CHACHA20:ECDHE+AES"


def sslscan(target, *args):
    proc = subprocess.run(["sslscan", "--no-colour", *args, target],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=COMMAND_TIMEOUT)
    return proc.stdout.decode(errors="replace")


def check_scan(out, cbc_allowed=False, tls12_listed=True):
    """Asserts the floor on one sslscan report; returns the accepted suites
    as (protocol, bits, name). `tls12_listed`: sslscan lists the TLS 1.2
    suites (it cannot where a client certificate is required: it lists
    TLS 1.3 suites from the ServerHello alone, TLS 1.2 ones only after a
    whole handshake)."""
    for proto in ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"):
        m = re.search(rf"^{re.escape(proto)}\s+(enabled|disabled)", out, re.M)
        assert m, f"sslscan did not report {proto}:\n{out}"
        assert m.group(1) == "disabled", f"{proto} enabled:\n{out}"
    assert re.search(r"^TLSv1\.2\s+enabled", out, re.M), out
    ciphers = re.findall(
        r"^(?:Preferred|Accepted)\s+(\S+)\s+(\d+) bits\s+(\S+)", out, re.M)
    assert ciphers, out
    for proto, bits, name in ciphers:
        assert proto in ("TLSv1.2", "TLSv1.3"), (proto, name)
        assert int(bits) >= 128, (proto, bits, name)
        assert not WEAK.search(name), (proto, name)
        if proto == "TLSv1.2" and not cbc_allowed:
            assert AEAD.search(name), f"CBC suite {name} offered:\n{out}"
    if tls12_listed:
        assert any(p == "TLSv1.2" for p, _, _ in ciphers), out
    return ciphers


def cbc_client(cert=None, key=None):
    """A TLS 1.2 client that offers only CBC suites."""
    ctx = client_context(maximum=ssl.TLSVersion.TLSv1_2,
                         minimum=ssl.TLSVersion.TLSv1_2)
    ctx.set_ciphers(CBC_ONLY)
    names = [c["name"] for c in ctx.get_ciphers()
             if c["protocol"] == "TLSv1.2"]
    assert names and not any(AEAD.search(n) for n in names), names
    if cert:
        ctx.load_cert_chain(cert, key)
    return ctx


def handshake(ctx, port, smtp_node=None):
    """The cipher a TLS handshake with 127.0.0.1:port agrees on (after
    EHLO/STARTTLS when `smtp_node` is given), or raises ssl.SSLError."""
    if smtp_node is not None:
        raw = smtp(smtp_node)
        command(raw, "EHLO client.example")
        reply = command(raw, "STARTTLS")
        assert reply.startswith("220"), reply
    else:
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.cipher()[0]
    finally:
        raw.close()


def refused(ctx, port, smtp_node=None):
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        handshake(ctx, port, smtp_node)


# --- smtpserver ---------------------------------------------------------------

@pytest.mark.skipif(not HAVE_SSLSCAN, reason="sslscan not installed")
def test_smtpserver_offers_no_old_protocol_weak_or_cbc_suite(node_factory):
    smtps = free_port()
    node = node_factory(setup=lambda n: set_params(n, BindSmtpS=smtps))
    starttls = sslscan(f"127.0.0.1:{node.smtp_port}", "--starttls-smtp")
    implicit = sslscan(f"127.0.0.1:{smtps}")
    print(starttls)
    for out in (starttls, implicit):
        check_scan(out)

    # An old client with only CBC suites: no handshake, on either port.
    refused(cbc_client(), node.smtp_port, smtp_node=node)
    refused(cbc_client(), smtps)
    # The server serves on: a default client gets an AEAD suite, in TLS
    # 1.3 and in TLS 1.2.
    assert AEAD.search(handshake(client_context(), smtps))
    assert AEAD.search(handshake(
        client_context(maximum=ssl.TLSVersion.TLSv1_2), node.smtp_port,
        smtp_node=node))


def test_smtpserver_offers_cbc_only_when_the_operator_lists_it(node_factory):
    smtps = free_port()
    node = node_factory(setup=lambda n: set_params(
        n, BindSmtpS=smtps, tls_cipher_list=CBC_OPT_IN))
    name = handshake(cbc_client(), node.smtp_port, smtp_node=node)
    assert not AEAD.search(name), name
    assert handshake(cbc_client(), smtps) == name
    # TLS 1.3 and the AEAD suites are still there, and preferred.
    assert AEAD.search(handshake(
        client_context(maximum=ssl.TLSVersion.TLSv1_2), smtps))
    if HAVE_SSLSCAN:
        ciphers = check_scan(sslscan(f"127.0.0.1:{smtps}"), cbc_allowed=True)
        assert any(not AEAD.search(n) for p, _, n in ciphers
                   if p == "TLSv1.2"), ciphers


def test_smtpserver_refuses_to_start_with_a_cipher_list_of_nothing(
        node_factory):
    node = node_factory(start=False, setup=lambda n: set_params(
        n, tls_cipher_list="NO-SUCH-SUITE"))
    proc = node.start(check=False)
    assert proc.returncode != 0, proc.output
    assert "tls-cipher-list NO-SUCH-SUITE" in proc.output, proc.output


# --- admind (HTTPS) -----------------------------------------------------------

def https_node(node_factory, extra=""):
    def setup(n):
        with open(n.etc / "admin.conf", "a") as f:
            f.write("tls-cert tls/smtpserver-cert.pem\n"
                    "tls-key  tls/smtpserver-key.pem\n" + extra)
    node = node_factory(setup=setup)
    AdminApi(node, cafile=node.etc / "tls" / "smtpserver-cert.pem").wait_up()
    return node


@pytest.mark.skipif(not HAVE_SSLSCAN, reason="sslscan not installed")
def test_admind_https_offers_no_old_protocol_weak_or_cbc_suite(node_factory):
    node = https_node(node_factory)
    out = sslscan(f"127.0.0.1:{node.admin_port}")
    print(out)
    check_scan(out)
    refused(cbc_client(), node.admin_port)
    api = AdminApi(node, cafile=node.etc / "tls" / "smtpserver-cert.pem")
    assert api.get("/api/v1/node")[0] == 200


def test_admind_offers_cbc_only_when_the_operator_lists_it(node_factory):
    node = https_node(node_factory, f"tls-cipher-list {CBC_OPT_IN}\n")
    name = handshake(cbc_client(), node.admin_port)
    assert not AEAD.search(name), name


# --- clusterd (gRPC mutual TLS) -------------------------------------------------

@pytest.mark.skipif(not HAVE_SSLSCAN, reason="sslscan not installed")
def test_clusterd_gossip_offers_no_old_protocol_weak_or_cbc_suite(
        node_factory):
    cluster_util = pytest.importorskip("cluster_util")
    fleet = cluster_util.Fleet(node_factory, 1)
    try:
        port = fleet.ports[0]
        out = sslscan(f"127.0.0.1:{port}")
        print(out)
        check_scan(out, tls12_listed=False)
        tls = fleet.node(0).etc / "tls"
        cert, key = tls / "cluster-cert.pem", tls / "cluster-key.pem"
        # Even with the fleet's own certificate: no CBC handshake.
        refused(cbc_client(str(cert), str(key)), port)
        # The control (and sslscan's missing TLS 1.2 list): TLS 1.2 with an
        # AEAD suite and that certificate.
        ctx = client_context(maximum=ssl.TLSVersion.TLSv1_2)
        ctx.set_alpn_protocols(["h2"])
        ctx.load_cert_chain(str(cert), str(key))
        assert AEAD.search(handshake(ctx, port))
    finally:
        fleet.close()
