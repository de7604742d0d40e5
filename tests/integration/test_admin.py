"""admind, the node's admin HTTP listener: probes, /metrics, JSON API, SSE.

Every test talks HTTP (http.client) to a real node's admind.
"""

import http.client
import os
import signal
import smtplib

from admin_util import ROOT, AdminApi, add_root_user, parse_metrics, \
    sample_value
from conftest import pid_alive, wait_for


def test_health_ready_and_draining(node):
    api = AdminApi(node)
    api.wait_up()
    assert api.get("/healthz") == (200, "ok\n")
    wait_for(lambda: api.get("/readyz")[0] == 200, what="readyz 200")
    draining = node.home / "run" / "draining"
    draining.write_text("")
    status, body = api.get("/readyz")
    assert status == 503
    assert "draining" in body
    status, info = api.get("/api/v1/node")
    assert status == 200
    assert info["draining"] is True and info["ready"] is False
    draining.unlink()
    assert api.get("/readyz")[0] == 200


def test_readyz_turns_unready_when_the_scheduler_stops(node):
    api = AdminApi(node)
    api.wait_up()
    wait_for(lambda: api.get("/readyz")[0] == 200, what="readyz 200")
    # Without the supervisor nothing restarts the scheduler.
    os.kill(node.pid("zmailer"), signal.SIGKILL)
    sched = node.pid("scheduler")
    os.kill(sched, signal.SIGTERM)
    wait_for(lambda: not pid_alive(sched), what="scheduler gone")
    status, body = api.get("/readyz")
    assert status == 503
    assert "scheduler not running" in body
    procs = {p["name"]: p for p in api.get("/api/v1/node")[1]["processes"]}
    assert procs["scheduler"]["up"] is False
    assert procs["router"]["up"] is True


def test_metrics_parse_and_count_smtp_traffic(node):
    api = AdminApi(node)
    api.wait_up()
    status, text = api.get("/metrics")
    assert status == 200
    before = parse_metrics(text)
    assert sample_value(before, "zmnode_up", program="smtpserver") == 1
    assert sample_value(before, "zmnode_spool_free_bytes") > 0
    got0 = sample_value(before, "zmnode_smtp_messages_received_total")
    with smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=30) as s:
        for i in range(3):
            s.sendmail("sender@example.com", ["root@localhost"],
                       f"Subject: metrics {i}\r\n\r\nbody {i}\r\n")

    def delivered():
        fams = parse_metrics(api.get("/metrics")[1])
        n = sample_value(fams, "zmnode_scheduler_recipients_total",
                         result="delivered")
        return fams if n >= 3 else None
    fams = wait_for(delivered, what="3 deliveries counted in /metrics")
    assert sample_value(fams, "zmnode_smtp_messages_received_total") == \
        got0 + 3
    assert sample_value(fams, "zmnode_smtp_recipients_received_total") >= 3
    assert sample_value(fams, "zmnode_smtp_received_bytes_total") > 0
    assert sample_value(fams, "zmnode_smtp_connections_total",
                        listener="smtp") >= 1
    # Counter families are typed as such (the parser drops the _total).
    assert fams["zmnode_smtp_messages_received"].type == "counter"
    assert fams["zmnode_queue_messages"].type == "gauge"
    # The per-minute history saw the same traffic (sampled every 5 s).

    def history():
        h = api.get("/api/v1/history?minutes=5")[1]
        s = h["series"][node.node_id]
        return h if sum(s["received"]) >= 3 and sum(s["delivered"]) >= 3 \
            else None
    h = wait_for(history, what="history counting the traffic")
    assert len(h["minutes"]) == 5
    assert h["series"]["fleet"]["received"] == \
        h["series"][node.node_id]["received"]


def test_state_changes_need_auth(node_factory):
    node = node_factory(setup=add_root_user)
    api = AdminApi(node)
    api.wait_up()
    # Reading on loopback needs no user (read-auth auto).
    assert api.get("/api/v1/node")[0] == 200
    status, body, headers = api.request("POST", "/api/v1/etrn",
                                        body={"domain": "example.com"})
    assert status == 401
    assert "error" in body
    assert headers.get("WWW-Authenticate", "").startswith("Basic")
    assert api.post("/api/v1/etrn", {"domain": "example.com"},
                    auth=("root", "wrong"))[0] == 401
    assert api.delete("/api/v1/policy?key=192.0.2.7")[0] == 401
    # nobody has ETRN but not KILL: policy changes are forbidden to it.
    status, body = api.post("/api/v1/policy",
                            {"key": "192.0.2.7", "action": "reject"},
                            auth=("nobody", "nobody"))
    assert status == 403, body
    # Bad requests are JSON errors.
    status, body = api.post("/api/v1/etrn", "not json", auth=ROOT)
    assert status == 400 and "error" in body
    assert api.get("/api/v1/no-such-thing")[0] == 404
    # Too big a body: refused by the listener's bound.
    status, _, _ = api.request("POST", "/api/v1/etrn", body="x" * 100000,
                               auth=ROOT)
    assert status == 413


