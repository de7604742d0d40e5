"""`zmailer init` for fleets and `zmailer cluster`, through the real binary.

Several inits sharing one --cluster-ca folder must give a working mutual
TLS fleet: one CA, every node certificate verifies against it (openssl
verify), names the node (CN and DNS SAN) and its advertise address (IP
SAN), and two nodes' certificates complete a mutual TLS handshake with
each other but not with a node of another CA. cluster.conf is checked by
`zmailer cluster`, which parses it before it looks for the agent.
"""

import os
import pathlib
import socket
import ssl
import stat
import subprocess
import threading

import pytest

from conftest import BIN, COMMAND_TIMEOUT, free_port

ZMAILER = str(BIN / "zmailer")
EX_UNAVAILABLE = 69
EX_CONFIG = 78


def zmailer(*args):
    return subprocess.run([ZMAILER, *args], capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT)


def init_member(tmp, name, port, cadir, *extra):
    """Runs `zmailer init` for fleet member `name`; returns its folder."""
    home = tmp / name
    r = zmailer("init", str(home), "--node-id", name, "--hostname",
                f"{name}.test.example", "--smtp-port", str(free_port()),
                "--gossip-listen", f"127.0.0.1:{port}",
                *(["--cluster-ca", str(cadir)] if cadir else []), *extra)
    assert r.returncode == 0, r.stderr
    return home


def openssl(*args):
    return subprocess.run(["openssl", *args], capture_output=True, text=True,
                          timeout=COMMAND_TIMEOUT)


def cert_text(path):
    r = openssl("x509", "-in", str(path), "-noout", "-text")
    assert r.returncode == 0, r.stderr
    return r.stdout


def tls_pair_handshake(server_home, client_home, client_ca=None):
    """A mutual TLS handshake on loopback between two nodes' cluster
    certificates (server requires the client's). True if both sides agree."""
    stls = server_home / "etc" / "tls"
    ctls = client_home / "etc" / "tls"
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.minimum_version = ssl.TLSVersion.TLSv1_2
    sctx.load_cert_chain(stls / "cluster-cert.pem", stls / "cluster-key.pem")
    sctx.load_verify_locations(stls / "cluster-ca.pem")
    sctx.verify_mode = ssl.CERT_REQUIRED
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.load_cert_chain(ctls / "cluster-cert.pem", ctls / "cluster-key.pem")
    cctx.load_verify_locations(client_ca or ctls / "cluster-ca.pem")

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(30)
    result = {}

    def serve():
        try:
            conn, _ = listener.accept()
            conn.settimeout(30)
            with sctx.wrap_socket(conn, server_side=True) as tls:
                result["client_cn"] = dict(
                    x[0] for x in tls.getpeercert()["subject"])["commonName"]
                tls.sendall(b"ok")
        except (OSError, ssl.SSLError) as e:
            result["server_error"] = str(e)

    t = threading.Thread(target=serve)
    t.start()
    try:
        with socket.create_connection(listener.getsockname(), timeout=30) as s:
            server_name = server_home.name  # the node id
            with cctx.wrap_socket(s, server_hostname=server_name) as tls:
                result["reply"] = tls.recv(2)
    except (OSError, ssl.SSLError) as e:
        result["client_error"] = str(e)
    t.join(timeout=60)
    listener.close()
    return result


@pytest.fixture
def tmp(tmp_path):
    return tmp_path


def test_two_inits_share_one_fleet_ca(tmp):
    cadir = tmp / "fleet-ca"
    p1, p2 = free_port(), free_port()
    n1 = init_member(tmp, "n1", p1, cadir, "--seed", f"127.0.0.1:{p2}")
    ca_cert = (cadir / "ca-cert.pem").read_bytes()
    n2 = init_member(tmp, "n2", p2, cadir, "--seed", f"127.0.0.1:{p1}",
                     "--seed-dns", "peers.test.example")

    # One CA, unchanged by the second init; its key is private.
    assert (cadir / "ca-cert.pem").read_bytes() == ca_cert
    assert stat.S_IMODE(os.stat(cadir / "ca-key.pem").st_mode) == 0o600
    assert "CA:TRUE" in cert_text(cadir / "ca-cert.pem")

    for home, port in ((n1, p1), (n2, p2)):
        tls = home / "etc" / "tls"
        assert (tls / "cluster-ca.pem").read_bytes() == ca_cert
        assert stat.S_IMODE(os.stat(tls / "cluster-key.pem").st_mode) == 0o600
        r = openssl("verify", "-CAfile", str(cadir / "ca-cert.pem"),
                    "-purpose", "sslclient", str(tls / "cluster-cert.pem"))
        assert r.returncode == 0 and ": OK" in r.stdout, r.stdout + r.stderr
        r = openssl("verify", "-CAfile", str(cadir / "ca-cert.pem"),
                    "-purpose", "sslserver", str(tls / "cluster-cert.pem"))
        assert r.returncode == 0, r.stdout + r.stderr
        text = cert_text(tls / "cluster-cert.pem")
        assert f"CN = {home.name}" in text
        assert f"DNS:{home.name}" in text
        assert "IP Address:127.0.0.1" in text

        conf = (home / "etc" / "cluster.conf").read_text()
        assert f"node-id {home.name}" in conf
        assert f"gossip-listen   127.0.0.1:{port}" in conf
        assert "tls-cert        $MAILVAR/tls/cluster-cert.pem" in conf
    assert f"seed            127.0.0.1:{p2}" in (
        n1 / "etc" / "cluster.conf").read_text()
    assert "seed-dns        peers.test.example" in (
        n2 / "etc" / "cluster.conf").read_text()

    # cluster.conf parses: `zmailer cluster` gets as far as the agent.
    r = zmailer("-C", str(n1), "cluster")
    assert r.returncode == EX_UNAVAILABLE, r.stderr
    assert "cluster agent is not running" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1

    # The two nodes talk mutual TLS with each other, both ways.
    for a, b in ((n1, n2), (n2, n1)):
        res = tls_pair_handshake(a, b)
        assert res.get("reply") == b"ok", res
        assert res.get("client_cn") == b.name


