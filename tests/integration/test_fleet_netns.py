"""A real multi-host fleet (issue 8 item 6, issue 6's partition test): three
whole nodes, each in its own network namespace with its own address on a
bridge (netns_util.Fabric), a dnsmasq in the hub namespace serving the MX
records and the peer-discovery name (A records of all three, as a
Kubernetes headless Service does) that cluster.conf's seed-dns names, and
an SMTP sink in the hub.

One test walks the fleet's life, each stage named in its failure message:
gossip finds the peers by DNS; mail flows node to node and to the sink;
cutting n3's link partitions it, both sides keep accepting and
rate-limiting on their own view and take conflicting policy; restoring the
link heals it (everyone alive, one policy winner everywhere, the rate views
merged); SIGTERM on n2 drains it and its peers see it "left".

Every wait is a bounded poll; no test asserts a duration. Skipped, with the
reason, only where network namespaces cannot be made (CI runs as root).
"""

import json
import os
import signal
import smtplib
import tempfile

import pytest

from conftest import BIN, pid_alive, wait_for
from dns_util import host, mx
from netns_util import Fabric, netns_unavailable, sink_messages, wait_until

cluster_util = pytest.importorskip("cluster_util")

SMTP_PORT = 2525      # every node and the sink, each in its own namespace
GOSSIP_PORT = 7946
LIMIT = 6             # messages per window from the limited client
CLIENT = "127.0.0.2"  # the limited client: loopback alias in every host
CONVERGE = 90         # seconds for membership/state changes to spread

_NO_NETNS = netns_unavailable()
pytestmark = [
    pytest.mark.skipif(bool(_NO_NETNS), reason=_NO_NETNS or "-"),
    pytest.mark.skipif(not (BIN / "clusterd").exists(),
                       reason="clusterd is not built"),
]


