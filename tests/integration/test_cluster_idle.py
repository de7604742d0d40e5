"""Idle gossip on real sockets: a figure, not a check.

Three cluster agents (agents_only fleet, mutual TLS, the default timers of
docs/cluster.md rather than the fast test timers) on loopback; once the
fleet has formed and gone quiet, the bytes every agent's TCP sockets sent
and received over ZM_IDLE_SECONDS (default 60) are read with `ss -tinp`
(tcp_info: bytes_sent, bytes_received, segs_out), so gRPC, HTTP/2 and TLS
framing are in, IP and TCP headers are not (segments are printed too).

Runs only with ZM_CLUSTER_FIGURES=1 (it takes a minute and asserts no
rate; the bound that can fail is cluster_agent_test's
IdleGossipIsOneHashPerPeer, counted, not timed):

    ZM_CLUSTER_FIGURES=1 ZM_BIN=$PWD/build/bin /usr/bin/python3 -m pytest \\
        -s -q tests/integration/test_cluster_idle.py
"""

import os
import re
import subprocess
import time

import pytest

from cluster_util import fleet_factory  # noqa: F401 - fixture

pytestmark = pytest.mark.skipif(
    os.environ.get("ZM_CLUSTER_FIGURES") != "1",
    reason="a one-minute figure; set ZM_CLUSTER_FIGURES=1")

# cluster.conf's defaults (docs/cluster.md), replacing the test timers.
DEFAULT_TIMERS = {
    "gossip-interval": "200ms",
    "probe-interval": "1s",
    "probe-timeout": "500ms",
    "suspicion-min": "2s",
    "suspicion-max": "6s",
    "seed-refresh": "30s",
}


def socket_bytes(pid):
    """(bytes_sent, bytes_received, segs_out, sockets) over every TCP
    socket of process `pid`."""
    out = subprocess.run(["ss", "-tinpH"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, timeout=30,
                         check=True).stdout.decode()
    sent = received = segs = sockets = 0
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if f"pid={pid}," not in line:
            continue
        info = lines[i + 1] if i + 1 < len(lines) else ""
        sockets += 1
        for name, value in re.findall(r"\b(bytes_sent|bytes_received|"
                                      r"segs_out):(\d+)", info):
            if name == "bytes_sent":
                sent += int(value)
            elif name == "bytes_received":
                received += int(value)
            else:
                segs += int(value)
    return sent, received, segs, sockets


def test_idle_gossip_bytes_on_the_sockets(fleet_factory):  # noqa: F811
    fleet = fleet_factory(3, agents_only=True, extra_conf=DEFAULT_TIMERS)
    fleet.wait_converged(timeout=60)
    # Past the joins' news and the first status publications.
    time.sleep(10)
    pids = [fleet.agent_pid(i) for i in range(3)]
    before = [socket_bytes(p) for p in pids]
    seconds = float(os.environ.get("ZM_IDLE_SECONDS", "60"))
    t0 = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - t0
    after = [socket_bytes(p) for p in pids]
    print(f"\nidle gossip on the sockets, 3 agents, {elapsed:.0f} s:")
    for i in range(3):
        sent = (after[i][0] - before[i][0]) * 8 / elapsed / 1000
        recv = (after[i][1] - before[i][1]) * 8 / elapsed / 1000
        segs = (after[i][2] - before[i][2]) / elapsed
        print(f"  {fleet.ids[i]}: sent {sent:.2f} kbit/s, received "
              f"{recv:.2f} kbit/s, {segs:.1f} segments/s out "
              f"(+{segs * 52 * 8 / 1000:.2f} kbit/s of IP/TCP headers), "
              f"{after[i][3]} sockets")
    assert all(a[3] > 0 for a in after), "no gossip socket found"