def test_another_fleet_is_refused(tmp):
    n1 = init_member(tmp, "n1", free_port(), tmp / "ca-a")
    other = init_member(tmp, "x1", free_port(), tmp / "ca-b")
    r = openssl("verify", "-CAfile", str(tmp / "ca-a" / "ca-cert.pem"),
                str(other / "etc" / "tls" / "cluster-cert.pem"))
    assert r.returncode != 0
    # x1 trusts fleet A's CA, but its own certificate is not from it.
    res = tls_pair_handshake(n1, other,
                             client_ca=tmp / "ca-a" / "ca-cert.pem")
    assert "reply" not in res, res


def test_parallel_inits_make_one_ca(tmp):
    cadir = tmp / "ca"
    procs = []
    for i in range(4):
        home = tmp / f"p{i}"
        procs.append((home, subprocess.Popen(
            [ZMAILER, "init", str(home), "--node-id", f"p{i}",
             "--hostname", f"p{i}.test.example", "--smtp-port",
             str(free_port()), "--gossip-listen", f"127.0.0.1:{free_port()}",
             "--cluster-ca", str(cadir)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    created = 0
    for home, p in procs:
        out, err = p.communicate(timeout=COMMAND_TIMEOUT)
        assert p.returncode == 0, err
        created += "created now" in out
    assert created == 1
    for home, _ in procs:
        r = openssl("verify", "-CAfile", str(cadir / "ca-cert.pem"),
                    str(home / "etc" / "tls" / "cluster-cert.pem"))
        assert r.returncode == 0, r.stdout + r.stderr


def test_own_pki_files_are_required(tmp):
    home = init_member(tmp, "n1", free_port(), None,
                       "--advertise", "127.0.0.2:7400")
    tls = home / "etc" / "tls"
    assert not (tls / "cluster-cert.pem").exists()
    conf = (home / "etc" / "cluster.conf").read_text()
    assert "advertise       127.0.0.2:7400" in conf
    r = zmailer("-C", str(home), "cluster")
    assert r.returncode == EX_CONFIG
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    # file:line of the tls-cert key, and the missing file.
    lineno = next(i for i, l in enumerate(conf.splitlines(), 1)
                  if l.startswith("tls-cert"))
    assert f"cluster.conf:{lineno}: tls-cert: cannot read {tls}/cluster-cert.pem" \
        in lines[0], lines[0]


def test_cluster_without_a_fleet(tmp):
    home = tmp / "solo"
    r = zmailer("init", str(home), "--node-id", "solo", "--hostname",
                "solo.test.example", "--smtp-port", str(free_port()))
    assert r.returncode == 0, r.stderr
    assert not (home / "etc" / "tls" / "cluster-cert.pem").exists()
    r = zmailer("-C", str(home), "cluster", "--json")
    assert r.returncode == EX_CONFIG
    assert "not in a fleet" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    # A bad line is named by file and line.
    conf = home / "etc" / "cluster.conf"
    conf.write_text(conf.read_text() + "fanout many\n")
    n = len(conf.read_text().splitlines())
    r = zmailer("-C", str(home), "cluster")
    assert r.returncode == EX_CONFIG
    assert f"cluster.conf:{n}: fanout needs a number" in r.stderr
    r = zmailer("-C", str(tmp / "nowhere"), "cluster")
    assert r.returncode == EX_CONFIG
    assert len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args, why", [
    (["--seed", "127.0.0.1:7400"], "--seed needs --gossip-listen"),
    (["--cluster-ca", "CA"], "--cluster-ca needs --gossip-listen"),
    (["--gossip-listen", "127.0.0.1"], "--gossip-listen: '127.0.0.1' is not host:port"),
    (["--gossip-listen", "0.0.0.0:7400"], "add --advertise"),
    (["--gossip-listen", "127.0.0.1:7400", "--advertise", "[::]:7400"],
     "--advertise must be an address peers can dial"),
    (["--gossip-listen", "127.0.0.1:7400", "--seed", "nope"],
     "--seed: 'nope' is not host:port"),
    (["--gossip-listen", "127.0.0.1:99999"], "is not a port"),
    (["--gossip-listen", "127.0.0.1:7400", "--seed-dns", "bad_name"],
     "--seed-dns 'bad_name' is not a DNS name"),
    (["--gossip-listen", "127.0.0.1:7400", "--node-id", "a_b"], "no '_'"),
    (["--gossip-listen"], "--gossip-listen"),
])
def test_init_misuse_is_one_line(tmp, args, why):
    home = tmp / "bad"
    r = zmailer("init", str(home), "--hostname", "bad.test.example", *args)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert why in lines[0], lines[0]
    # Nothing half-made is left behind.
    assert not (home / "etc" / "cluster.conf").exists()
    assert not (tmp / "CA").exists()
