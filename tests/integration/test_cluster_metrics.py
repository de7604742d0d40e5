"""clusterd's gossip counters in admind's /metrics (docs/cluster.md,
docs/metrics.md).

Two whole nodes (the supervisor runs clusterd and admind) with
`full-sync-interval 1s` in cluster.conf. Node 1's /metrics, read over HTTP
and parsed with prometheus_client, counts its probes and their answers,
the probes it answered, the anti-entropy exchanges and the full syncs
(five of them: at clusterd's 30 s default that would take minutes, so the
setting must have reached the agent). When node 2's agent is frozen
(SIGSTOP), node 1 counts node 2 becoming suspect and then dead.
"""

import os
import signal

import pytest

from admin_util import AdminApi, parse_metrics, sample_value
from cluster_util import fleet_factory  # noqa: F401 (fixture)
from conftest import BIN, wait_for

pytestmark = pytest.mark.skipif(not (BIN / "clusterd").exists(),
                                reason="clusterd is not built")


def gossip_counters(api):
    status, text = api.get("/metrics")
    assert status == 200, text
    fams = parse_metrics(text)
    return {
        "probes": sample_value(fams, "zmnode_gossip_probes_total"),
        "acks": sample_value(fams, "zmnode_gossip_probe_acks_total"),
        "answered": sample_value(fams, "zmnode_gossip_pings_answered_total"),
        "full_syncs": sample_value(fams, "zmnode_gossip_full_syncs_total"),
        "exchanges": sample_value(fams, "zmnode_gossip_exchanges_total"),
        "suspect": sample_value(fams, "zmnode_gossip_member_transitions_total",
                                state="suspect"),
        "dead": sample_value(fams, "zmnode_gossip_member_transitions_total",
                             state="dead"),
        "sent": sample_value(fams, "zmnode_gossip_sent_bytes_total"),
        "types": {name: fam.type for name, fam in fams.items()
                  if name.startswith("zmnode_gossip_")},
    }


def test_gossip_counters_over_http(fleet_factory):
    fleet = fleet_factory(2, extra_conf={"full-sync-interval": "1s"})
    fleet.wait_converged()
    api = AdminApi(fleet.node(0))
    api.wait_up()

    def busy():
        c = gossip_counters(api)
        ok = (c["probes"] >= 1 and c["acks"] >= 1 and c["answered"] >= 1
              and c["full_syncs"] >= 5 and c["sent"] > 0)
        return c if ok else None
    counters = wait_for(busy, what="gossip counters in n1's /metrics")
    assert counters["suspect"] == 0 and counters["dead"] == 0, counters
    # parse_metrics drops "_total" from a counter family's name.
    assert counters["types"].get("zmnode_gossip_probes") == "counter", \
        counters["types"]
    assert counters["types"].get("zmnode_gossip_idle") == "gauge", \
        counters["types"]

    # n2's agent stops answering: n1 counts it suspect, then dead.
    pid = fleet.agent_pid(1)
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: (lambda c: c if c["suspect"] >= 1 and c["dead"] >= 1
                          else None)(gossip_counters(api)),
                 what="n2 suspect and dead in n1's counters")
        fleet.wait_view(0, {"n2": "DEAD"})
    finally:
        os.kill(pid, signal.SIGCONT)
