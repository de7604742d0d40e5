"""The rate-tracker through a running node, and `zmailer rates`."""

import json
import smtplib

from conftest import wait_for


def rates(node, *args):
    proc = node.zmailer("rates", "--json", *args)
    assert proc.returncode == 0, proc.output
    return json.loads(proc.stdout)


def source(node, key, *args):
    for s in rates(node, *args)["sources"]:
        if s["key"] == key:
            return s
    return None


def send(node, count, rcpts):
    with smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=60) as s:
        s.ehlo("rates.example")
        for i in range(count):
            refused = s.sendmail("sender@localhost", rcpts,
                                 f"Subject: rates-{i}\r\n\r\nhi\r\n")
            assert refused == {}


def wait_messages(node, key, want):
    def seen():
        s = source(node, key)
        return s if s and s["messages"] >= want else None
    return wait_for(seen, what=f"`zmailer rates` to show {want} from {key}")


def test_empty_node_lists_nothing(node_factory):
    node = node_factory(start=False)
    out = rates(node)
    assert out["sources"] == []
    assert out["window"] == {"slots": 8, "slot_seconds": 450}
    proc = node.zmailer("rates")
    assert proc.returncode == 0, proc.output
    assert proc.stdout.startswith("SOURCE"), proc.stdout
    # One source asked for by address: listed with zero counts.
    out = rates(node, "192.0.2.7")
    assert out["sources"][0]["key"] == "ip4:192.0.2.7"
    assert out["sources"][0]["messages"] == 0


def test_cli_misuse(node_factory, tmp_path):
    node = node_factory(start=False)
    proc = node.zmailer("rates", "--by", "bananas")
    assert proc.returncode == 64, proc.output
    proc = node.run("zmailer", "-C", tmp_path / "nothing", "rates")
    assert proc.returncode == 78, proc.output
    assert proc.stderr.count("\n") == 1, proc.stderr


def test_counts_survive_a_restart(node):
    key = "ip4:127.0.0.1"
    send(node, 2, ["root@localhost", "postmaster@localhost"])
    got = wait_messages(node, key, 2)
    assert got["messages"] == 2, got
    assert got["recipients"] == 4, got
    assert list(got["nodes"]) == [node.node_id], got
    # The table and the per-key view say the same.
    proc = node.zmailer("rates", "-n", "5", "--by", "recipients")
    assert proc.returncode == 0, proc.output
    assert key in proc.stdout, proc.stdout
    assert source(node, key, "127.0.0.1")["messages"] == 2

    node.stop()
    assert source(node, key)["messages"] == 2  # read with nothing running
    node.start()
    send(node, 1, ["root@localhost"])
    got = wait_messages(node, key, 3)
    assert got["messages"] == 3, got
    assert got["recipients"] == 5, got
