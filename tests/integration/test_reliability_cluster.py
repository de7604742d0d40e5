"""Cluster faults with real processes (issue 10 item 6, docs/reliability.md):
a peer that sends garbage to the gossip port, a node whose clock runs far
ahead, and a restart of every node in the middle of a rate window. No
crash, no lost mail, limits and policy converge.

Fleets are whole nodes on loopback (cluster_util.Fleet). The skewed clock
is clusterd's test knob ZM_TEST_CLOCK_OFFSET_MS. Every wait is a bounded
poll; no test asserts a duration.
"""

import json
import random
import socket
import ssl

import pytest

from conftest import BIN, pid_alive, wait_for

cluster_util = pytest.importorskip("cluster_util")
fleet_factory = cluster_util.fleet_factory  # the fixture

pytestmark = pytest.mark.skipif(not (BIN / "clusterd").exists(),
                                reason="clusterd is not built")

LIMIT = 6
SOURCE = "127.0.0.2"
SOURCE_KEY = f"ip4:{SOURCE}"
SKEW_MS = 10 * 60 * 1000  # ten minutes ahead (peers accept up to 15)


def limited(node):
    with open(node.etc / "smtp-policy.src", "a") as f:
        f.write(f"\n[{SOURCE}]/32  relaycustnet +  ratelimitmsgs {LIMIT}\n")
    proc = node.zmailer("newdb")
    assert proc.returncode == 0, proc.output


def try_send(node, token, source=SOURCE):
    import smtplib
    try:
        with smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=60,
                          source_address=(source, 0)) as s:
            s.sendmail("fault@localhost", ["root@localhost"],
                       f"Subject: {token}\r\n\r\n{token}\r\n")
        return 250
    except smtplib.SMTPRecipientsRefused as e:
        return next(iter(e.recipients.values()))[0]
    except smtplib.SMTPResponseException as e:
        return e.smtp_code


def rate_view(node, key=SOURCE_KEY):
    proc = node.zmailer("rates", "--json", key)
    if proc.returncode != 0:
        return 0
    for s in json.loads(proc.stdout)["sources"]:
        if s["key"] == key:
            return s["messages"]
    return 0


def policy_of(node, subject):
    proc = node.zmailer("policy", "list", "--json")
    if proc.returncode != 0:
        return None
    for e in json.loads(proc.stdout):
        if e["subject"] == subject:
            return (e["action"], e.get("reason", ""), e["author"])
    return None


def grpc_raw_call(fleet, i, method, payload, tls_dir=None, claim_ok=True):
    """A unary call to node i's peer service with `payload` as the raw
    request bytes, over mTLS with a fleet certificate from `tls_dir`.
    Returns the gRPC status code name."""
    import grpc
    creds = grpc.ssl_channel_credentials(
        root_certificates=(tls_dir / "cluster-ca.pem").read_bytes(),
        private_key=(tls_dir / "cluster-key.pem").read_bytes(),
        certificate_chain=(tls_dir / "cluster-cert.pem").read_bytes())
    target = f"127.0.0.1:{fleet.ports[i]}"
    with grpc.secure_channel(target, creds, options=[
            ("grpc.ssl_target_name_override", fleet.ids[i])]) as ch:
        fn = ch.unary_unary(f"/zmnode.cluster.v1.Peer/{method}",
                            request_serializer=lambda b: b,
                            response_deserializer=lambda b: b)
        try:
            fn(payload, timeout=10)
            return "OK"
        except grpc.RpcError as e:
            return e.code().name


