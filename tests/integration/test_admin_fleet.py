"""admind in a fleet: members, the policy overlay and ETRN through the JSON
API, acting on the other node's SMTP port."""

import smtplib

import pytest

from admin_util import ROOT, AdminApi, add_root_user
from cluster_util import Fleet
from conftest import wait_for


@pytest.fixture
def fleet(node_factory):
    f = Fleet(node_factory, 2, setup=add_root_user)
    yield f
    f.close()


def mail_from_code(node, sender):
    """The reply code to MAIL FROM:<sender> on node's SMTP port."""
    with smtplib.SMTP("127.0.0.1", node.smtp_port, timeout=30) as s:
        s.ehlo("test.example")
        code, _ = s.mail(sender)
        return code


def test_fleet_members_policy_and_etrn(fleet):
    fleet.wait_converged()
    n1, n2 = fleet.node(0), fleet.node(1)
    api1, api2 = AdminApi(n1), AdminApi(n2)
    api1.wait_up()
    api2.wait_up()

    def members():
        status, body = api1.get("/api/v1/members")
        ms = {m["node_id"]: m for m in body.get("members", [])}
        return ms if status == 200 and set(ms) == {"n1", "n2"} and all(
            m["state"] == "alive" for m in ms.values()) else None
    ms = wait_for(members, what="n1's admind lists n1 and n2 alive")
    assert ms["n1"]["self"] is True and ms["n2"]["self"] is False
    assert api1.get("/api/v1/node")[1]["cluster"] is True

    sender = "someone@blocked-by-api.example"
    assert mail_from_code(n2, sender) == 250
    # Added on n1 through the API; refused on n2's SMTP port.
    status, body = api1.post("/api/v1/policy",
                             {"key": "blocked-by-api.example",
                              "action": "reject", "reason": "test block",
                              "ttl_s": 600}, auth=ROOT)
    assert status == 200, body
    wait_for(lambda: mail_from_code(n2, sender) == 550,
             what="n2 refusing the sender blocked through n1's API")
    status, pol = api2.get("/api/v1/policy")
    assert status == 200
    [entry] = [e for e in pol["entries"]
               if e["key"] == "blocked-by-api.example"]
    assert entry["action"] == "reject"
    assert entry["reason"] == "test block"
    assert entry["author_node"] == "n1"
    assert entry["expires_unix"] > entry["created_unix"]
    # Removed again through n2's API.
    status, _ = api2.delete("/api/v1/policy?key=blocked-by-api.example",
                            auth=ROOT)
    assert status == 200
    wait_for(lambda: mail_from_code(n2, sender) == 250,
             what="n2 accepting the sender again")

    # A fleet ETRN from n1's API reaches both nodes.
    status, body = api1.post("/api/v1/etrn", {"domain": "example.net"},
                             auth=("nobody", "nobody"))
    assert status == 200, body

    def done():
        st, res = api1.get(f"/api/v1/etrn?id={body['id']}")
        if st != 200:
            return None
        states = {r["node_id"]: r["state"] for r in res["results"]}
        return res if states == {"n1": "done", "n2": "done"} else None
    res = wait_for(done, what="ETRN done on n1 and n2")
    assert res["domain"] == "example.net"
