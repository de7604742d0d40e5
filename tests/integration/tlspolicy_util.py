"""Servers for the DANE and MTA-STS tests of the smtp agent.

- `LocalCa`: a CA (EC keys, openssl) that issues server certificates;
  `spki_sha256(cert)` is the DANE-EE "3 1 1" association data.
- `signed_dns` fixture: NSD serving DNSSEC-signed zones (keys made and
  zones signed with ldns-keygen/ldns-signzone) and unsigned ones on
  127.0.0.1:<free port>; `configure(node)` writes the node's
  etc/resolver.conf (the same server for c-ares and for libunbound, and
  the signed zones' DS records as the trust anchor).
- `PolicyServer`: an HTTPS server (http.server + ssl) serving
  /.well-known/mta-sts.txt, for MTA-STS.

Every wait is bounded; readiness is checked, not slept for.
"""

import hashlib
import http.server
import pathlib
import ssl
import subprocess
import threading
import time

import pytest

from conftest import free_port
from dns_util import DnsServer, _answers, server_factory

NSD = "/usr/sbin/nsd"
START_TIMEOUT = 30.0


def _openssl(*args, input=None):
    return subprocess.run(["openssl", *args], check=True, timeout=60,
                          input=input, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE).stdout


class LocalCa:
    """A test CA in `folder`; issue() makes certificates it signs."""

    def __init__(self, folder, name="zmnode tlspolicy test CA"):
        self.dir = pathlib.Path(folder)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key = self.dir / "ca.key"
        self.cert = self.dir / "ca.crt"
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                 str(self.key), "-out", str(self.cert), "-days", "2",
                 "-subj", f"/CN={name}")

    def issue(self, tag, names, days=2):
        """A server certificate for DNS `names`: (cert, key) paths."""
        key, csr = self.dir / f"{tag}.key", self.dir / f"{tag}.csr"
        crt, ext = self.dir / f"{tag}.crt", self.dir / f"{tag}.ext"
        ext.write_text("subjectAltName=" +
                       ",".join(f"DNS:{n}" for n in names) + "\n")
        _openssl("req", "-newkey", "ec", "-pkeyopt",
                 "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                 str(key), "-out", str(csr), "-subj", f"/CN={names[0]}")
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(self.cert),
                 "-CAkey", str(self.key), "-CAcreateserial", "-out",
                 str(crt), "-days", str(days), "-extfile", str(ext))
        return str(crt), str(key)


def self_signed(folder, tag, name):
    """A self-signed certificate for `name`: (cert, key) paths."""
    folder = pathlib.Path(folder)
    crt, key = folder / f"{tag}.crt", folder / f"{tag}.key"
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key),
             "-out", str(crt), "-days", "2", "-subj", f"/CN={name}",
             "-addext", f"subjectAltName=DNS:{name}")
    return str(crt), str(key)


def spki_sha256(cert):
    """SHA-256 of the certificate's SubjectPublicKeyInfo, in hex."""
    pub = _openssl("x509", "-in", str(cert), "-noout", "-pubkey")
    der = _openssl("pkey", "-pubin", "-outform", "DER", input=pub)
    return hashlib.sha256(der).hexdigest()


def cert_sha256(cert):
    """SHA-256 of the whole certificate (DER), in hex (selector 0)."""
    der = _openssl("x509", "-in", str(cert), "-outform", "DER")
    return hashlib.sha256(der).hexdigest()


