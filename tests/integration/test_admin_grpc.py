"""The scheduler's gRPC admin service through the programs that use it.

mailq and zmailer's queue commands speak gRPC to run/scheduler.sock (and
mailq -p to PARAMgrpcaddr). The node's smtp agent relays to a loopback port
where nothing listens, so remote mail stays queued and deferred.
(tests/unit/admin/admin_grpc_test.cc covers every call, the replay and
event stream against the scheduler alone.)
"""

import os
import re

import pytest

from conftest import free_port, wait_for
from scheduler_util import queue_tried
from sink_util import set_smtp_command

REMOTE = "user@remote.example"


def grpc_setup(port):
    def setup(n):
        set_smtp_command(n, f"smtp -F [127.0.0.1]:{free_port()} -T 5")
        conf = os.path.join(n.etc, "scheduler.conf")
        with open(conf) as f:
            text = f.read()
        with open(conf, "w") as f:
            f.write(f'PARAMgrpcaddr = "TCP:127.0.0.1:{port}"\n' + text)
        with open(os.path.join(n.etc, "scheduler.auth"), "w") as f:
            f.write("nobody:nobody:SNMP QQ TT ETRN:[127.0.0.1]/32\n"
                    "root:secret:ALL:[127.0.0.1]/32\n"
                    "far:farpw:ALL:[10.9.8.0]/24\n")
    return setup


@pytest.fixture
def port():
    return free_port()


@pytest.fixture
def node(node_factory, port):
    return node_factory(setup=grpc_setup(port))


def queued(node):
    return queue_tried(node, REMOTE, "Subject: grpc\n\nfar\n")


def test_mailq_views_over_grpc(node, port):
    qid = queued(node)
    listing = node.mailq()
    assert listing.returncode == 0, listing.output
    assert "smtp/remote.example:" in listing.stdout, listing.stdout
    assert qid in listing.stdout, listing.stdout
    overview = node.mailq("-Q")
    assert overview.returncode == 0, overview.output
    assert re.search(r"smtp/remote\.example/\d+\s+R=1 ", overview.stdout), \
        overview.stdout
    short = node.mailq("-QQ")
    assert re.search(r"Msgs: 1 Thrs: 1 Rcpnts: 1 ", short.stdout), short.stdout
    thread = node.mailq("-Q", "-c", "smtp", "-h", "remote.example")
    assert thread.returncode == 0, thread.output
    assert f"  {qid}: " in thread.stdout, thread.stdout
    # The same over TCP (PARAMgrpcaddr).
    tcp = node.mailq("-QQ", "-p", f"127.0.0.1:{port}")
    assert tcp.returncode == 0, tcp.output
    assert "Rcpnts: 1 " in tcp.stdout, tcp.stdout


def test_refusals_are_logged(node, port):
    bad = node.mailq("-U", "nobody/wrong")
    assert bad.returncode == 77, bad.output
    assert "authentication refused" in bad.stderr, bad.output
    # Right password, but only allowed from 10.9.8.0/24: refused on TCP.
    far = node.mailq("-QQ", "-U", "far/farpw", "-p", str(port))
    assert far.returncode == 77, far.output
    assert "authentication refused" in far.stderr, far.output
    node.wait_log(r"admin gRPC ListMessages refused for user 'nobody' "
                  r"from unix:.*: wrong proof")
    node.wait_log(r"admin gRPC ShowQueueShort refused for user 'far' "
                  r"from ipv4:127\.0\.0\.1:\d+: no such user for this address")
    assert not any("farpw" in l for l in node.log_lines())


def test_zmailer_queue_commands_over_grpc(node):
    qid = queued(node)
    etrn = node.zmailer("etrn", "remote.example")
    assert etrn.returncode == 0, etrn.output
    assert "ETRN remote.example: 1 recipients scheduled" in etrn.stdout, \
        etrn.output
    requeue = node.zmailer("requeue", qid)
    assert requeue.returncode == 0, requeue.output
    assert f"RUNQ ID {qid}: " in requeue.stdout, requeue.output

    def deleted():
        proc = node.zmailer("delete", qid)
        return proc if proc.returncode == 0 else None
    proc = wait_for(deleted, what=f"zmailer delete {qid}")
    assert f"message {qid} deleted" in proc.stdout, proc.output
    wait_for(lambda: qid not in node.mailq().stdout, what=f"{qid} gone")
    missing = node.zmailer("requeue", qid)
    assert missing.returncode == 66, missing.output