def test_garbage_at_the_peer_port_is_refused_and_the_agent_serves_on(
        fleet_factory, tmp_path):
    fleet = fleet_factory(2)
    fleet.wait_converged()
    port = fleet.ports[0]
    rng = random.Random(7)
    # Raw random bytes, a plain-text HTTP/2 preface, TLS without a
    # certificate: each connection is dropped.
    for k in range(20):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.settimeout(10)
            blob = (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" if k == 0 else
                    bytes(rng.randrange(256)
                          for _ in range(rng.randrange(1, 4096))))
            try:
                s.sendall(blob)
                s.recv(4096)
            except OSError:
                pass
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            try:
                with ctx.wrap_socket(raw) as s:
                    s.sendall(b"\0" * 64)
                    s.recv(64)
            except (ssl.SSLError, OSError):
                pass
    # A fleet certificate (a real member's) with malformed messages, and a
    # well-formed Ping that claims to be someone else.
    m = cluster_util.pb()
    tls = fleet.node(1).etc / "tls"
    codes = set()
    for method in ("Ping", "PingReq", "Join", "Leave", "Exchange", "Push"):
        for _ in range(5):
            payload = bytes(rng.randrange(256)
                            for _ in range(rng.randrange(1, 512)))
            codes.add(grpc_raw_call(fleet, 0, method, payload, tls))
    assert "OK" not in codes or len(codes) > 1, codes
    forged = m["peer"].PingRequest()
    getattr(forged, "from").node_id = "n9"
    getattr(forged, "from").generation = 1
    getattr(forged, "from").address = "127.0.0.1:1"
    assert grpc_raw_call(fleet, 0, "Ping", forged.SerializeToString(),
                         tls) == "PERMISSION_DENIED"

    # Still serving: same pid, both alive, and gossip still carries news.
    assert pid_alive(fleet.agent_pid(0))
    fleet.wait_converged()
    fleet.local(1).policy_add("192.0.2.50", "REJECT", reason="after garbage",
                              ttl=3600)
    wait_for(lambda: any(e.subject == "192.0.2.50"
                         for e in fleet.local(0).policy_list()),
             what="a policy to reach n1 after the garbage")
    log = fleet.node(0).maillog.read_text(errors="replace")
    assert "peer refused: Ping from" in log
    assert "claiming node-id 'n9'" in log


def test_a_clock_far_ahead_does_not_stop_policy_or_rates(fleet_factory):
    fleet = fleet_factory(3, start=False, setup=limited)
    fleet.node(1).env["ZM_TEST_CLOCK_OFFSET_MS"] = str(SKEW_MS)
    for i in range(3):
        fleet.start(i)
    fleet.wait_converged()
    n1, n2, n3 = fleet.nodes

    # The skewed node writes; a normal node that saw it overwrites; the
    # later write wins everywhere (HLC: n1's clock moved past n2's stamp).
    assert n2.zmailer("policy", "add", "192.0.2.60", "reject", "--reason",
                      "from the future", "--ttl", "1h").returncode == 0
    wait_for(lambda: policy_of(n1, "192.0.2.60") is not None,
             what="n1 to see n2's policy")
    assert n1.zmailer("policy", "add", "192.0.2.60", "defer", "--reason",
                      "later on n1", "--ttl", "1h").returncode == 0
    for node in fleet.nodes:
        wait_for(lambda node=node: policy_of(node, "192.0.2.60") ==
                 ("defer", "later on n1", "n1"),
                 what=f"{node.node_id}: n1's later write to win")

    # Rates through every node, the skewed one included, add up and hold
    # the limit fleet-wide.
    admitted = 0
    for k in range(3 * LIMIT):
        node = fleet.nodes[k % 3]
        if try_send(node, f"skew-{k}") == 250:
            admitted += 1
        want = admitted
        for other in fleet.nodes:
            wait_for(lambda o=other: rate_view(o) >= want,
                     what=f"{other.node_id} to count {want}")
        if admitted >= LIMIT + 2:
            break
    assert LIMIT <= admitted <= LIMIT + 2, admitted
    for node in fleet.nodes:
        assert try_send(node, "skew-after") == 450, node.node_id


def test_restarting_every_node_mid_window_grants_no_fresh_budget(
        fleet_factory):
    fleet = fleet_factory(3, setup=limited)
    fleet.wait_converged()
    admitted = 0
    for k in range(3 * LIMIT):
        if try_send(fleet.nodes[k % 3], f"before-{k}") == 250:
            admitted += 1
        want = admitted
        for other in fleet.nodes:
            wait_for(lambda o=other: rate_view(o) >= want,
                     what=f"{other.node_id} to count {want}")
        if admitted >= LIMIT:
            break
    for node in fleet.nodes:
        assert try_send(node, "before-over") == 450, node.node_id

    # Everyone down at once, then up again.
    for node in fleet.nodes:
        proc = node.stop()
        assert proc.returncode == 0, proc.output
    for i in range(3):
        fleet.start(i)
    fleet.wait_converged()
    for node in fleet.nodes:
        # The counts come back from db/ratetrack and db/cluster.
        wait_for(lambda node=node: rate_view(node) >= admitted,
                 what=f"{node.node_id} to count {admitted} after the restart")
        assert try_send(node, "after-restart") == 450, node.node_id
    # Nothing accepted before the restart was lost (nor doubled).
    def delivered():
        return sum(n.mbox("root").count("Subject: before-")
                   for n in fleet.nodes)
    wait_for(lambda: delivered() >= admitted,
             what=f"the {admitted} admitted messages delivered")
    assert delivered() == admitted
