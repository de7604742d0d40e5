"""Smoke runs of the benchmarks (bench/): each script runs for a few
seconds with tiny counts and must print its table, so that they keep
working as the node changes. No figure is checked: benchmarks are not
tests, and this machine's speed says nothing.

The peers (Postfix, Exim, OpenSMTPD) are unpacked from Debian's packages
on first use (`bench/peers/X install`, apt-get download into
/opt/zmbench); a peer that cannot be installed (no network, no apt) is left
out of the runs, and the tests that need root (network namespaces, the
peers' mount namespaces) are skipped without it.
"""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(REPO, "bench")
BIN = os.environ.get("ZM_BIN", os.path.join(REPO, "build", "bin"))
PEERS = ("postfix", "exim", "opensmtpd")
TIMEOUT = 600

needs_root = pytest.mark.skipif(os.geteuid() != 0,
                                reason="network and mount namespaces need root")


def run(args, timeout=TIMEOUT):
    r = subprocess.run([sys.executable] + args if args[0].endswith(".py") else args,
                       capture_output=True, text=True, timeout=timeout, cwd=REPO)
    print(r.stdout)
    print(r.stderr, file=sys.stderr)
    return r


@pytest.fixture(scope="module")
def peers():
    """The peers that are installed (or could be installed now)."""
    ok = []
    for p in PEERS:
        r = subprocess.run([os.path.join(BENCH, "peers", p), "install"],
                           capture_output=True, text=True, timeout=300)
        if r.returncode == 0:
            ok.append(p)
        else:
            print(f"{p}: not installed: {r.stderr.strip()}", file=sys.stderr)
    return ok


def table_header(stdout):
    """The header row of the last markdown table printed."""
    lines = stdout.splitlines()
    heads = [lines[i - 1] for i in range(1, len(lines))
             if lines[i].startswith("| ---") and lines[i - 1].startswith("|")]
    assert heads, "no table printed"
    return heads[-1]


def test_peer_scripts_refuse_misuse():
    for p in PEERS:
        script = os.path.join(BENCH, "peers", p)
        r = subprocess.run([script], capture_output=True, text=True, timeout=30)
        assert r.returncode != 0
        assert r.stderr.strip().count("\n") == 0, r.stderr
        r = subprocess.run([script, "setup", "/nonexistent-zm/x"], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode != 0
        assert "--port is required" in r.stderr


@needs_root
def test_relay_prints_a_table_for_every_mta(peers):
    mtas = ["zmnode"] + peers
    r = run([os.path.join(BENCH, "relay"), "--bin", BIN, "-n", "20", "--lat", "10",
             "--runs", "1", "--fsyncs", "5", "--drain", "120", "--mtas", ",".join(mtas)])
    assert r.returncode == 0, r.stderr
    head = table_header(r.stdout)
    for label in ("zmnode", "Postfix", "Exim", "OpenSMTPD"):
        if label == "zmnode" or label.lower() in peers:
            assert label in head
    assert "end-to-end msg/s" in r.stdout
    assert "disk flushes per message" in r.stdout
    assert "Ceilings:" in r.stdout
    for m in mtas:
        assert f"run 1 {m}" in r.stdout, f"{m} printed no figures"


@needs_root
def test_relay_on_a_journalled_spool_fs_cleans_up(peers):
    """--spool-fs root,ext4: both file systems described, a table for each
    and the summary; the image's mount and folder are gone afterwards."""
    mtas = ["zmnode"] + (["postfix"] if "postfix" in peers else [])
    r = run([os.path.join(BENCH, "relay"), "--bin", BIN, "-n", "10", "--lat", "5",
             "--runs", "1", "--fsyncs", "5", "--drain", "120", "--mtas", ",".join(mtas),
             "--spool-fs", "root,ext4", "--spool-fs-size", "512"])
    assert r.returncode == 0, r.stderr
    assert "journal: yes (jbd2" in r.stdout
    assert "spool file system ext4" in r.stdout and "spool file system root" in r.stdout
    head = table_header(r.stdout)
    assert "zmnode root" in head and "zmnode ext4" in head
    for m in mtas:
        assert f"run 1 {m:9} on ext4" in r.stdout, f"{m} printed no figures on ext4"
    works = {w.split("/mnt")[0] for w in r.stdout.split() if "zmbench-spoolfs-ext4-" in w}
    assert works
    for w in works:
        assert not os.path.exists(w), f"{w} left behind"
    with open("/proc/self/mountinfo") as f:
        assert "zmbench-spoolfs-" not in f.read()


def test_spool_fs_refuses_an_unknown_file_system():
    r = run([os.path.join(BENCH, "relay"), "--bin", BIN, "--spool-fs", "root,zfs"])
    assert r.returncode != 0
    assert "unknown file system zfs" in r.stderr


@needs_root
def test_smtp_accept_prints_its_table(peers):
    if "postfix" not in peers:
        pytest.skip("Postfix peer not installed")
    r = run([os.path.join(BENCH, "smtp-accept"), "--bin", BIN, "-n", "20", "--lat", "10",
             "--idle", "20", "--idle-postfix", "5", "--runs", "1"])
    assert r.returncode == 0, r.stderr
    assert "KiB per idle connection" in r.stdout
    assert "run 1 zmnode" in r.stdout and "run 1 postfix" in r.stdout


@needs_root
def test_connections_prints_its_table(peers):
    mtas = ["zmnode"] + peers
    r = run([os.path.join(BENCH, "connections"), "--bin", BIN, "--idle", "20",
             "--idle-forking", "5", "--slow", "5", "--probe", "3", "--probe-sessions", "1",
             "--mtas", ",".join(mtas)])
    assert r.returncode == 0, r.stderr
    assert "KiB per idle connection (Pss)" in r.stdout
    assert "KiB per slow connection (Pss)" in r.stdout
    head = table_header(r.stdout)
    assert "zmnode" in head


@needs_root
def test_queue_prints_its_table():
    r = run([os.path.join(BENCH, "queue"), "--bin", BIN, "-m", "20", "-r", "5", "-d", "10",
             "--settle", "2"])
    assert r.returncode == 0, r.stderr
    assert "bytes per queued recipient" in r.stdout
    assert "restart: new scheduler" in r.stdout
    assert "mailq -Q wall" in r.stdout