class NetFleet:
    def __init__(self, node_factory, n=3):
        self.fabric = Fabric()
        self.work = tempfile.mkdtemp(prefix="zmnetns-", dir="/tmp")
        self.ca = cluster_util.make_ca(os.path.join(self.work, "ca"))
        self.hosts = [self.fabric.add_host(f"n{i + 1}") for i in range(n)]
        records = [host("peers.fleet.test", *[h.ip for h in self.hosts]),
                   host("sink.fleet.test", self.fabric.hub_ip),
                   mx("sink.test", "sink.fleet.test")]
        for h in self.hosts:
            records += [host(f"{h.name}.fleet.test", h.ip),
                        mx(f"{h.name}.fleet.test", f"{h.name}.fleet.test")]
        self.fabric.dnsmasq(self.work, records)
        self.sink = self.fabric.sink(self.work, SMTP_PORT)
        self.nodes = []
        for h in self.hosts:
            node = node_factory(start=False, node_id=h.name,
                                setup=self._configure(h),
                                init_args=("--smtp-address", "0.0.0.0"))
            node.smtp_port = SMTP_PORT
            self.fabric.place(node, h)
            proc = node.zmailer("newdb")
            assert proc.returncode == 0, proc.output
            self.nodes.append(node)
        for node in self.nodes:
            node.start()
        self.clients = {}

    def _configure(self, h):
        fabric = self.fabric

        def setup(node):
            etc = node.etc
            tls = etc / "tls"
            cluster_util.issue_cert(self.ca, tls, h.name, ip=h.ip)
            timers = "\n".join(f"{k} {v}" for k, v in
                               cluster_util.TEST_TIMERS.items())
            (etc / "cluster.conf").write_text(
                f"node-id {h.name}\n"
                f"gossip-listen {h.ip}:{GOSSIP_PORT}\n"
                f"seed-dns peers.fleet.test\n"
                f"tls-cert {tls}/cluster-cert.pem\n"
                f"tls-key {tls}/cluster-key.pem\n"
                f"tls-ca {tls}/cluster-ca.pem\n{timers}\n")
            (etc / "resolver.conf").write_text(
                f"nameserver {fabric.hub_ip}:53\ntimeout 1000\nattempts 2\n")
            (etc / "drain.conf").write_text("readiness-delay 0\n")
            text = (etc / "smtpserver.conf").read_text()
            text = text.replace(f"PARAM BindPort    {node.smtp_port}",
                                f"PARAM BindPort    {SMTP_PORT}")
            (etc / "smtpserver.conf").write_text(text)
            with open(etc / "smtp-policy.src", "a") as f:
                f.write(f"\n[{fabric.net}.0]/24  = _full_rights\n"
                        f"[{CLIENT}]/32  relaycustnet +  "
                        f"ratelimitmsgs {LIMIT}\n")
            with open(etc / "localnames", "a") as f:
                f.write(f"\n{h.name}.fleet.test\n")
            conf = etc / "scheduler.conf"
            conf.write_text(conf.read_text().replace(
                'command="smtp"', f'command="smtp -p {SMTP_PORT} -T 5"', 1))
        return setup

    def local(self, i):
        if i not in self.clients:
            self.clients[i] = cluster_util.LocalClient(self.nodes[i])
        return self.clients[i]

    def states(self, i):
        try:
            return self.local(i).states()
        except Exception:  # noqa: BLE001 - agent restarting
            return {}

    def wait_view(self, i, expected, stage):
        def ok():
            v = self.states(i)
            return all(v.get(n) == s for n, s in expected.items())
        wait_until(ok, CONVERGE,
                   f"[{stage}] n{i + 1} to see {expected} "
                   f"(sees {self.states(i)})")

    def send(self, i, rcpt, token, source=None):
        """(code, text) of one message submitted over SMTP to node i from
        inside its own host (from `source`, default its own address)."""
        h = self.hosts[i]
        try:
            with self.fabric.smtp(h, h.ip if source is None else "127.0.0.1",
                                  SMTP_PORT, source=source) as s:
                s.ehlo("client.fleet.test")
                s.sendmail("alice@fleet.test", [rcpt],
                           f"Subject: {token}\r\n\r\n{token}\r\n")
            return 250, ""
        except smtplib.SMTPRecipientsRefused as e:
            code, text = next(iter(e.recipients.values()))
            return code, text.decode(errors="replace")
        except smtplib.SMTPResponseException as e:
            return e.smtp_code, e.smtp_error.decode(errors="replace")

    def rate_view(self, i, key=f"ip4:{CLIENT}"):
        proc = self.nodes[i].zmailer("rates", "--json", key)
        if proc.returncode != 0:
            return 0
        for s in json.loads(proc.stdout)["sources"]:
            if s["key"] == key:
                return s["messages"]
        return 0

    def policy(self, i, subject):
        proc = self.nodes[i].zmailer("policy", "list", "--json")
        if proc.returncode != 0:
            return None
        for e in json.loads(proc.stdout):
            if e["subject"] == subject:
                return (e["action"], e.get("reason", ""), e["author"])
        return None

    def close(self):
        for c in self.clients.values():
            c.close()
        self.fabric.close()


@pytest.fixture
def netfleet(node_factory):
    fleets = []

    def make(n=3):
        f = NetFleet(node_factory, n)
        fleets.append(f)
        return f
    try:
        yield make
    finally:
        for f in fleets:
            f.close()


def fill_until_refused(fleet, i, stage):
    """Sends from the limited client to node i until it is refused;
    returns (admitted, refusal)."""
    admitted = 0
    for k in range(3 * LIMIT):
        code, text = fleet.send(i, f"root@n{i + 1}.fleet.test",
                                f"{stage}-{i}-{k}", source=CLIENT)
        if code != 250:
            return admitted, (code, text)
        admitted += 1
    raise AssertionError(f"[{stage}] n{i + 1} never refused the limited "
                         f"client ({admitted} admitted)")