def test_read_auth_yes_protects_reading(node_factory):
    def setup(n):
        with open(n.etc / "admin.conf", "a") as f:
            f.write("read-auth yes\n")
    node = node_factory(setup=setup)
    api = AdminApi(node)
    api.wait_up()
    assert api.get("/api/v1/node")[0] == 401
    assert api.get("/metrics")[0] == 401
    assert api.get("/api/v1/node", auth=("nobody", "nobody"))[0] == 200
    # Probes stay open for Kubernetes.
    assert api.get("/healthz")[0] == 200


def test_etrn_on_a_single_node(node):
    api = AdminApi(node)
    api.wait_up()
    status, body = api.post("/api/v1/etrn", {"domain": "example.org"},
                            auth=("nobody", "nobody"))
    assert status == 200, body

    def done():
        status, res = api.get(f"/api/v1/etrn?id={body['id']}")
        assert status == 200, res
        states = [r["state"] for r in res["results"]]
        return res if states == ["done"] else None
    res = wait_for(done, what="the ETRN done")
    assert res["domain"] == "example.org"
    [r] = res["results"]
    assert r["node_id"] == node.node_id
    node.wait_log(r"ETRN example\.org")
    assert api.get("/api/v1/etrn?id=nope")[0] == 404


def test_members_queues_and_status_url(node):
    api = AdminApi(node)
    api.wait_up()
    status, m = api.get("/api/v1/members")
    assert status == 200
    [me] = m["members"]
    assert me["self"] is True and me["state"] == "alive"
    assert me["node_id"] == node.node_id
    status, q = api.get("/api/v1/queues")
    assert status == 200
    assert q["nodes"][0]["node_id"] == node.node_id
    out = node.zmailer("status").stdout
    assert f"dashboard: http://127.0.0.1:{node.admin_port}/" in out
    assert "admind" in out


def test_events_stream_sends_every_topic(node):
    api = AdminApi(node)
    api.wait_up()
    conn = http.client.HTTPConnection("127.0.0.1", node.admin_port,
                                      timeout=20)
    try:
        conn.request("GET", "/api/v1/events")
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.getheader("Content-Type").startswith("text/event-stream")
        seen = set()
        for _ in range(200):  # bounded: lines of the first snapshot
            line = resp.fp.readline(1 << 20).decode()
            if line.startswith("event: "):
                seen.add(line[7:].strip())
            if seen >= {"members", "rates", "queues", "history", "policy",
                        "etrn"}:
                break
        assert seen >= {"members", "rates", "queues", "history", "policy",
                        "etrn"}, seen
    finally:
        conn.close()


def test_dashboard_root_is_served(node):
    api = AdminApi(node)
    api.wait_up()
    status, body, headers = api.request("GET", "/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert "<html" in body.lower()
    assert api.get("/no/such/file.js")[0] == 404


def test_json_log_lines(node_factory):
    import json

    def setup(n):
        with open(n.etc / "admin.conf", "a") as f:
            f.write("json-log yes\n")
    node = node_factory(setup=setup)
    api = AdminApi(node)
    api.wait_up()
    path = node.home / "log" / "maillog.json"

    with smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=30) as s:
        s.sendmail("sender@example.com", ["root@localhost"],
                   "Subject: json log\r\n\r\nhi\r\n")

    def delivered_line():
        if not path.exists():
            return None
        for line in path.read_text(errors="replace").splitlines():
            ev = json.loads(line)
            if ev["program"] == "scheduler" and "status=sent" in ev["msg"]:
                return ev
        return None
    ev = wait_for(delivered_line, interval=0.2, what="a JSON delivery line")
    assert set(ev) == {"ts", "host", "program", "pid", "queue_id", "level",
                       "msg"}
    assert ev["level"] == "info" and ev["queue_id"]
    assert ev["ts"].endswith("Z")
    assert ev["queue_id"] in "\n".join(node.log_lines())


def test_https_listener(node_factory):
    def setup(n):
        with open(n.etc / "admin.conf", "a") as f:
            f.write("tls-cert tls/smtpserver-cert.pem\n"
                    "tls-key  tls/smtpserver-key.pem\n")
    node = node_factory(setup=setup)
    api = AdminApi(node, cafile=node.etc / "tls" / "smtpserver-cert.pem")
    api.wait_up()
    status, info = api.get("/api/v1/node")
    assert status == 200
    assert info["admin_url"].startswith("https://")
    # Plain HTTP to the HTTPS port gets no answer.
    plain = AdminApi(node)
    assert not plain.up()
    out = node.zmailer("status").stdout
    assert f"dashboard: https://127.0.0.1:{node.admin_port}/" in out
