"""Fleets of zmnode nodes on loopback for the cluster tests.

A fleet is N nodes made by the `node_factory` fixture (conftest.py), each
with an etc/cluster.conf naming its gossip address on 127.0.0.1, the first
node as seed, and a certificate from one fleet CA made by the test with
openssl (CN and DNS SAN = node id, IP SAN 127.0.0.1).

    fleet = Fleet(node_factory, 3)          # init + cluster.conf + start
    fleet.wait_converged()                  # everyone sees everyone alive
    fleet.local(0).policy_add("192.0.2.7", "REJECT", reason="spam")
    wait_for(lambda: fleet.local(2).policy_list(), what="policy on n3")

`local(i)` talks to node i's cluster agent over its local service
(run/cluster.sock) with Python gRPC; the messages come from
proto/zmnode/cluster/v1/*.proto compiled with protoc once per test run.
Nodes can run the whole node (`zmailer start`, the supervisor runs
clusterd) or only their cluster agent (`agents_only=True`: lighter, for
bigger fleets). Waiting is by polling with bounds (`wait_for`).
"""

import importlib
import os
import pathlib
import signal
import subprocess
import sys
import tempfile

import pytest

from conftest import BIN, COMMAND_TIMEOUT, DEFAULT_WAIT, REPO, free_port, \
    pid_alive, wait_for

_PB = None
LSAN_SUPP = pathlib.Path(__file__).resolve().parent / "lsan.supp"


def pb():
    """The generated message modules (state_pb2, peer_pb2, local_pb2)."""
    global _PB
    if _PB is None:
        out = pathlib.Path(tempfile.mkdtemp(prefix="zm-pb-"))
        protos = REPO / "proto"
        files = sorted(str(p.relative_to(protos))
                       for p in (protos / "zmnode/cluster/v1").glob("*.proto"))
        subprocess.run(["protoc", f"--proto_path={protos}",
                        f"--python_out={out}", *files], check=True,
                       timeout=COMMAND_TIMEOUT)
        sys.path.insert(0, str(out))
        _PB = {name: importlib.import_module(f"zmnode.cluster.v1.{name}_pb2")
               for name in ("state", "peer", "local")}
    return _PB


# ----- certificates ---------------------------------------------------------

def _openssl(*args, cwd):
    proc = subprocess.run(["openssl", *args], cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=COMMAND_TIMEOUT)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")


def make_ca(directory, name="zmnode test fleet CA"):
    """A CA in `directory` (ca-cert.pem, ca-key.pem); returns the folder."""
    d = pathlib.Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
             "-subj", f"/CN={name}", "-keyout", "ca-key.pem",
             "-out", "ca-cert.pem", cwd=d)
    return d


def issue_cert(ca_dir, out_dir, node_id, ip="127.0.0.1"):
    """A certificate for `node_id` signed by the CA in `ca_dir`:
    out_dir/{cluster-cert,cluster-key,cluster-ca}.pem."""
    ca = pathlib.Path(ca_dir)
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ext = out / f"{node_id}.ext"
    ext.write_text(f"subjectAltName=DNS:{node_id},IP:{ip}\n"
                   "extendedKeyUsage=serverAuth,clientAuth\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-subj",
             f"/CN={node_id}", "-keyout", "cluster-key.pem",
             "-out", f"{node_id}.csr", cwd=out)
    _openssl("x509", "-req", "-in", f"{node_id}.csr", "-CA",
             str(ca / "ca-cert.pem"), "-CAkey", str(ca / "ca-key.pem"),
             "-CAcreateserial", "-days", "2", "-extfile", str(ext),
             "-out", "cluster-cert.pem", cwd=out)
    (out / "cluster-ca.pem").write_bytes((ca / "ca-cert.pem").read_bytes())
    os.chmod(out / "cluster-key.pem", 0o600)
    return out


# ----- the local service -----------------------------------------------------