class SignedDns(DnsServer):
    """NSD with `signed` zones (name -> record lines, signed) and
    `unsigned` ones. Record lines are zone-file lines relative to the
    zone ("mx IN A 127.0.0.1", "@ IN MX 10 mx"). stop() is DnsServer's."""

    def __init__(self, workdir, signed, unsigned=(), wrong_anchor=()):
        self.dir = pathlib.Path(workdir)
        self.port = free_port()
        self.proc = None
        self.trust_anchor = self.dir / "trust-anchor.ds"
        zones = []
        anchors = []
        for name, records in {**dict(signed), **dict(unsigned)}.items():
            text = (f"$ORIGIN {name}.\n$TTL 300\n"
                    f"@ IN SOA ns.{name}. hostmaster.{name}. 1 3600 600 "
                    f"86400 300\n@ IN NS ns.{name}.\nns IN A 127.0.0.1\n"
                    + "\n".join(records) + "\n")
            zf = self.dir / f"{name}.zone"
            zf.write_text(text)
            if name in dict(signed):
                ksk = self._run("ldns-keygen", "-a", "ECDSAP256SHA256", "-k",
                                name).strip()
                zsk = self._run("ldns-keygen", "-a", "ECDSAP256SHA256",
                                name).strip()
                self._run("ldns-signzone", zf.name, ksk, zsk)
                if name in wrong_anchor:
                    # A key that signed nothing: the zone validates bogus.
                    ksk = self._run("ldns-keygen", "-a", "ECDSAP256SHA256",
                                    "-k", name).strip()
                anchors.append((self.dir / f"{ksk}.ds").read_text())
                zf = self.dir / f"{name}.zone.signed"
            zones.append((name, zf.name))
        self.trust_anchor.write_text("".join(anchors))
        # libunbound forwarding here first asks ". NS": an unsigned root
        # zone answers it.
        (self.dir / "root.zone").write_text(
            "$ORIGIN .\n$TTL 300\n@ IN SOA ns.root. hostmaster.root. 1 3600 "
            "600 86400 300\n@ IN NS ns.root.\nns.root. IN A 127.0.0.1\n")
        zones.append((".", "root.zone"))
        conf = [
            "server:", "  ip-address: 127.0.0.1", f"  port: {self.port}",
            '  username: ""', '  chroot: ""', f'  zonesdir: "{self.dir}"',
            '  database: ""', f'  pidfile: "{self.dir}/nsd.pid"',
            f'  xfrdfile: "{self.dir}/xfrd.state"',
            f'  zonelistfile: "{self.dir}/zone.list"',
            f'  logfile: "{self.dir}/nsd.log"', "  server-count: 1",
            "  do-ip6: no", "remote-control:", "  control-enable: no"]
        for name, f in zones:
            conf += ["zone:", f'  name: "{name}"', f"  zonefile: {f}"]
        (self.dir / "nsd.conf").write_text("\n".join(conf) + "\n")
        self.probe = f"ns.{zones[0][0]}"

    def _run(self, *args):
        return subprocess.run(args, cwd=self.dir, check=True, timeout=60,
                              stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True).stdout

    def start(self):
        log = open(self.dir / "nsd.out", "ab")
        self.proc = subprocess.Popen(
            [NSD, "-d", "-c", str(self.dir / "nsd.conf")], stdout=log,
            stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(self.port, self.probe):
            if self.proc.poll() is not None:
                raise AssertionError(
                    "nsd exited: "
                    + (self.dir / "nsd.out").read_text(errors="replace"))
            if time.monotonic() >= deadline:
                raise AssertionError("nsd did not answer")
            time.sleep(0.05)
        return self

    def configure(self, node):
        """c-ares and libunbound both ask this NSD; the signed zones' DS
        records are the trust anchor."""
        (pathlib.Path(node.home) / "etc" / "resolver.conf").write_text(
            f"nameserver 127.0.0.1:{self.port}\ntimeout 1000\nattempts 2\n"
            f"dnssec-server 127.0.0.1:{self.port}\n"
            f"dnssec-trust-anchor {self.trust_anchor}\n"
            # the zones are under .test, which libunbound blocks unless
            # told otherwise
            "dnssec-unblock-zone test\n")


@pytest.fixture
def signed_dns():
    """Factory: signed_dns(signed, unsigned=(), wrong_anchor=()) ->
    started SignedDns."""
    yield from server_factory(SignedDns, "zmnsd-")


class PolicyServer:
    """HTTPS on 127.0.0.1:<free port> with (cert, key): GET
    /.well-known/mta-sts.txt answers `policy` (text/plain), or with
    `policy_for` ({domain: policy}) the policy of the domain the Host
    header names (mta-sts.DOMAIN); anything else 404. `requests` counts
    the policy fetches. While `gate` (a threading.Event) is clear, a
    fetch is held before it is answered (for at most two minutes)."""

    def __init__(self, cert, key, policy, policy_for=None):
        self.policy = policy
        self.policy_for = policy_for
        self.requests = 0
        self.gate = threading.Event()
        self.gate.set()
        self.port = free_port()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path != "/.well-known/mta-sts.txt":
                    self.send_error(404)
                    return
                outer.requests += 1
                outer.gate.wait(timeout=120)
                policy = outer.policy
                if outer.policy_for is not None:
                    name = (self.headers.get("Host") or "").split(":")[0]
                    policy = outer.policy_for.get(
                        name.removeprefix("mta-sts."))
                    if policy is None:
                        self.send_error(404)
                        return
                body = policy.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port),
                                                     Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket,
                                            server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


def sts_policy(mode, *mx, max_age=86400):
    return ("version: STSv1\r\n" + f"mode: {mode}\r\n"
            + "".join(f"mx: {m}\r\n" for m in mx) + f"max_age: {max_age}\r\n")


__all__ = ["LocalCa", "self_signed", "spki_sha256", "cert_sha256",
           "signed_dns", "SignedDns", "PolicyServer", "sts_policy"]
