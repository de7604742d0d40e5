"""The cluster agent between real processes on loopback (docs/cluster.md).

Fleets come from cluster_util.Fleet: nodes with a cluster.conf, one fleet
CA made by the test, mutual TLS between the agents. The tests look at
what an operator sees: the local service's answers (as `zmailer cluster`
and `zmailer policy` show them) and the maillog lines.
"""

import re

import pytest

from cluster_util import fleet_factory, make_ca  # noqa: F401 (fixture)
from conftest import BIN, wait_for

pytestmark = pytest.mark.skipif(not (BIN / "clusterd").exists(),
                                reason="clusterd is not built")


def generation(fleet, viewer, node_id):
    return fleet.local(viewer).members()[node_id].member.generation


def test_supervised_fleet_of_three(fleet_factory):
    """Three whole nodes: the supervisor runs clusterd; they see each other,
    share a policy entry and run one ETRN everywhere; a killed agent comes
    back (restarted by the supervisor) with a new generation."""
    fleet = fleet_factory(3)
    fleet.wait_converged()
    status = fleet.node(0).zmailer("status")
    assert re.search(r"clusterd\s+running", status.stdout), status.output
    fleet.node(0).wait_log(r"clusterd\[\d+\]: member joined: n2 ")

    # A policy added through one node's local service is listed on the
    # others, with its author.
    added = fleet.local(0).policy_add("198.51.100.0/24", "REJECT",
                                      reason="test block", ttl=600)
    assert added[0].subject == "198.51.100.0/24"
    for i in (1, 2):
        entries = wait_for(lambda i=i: fleet.local(i).policy_list(),
                           what=f"the policy entry on n{i + 1}")
        assert [(e.subject, e.author_node, e.reason) for e in entries] == [
            ("198.51.100.0/24", "n1", "test block")]

    # ETRN started on n2: every node asks its own scheduler once, and the
    # results come back to n2.
    started = fleet.local(1).start_etrn("client.example")
    assert sorted(started.expected_nodes) == ["n1", "n2", "n3"]
    status = fleet.local(1).etrn_status(started.request.id, wait_ms=30000)
    assert not status.pending_nodes
    results = {r.node_id: (r.code, r.text) for r in status.results}
    assert sorted(results) == ["n1", "n2", "n3"]
    for node_id, (code, text) in results.items():
        assert code == 250, (node_id, text)
        assert "client.example" in text
    for node in fleet.nodes:
        node.wait_log(r"ETRN acted on: id=" + re.escape(started.request.id))
        acted = [l for l in node.log_lines()
                 if "ETRN acted on: id=" + started.request.id in l]
        assert len(acted) == 1, acted

    # kill -9: the supervisor restarts the agent; the fleet sees the same
    # node alive again with a higher generation.
    old = generation(fleet, 0, "n3")
    pid = fleet.kill(2)
    fleet.node(2).wait_restarted("clusterd", pid)
    wait_for(lambda: fleet.states(0).get("n3") == "ALIVE"
             and generation(fleet, 0, "n3") > old,
             what="n3 alive again with a new generation on n1")
    # The restarted agent kept its state (db/cluster): the ETRN is not
    # run a second time.
    fleet.wait_converged()
    assert len([l for l in fleet.node(2).log_lines()
                if "ETRN acted on: id=" + started.request.id in l]) == 1


def test_five_agents_leave_kill_restart(fleet_factory):
    """Five agents: all alive everywhere; a graceful stop is `left`; kill -9
    is suspect then dead; the restarted agent is alive with a new
    generation, and catches up with what happened meanwhile."""
    fleet = fleet_factory(5, agents_only=True)
    fleet.wait_converged()

    fleet.stop_agent(3)  # n4: SIGTERM, leaves
    for i in (0, 1, 2, 4):
        fleet.wait_view(i, {"n4": "LEFT"})
    fleet.node(3).wait_log(r"clusterd\[\d+\]: left the fleet")

    old = generation(fleet, 0, "n5")
    fleet.kill(4)  # n5: kill -9
    for i in (0, 1, 2):
        fleet.wait_view(i, {"n5": "DEAD"})
    assert any(re.search(r"member suspect: n5 ", l)
               for i in (0, 1, 2) for l in fleet.node(i).log_lines())
    fleet.node(0).wait_log(r"member dead: n5 ")

    # While n5 is down, a policy entry and an ETRN start on n1.
    fleet.local(0).policy_add("bad.example", "DEFER", reason="while away")
    started = fleet.local(0).start_etrn("away.example", ttl=600)
    assert "n5" not in started.expected_nodes

    fleet.start(4)
    fleet.wait_converged(among=[0, 1, 2, 4])
    assert generation(fleet, 0, "n5") > old
    wait_for(lambda: [e.subject for e in fleet.local(4).policy_list()]
             == ["bad.example"], what="n5 to catch up with the policy")
    # A node that was down acts on the request when it rejoins.
    fleet.node(4).wait_log(r"ETRN acted on: id=" +
                           re.escape(started.request.id))
    wait_for(lambda: "n5" in {r.node_id for r in fleet.local(0).etrn_status(
        started.request.id).results}, what="n5's ETRN result on n1")


def test_peer_from_another_ca_is_refused(fleet_factory, tmp_path):
    """A node whose certificate comes from another CA cannot join: the TLS
    handshake fails, the fleet never lists it, and its agent says why."""
    fleet = fleet_factory(2, agents_only=True)
    fleet.wait_converged()
    other_ca = make_ca(tmp_path / "other-ca")
    i = fleet.add("intruder", ca=other_ca)
    fleet.node(i).wait_log(r"clusterd\[\d+\]: join via 127\.0\.0\.1:%d "
                           r"failed" % fleet.ports[0])
    for viewer in (0, 1):
        assert "intruder" not in fleet.states(viewer)
    assert fleet.states(i).get("n1") is None