class LocalClient:
    """The local service of one node's cluster agent (local.proto)."""

    def __init__(self, node, timeout=10):
        import grpc  # Debian python3-grpcio
        self._grpc = grpc
        self.node = node
        self.timeout = timeout
        self.channel = grpc.insecure_channel(
            f"unix:{node.home}/run/cluster.sock")
        self.m = pb()

    def close(self):
        self.channel.close()

    def _call(self, method, request, reply_cls, timeout=None, stream=False):
        path = f"/zmnode.cluster.v1.Local/{method}"
        make = self.channel.unary_stream if stream else self.channel.unary_unary
        fn = make(path, request_serializer=lambda r: r.SerializeToString(),
                  response_deserializer=reply_cls.FromString)
        return fn(request, timeout=timeout or self.timeout)

    def members(self):
        """{node_id: MemberView} as this agent sees the fleet."""
        loc = self.m["local"]
        reply = self._call("Members", loc.MembersRequest(), loc.MembersReply)
        return {v.member.node_id: v for v in reply.members}

    def states(self):
        """{node_id: "ALIVE"/"SUSPECT"/"DEAD"/"LEFT"}."""
        peer = self.m["peer"]
        return {n: peer.MemberState.Name(v.member.state).replace(
            "MEMBER_STATE_", "") for n, v in self.members().items()}

    def policy_add(self, subject, action, reason="", ttl=0, rate_class=""):
        loc, st = self.m["local"], self.m["state"]
        req = loc.PolicyAddRequest(
            subject=subject, action=st.PolicyAction.Value(
                "POLICY_ACTION_" + action), reason=reason, ttl_seconds=ttl,
            rate_class=rate_class)
        return self._call("PolicyAdd", req, loc.PolicyReply).entries

    def policy_delete(self, subject):
        loc = self.m["local"]
        return self._call("PolicyDelete",
                          loc.PolicyDeleteRequest(subject=subject),
                          loc.PolicyReply).entries

    def policy_list(self):
        loc = self.m["local"]
        return list(self._call("PolicyList", loc.PolicyListRequest(),
                               loc.PolicyReply).entries)

    def start_etrn(self, domain, ttl=0):
        loc = self.m["local"]
        return self._call("StartEtrn", loc.StartEtrnRequest(
            domain=domain, ttl_seconds=ttl), loc.StartEtrnReply)

    def etrn_status(self, request_id, wait_ms=0):
        loc = self.m["local"]
        return self._call("EtrnStatus", loc.EtrnStatusRequest(
            request_id=request_id, wait_ms=wait_ms), loc.EtrnStatusReply,
            timeout=self.timeout + wait_ms / 1000)

    def report_rates(self, slots):
        loc, st = self.m["local"], self.m["state"]
        req = loc.ReportRatesRequest(slots=[st.RateSlot(**s) for s in slots])
        return self._call("ReportRates", req, loc.ReportRatesReply)

    def fleet_rates(self, key="", limit=20):
        loc = self.m["local"]
        return self._call("FleetRates", loc.FleetRatesRequest(
            key=key, limit=limit), loc.FleetRatesReply)


# ----- fleets ---------------------------------------------------------------

# Fast timers for tests (cluster.conf keys; docs/cluster.md).
TEST_TIMERS = {
    "gossip-interval": "100ms",
    "probe-interval": "300ms",
    "probe-timeout": "150ms",
    "suspicion-min": "1s",
    "suspicion-max": "4s",
    "seed-refresh": "1s",
}


def write_cluster_conf(node, node_id, port, seeds, tls_dir, extra=None):
    lines = [f"node-id {node_id}",
             f"gossip-listen 127.0.0.1:{port}"]
    lines += [f"seed {s}" for s in seeds]
    lines += [f"tls-cert {tls_dir}/cluster-cert.pem",
              f"tls-key {tls_dir}/cluster-key.pem",
              f"tls-ca {tls_dir}/cluster-ca.pem"]
    for k, v in {**TEST_TIMERS, **(extra or {})}.items():
        lines.append(f"{k} {v}")
    (node.etc / "cluster.conf").write_text("\n".join(lines) + "\n")