def test_fleet_across_hosts_partition_heal_drain(netfleet):
    fleet = netfleet(3)
    n1, n2, n3 = fleet.nodes
    alive = {"n1": "ALIVE", "n2": "ALIVE", "n3": "ALIVE"}

    # 1. Gossip finds the peers by DNS (seed-dns, no seed addresses).
    for i in range(3):
        fleet.wait_view(i, alive, "discovery")

    # 2. Mail flows between the hosts (MX by DNS) and to the sink.
    for i, rcpt in ((0, "root@n2.fleet.test"), (1, "root@n3.fleet.test"),
                    (2, "root@n1.fleet.test")):
        code, text = fleet.send(i, rcpt, f"flow-token-{i}")
        assert code == 250, ("flow", i, code, text)
    n2.wait_mbox_message("root", "flow-token-0", timeout=CONVERGE)
    n3.wait_mbox_message("root", "flow-token-1", timeout=CONVERGE)
    n1.wait_mbox_message("root", "flow-token-2", timeout=CONVERGE)
    assert fleet.send(1, "carol@sink.test", "sink-token")[0] == 250
    wait_until(lambda: any("sink-token" in t
                           for _, t in sink_messages(fleet.sink)),
               CONVERGE, "[flow] the sink to get n2's message")
    assert ["carol@sink.test"] in [r for r, _ in sink_messages(fleet.sink)]

    # 3. Cut n3: each side sees the other dead and keeps working alone.
    fleet.fabric.cut(fleet.hosts[2])
    for i in (0, 1):
        fleet.wait_view(i, {"n1": "ALIVE", "n2": "ALIVE", "n3": "DEAD"},
                        "partition")
    fleet.wait_view(2, {"n1": "DEAD", "n2": "DEAD", "n3": "ALIVE"},
                    "partition")
    assert fleet.send(2, "root@n3.fleet.test", "cut-token-3")[0] == 250
    assert fleet.send(0, "root@n1.fleet.test", "cut-token-1")[0] == 250
    n3.wait_mbox_message("root", "cut-token-3", timeout=CONVERGE)
    n1.wait_mbox_message("root", "cut-token-1", timeout=CONVERGE)
    # Each side limits the client on what it can see: both admit LIMIT.
    major, refusal = fill_until_refused(fleet, 0, "cut-major")
    assert major == LIMIT and refusal[0] == 450, (major, refusal)
    minor, refusal = fill_until_refused(fleet, 2, "cut-minor")
    assert minor == LIMIT and refusal[0] == 450, (minor, refusal)
    # Conflicting policy for one subject on each side.
    add1 = n1.zmailer("policy", "add", "192.0.2.99", "reject", "--reason",
                      "from the majority", "--ttl", "1h")
    assert add1.returncode == 0, add1.output
    add3 = n3.zmailer("policy", "add", "192.0.2.99", "defer", "--reason",
                      "from the minority", "--ttl", "1h")
    assert add3.returncode == 0, add3.output
    wait_until(lambda: fleet.policy(1, "192.0.2.99") is not None, CONVERGE,
               "[partition] n2 to get n1's policy")
    assert fleet.policy(2, "192.0.2.99")[2] == "n3"

    # 4. Heal: everyone alive again, one policy winner, rate views merged.
    fleet.fabric.heal(fleet.hosts[2])
    for i in range(3):
        fleet.wait_view(i, alive, "heal")

    def one_winner():
        seen = {fleet.policy(i, "192.0.2.99") for i in range(3)}
        return len(seen) == 1 and None not in seen
    wait_until(one_winner, CONVERGE, "[heal] the policy to converge")
    winner = fleet.policy(0, "192.0.2.99")
    assert winner[2] in ("n1", "n3"), winner
    for i in range(3):
        wait_until(lambda i=i: fleet.rate_view(i) >= major + minor, CONVERGE,
                   f"[heal] n{i + 1} to count both sides' {major + minor} "
                   "messages of the limited client")
    # The merged view refuses the client everywhere.
    for i in range(3):
        code, _ = fleet.send(i, f"root@n{i + 1}.fleet.test", f"after-{i}",
                             source=CLIENT)
        assert code == 450, ("heal", i, code)

    # 5. SIGTERM on n2 drains it: its peers see it leave.
    pid = n2.pid("zmailer")
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not pid_alive(pid), timeout=120,
             what="[drain] n2's supervisor to finish")
    n2.started = False
    for i in (0, 2):
        fleet.wait_view(i, {"n2": "LEFT"}, "drain")
    assert (n2.home / "run" / "draining").exists()