class Fleet:
    """N nodes n1..nN on loopback, all seeded with n1 (see module doc)."""

    def __init__(self, node_factory, n, agents_only=False, start=True,
                 extra_conf=None, setup=None):
        self.node_factory = node_factory
        self.agents_only = agents_only
        self.extra_conf = extra_conf
        self.setup = setup
        self.ca = make_ca(tempfile.mkdtemp(prefix="zm-ca-", dir="/tmp"))
        self.ports = []
        self.ids = []
        self.nodes = []
        self.agents = {}  # node_id -> Popen (agents_only)
        self._clients = {}
        for i in range(n):
            self.add(f"n{i + 1}", start=False)
        if start:
            for i in range(n):
                self.start(i)

    def add(self, node_id, ca=None, start=True):
        """One more node seeded with n1 (the first has no seed); its
        certificate comes from `ca` (a make_ca folder), default the
        fleet's. Returns its index."""
        port = free_port()
        seeds = [f"127.0.0.1:{self.ports[0]}"] if self.ports else []

        def configure(node):
            tls = node.etc / "tls"
            issue_cert(ca or self.ca, tls, node_id)
            write_cluster_conf(node, node_id, port, seeds, tls,
                               self.extra_conf)
            if self.setup:
                self.setup(node)
        node = self.node_factory(start=False, node_id=node_id,
                                 setup=configure)
        node.gossip_port = port
        # gRPC's leak of in-flight TLS handshakes at exit (lsan.supp).
        opts = node.env.get("LSAN_OPTIONS", "")
        node.env["LSAN_OPTIONS"] = ((opts + ":" if opts else "") +
                                    f"suppressions={LSAN_SUPP}")
        self.nodes.append(node)
        self.ports.append(port)
        self.ids.append(node_id)
        if start:
            self.start(len(self.nodes) - 1)
        return len(self.nodes) - 1

    def __len__(self):
        return len(self.nodes)

    def node(self, i):
        return self.nodes[i]

    def start(self, i):
        node = self.nodes[i]
        if not self.agents_only:
            node.start()
            wait_for(lambda: node.running("clusterd"),
                     what=f"clusterd of {node.node_id}")
        else:
            (node.home / "log").mkdir(exist_ok=True)
            err = open(node.home / "log" / "clusterd.stderr", "ab")
            self.agents[node.node_id] = subprocess.Popen(
                [str(BIN / "clusterd"), "-C", str(node.home)],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                env=node.env, cwd=str(node.home), start_new_session=True)
            err.close()
            node.started = True
        wait_for(lambda: (node.home / "run" / "clusterd.pid").exists(),
                 what=f"clusterd of {node.node_id} ready")

    def agent_pid(self, i):
        return self.nodes[i].pid("clusterd")

    def kill(self, i):
        """kill -9 of node i's cluster agent; returns its pid."""
        pid = self.agent_pid(i)
        os.kill(pid, signal.SIGKILL)
        proc = self.agents.pop(self.nodes[i].node_id, None)
        if proc:
            proc.wait(timeout=COMMAND_TIMEOUT)
        wait_for(lambda: not pid_alive(pid), what=f"clusterd {pid} gone")
        return pid

    def stop_agent(self, i):
        """SIGTERM to node i's agent (a graceful leave), waits for its end."""
        pid = self.agent_pid(i)
        proc = self.agents.pop(self.nodes[i].node_id, None)
        os.kill(pid, signal.SIGTERM)
        if proc:
            proc.wait(timeout=COMMAND_TIMEOUT)
        wait_for(lambda: not pid_alive(pid), what=f"clusterd {pid} stopped")

    def local(self, i):
        node_id = self.ids[i]
        if node_id not in self._clients:
            self._clients[node_id] = LocalClient(self.nodes[i])
        return self._clients[node_id]

    def states(self, i):
        """Node i's view, {node_id: state}; {} while its agent is not up."""
        try:
            return self.local(i).states()
        except Exception:  # noqa: BLE001 - not up yet, or restarting
            return {}

    def wait_view(self, i, expected, timeout=DEFAULT_WAIT):
        """Waits until node i sees each node of `expected` in that state."""
        def ok():
            view = self.states(i)
            return view if all(view.get(n) == s
                               for n, s in expected.items()) else None
        return wait_for(ok, timeout,
                        what=f"{self.ids[i]} to see {expected}")

    def wait_converged(self, among=None, timeout=DEFAULT_WAIT):
        """Waits until every node of `among` (indexes; default all) sees
        every node of `among` alive."""
        among = list(range(len(self))) if among is None else among
        want = {self.ids[j]: "ALIVE" for j in among}
        for i in among:
            self.wait_view(i, want, timeout)

    def close(self):
        for c in self._clients.values():
            c.close()
        self._clients.clear()
        for node_id, proc in list(self.agents.items()):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=30)
        self.agents.clear()


@pytest.fixture
def fleet_factory(node_factory):
    """Makes fleets (`fleet_factory(n, **kw)` -> Fleet) and closes them all
    at the end of the test."""
    fleets = []

    def make(n, **kw):
        f = Fleet(node_factory, n, **kw)
        fleets.append(f)
        return f

    yield make
    for f in fleets:
        f.close()
