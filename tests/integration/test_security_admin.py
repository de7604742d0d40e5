"""admind refuses wrong passwords and addresses outside the users' masks,
without telling a stranger which user names exist.

scheduler.auth (the same file and format as the scheduler's admin socket)
gives each user address masks. A user `boss` allowed from 127.0.0.1/32
only, a user `far` from 127.0.0.3/32 only, with `read-auth yes` so every
API request needs a user:

- from 127.0.0.1 with the right password: 200 (API and dashboard);
- from 127.0.0.1 with a wrong password, or an unknown user: 401;
- from 127.0.0.2 (outside every user's masks), whatever the credentials
  (boss's right password, a wrong one, an unknown user, none): 403, for
  reading, for the dashboard and for a state change;
- from 127.0.0.3 (inside far's mask, outside boss's), boss with the right
  password gets the same 401 as an unknown user: the answer does not
  depend on whether the user exists;
- admind logs each refusal with the address and the real reason.
"""

import base64
import http.client
import json

from admin_util import AdminApi

BOSS = ("boss", "b0ss-secret")


def request(node, method, path, auth=None, source="127.0.0.1", body=None):
    conn = http.client.HTTPConnection("127.0.0.1", node.admin_port,
                                      timeout=10, source_address=(source, 0))
    headers = {}
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    if body is not None:
        body = json.dumps(body)
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read(65536).decode(errors="replace")
    finally:
        conn.close()


def test_admind_refuses_addresses_outside_the_users_masks(node_factory):
    def setup(n):
        with open(n.etc / "scheduler.auth", "a") as f:
            f.write(f"{BOSS[0]}:{BOSS[1]}:ALL:[127.0.0.1]/32\n")
            f.write("far:f4r:ALL:[127.0.0.3]/32\n")
        with open(n.etc / "admin.conf", "a") as f:
            f.write("read-auth yes\n")

    node = node_factory(setup=setup)
    AdminApi(node).wait_up()

    assert request(node, "GET", "/api/v1/node", BOSS)[0] == 200
    assert request(node, "GET", "/", BOSS)[0] == 200
    assert request(node, "GET", "/api/v1/node", ("boss", "wrong"))[0] == 401
    assert request(node, "GET", "/api/v1/node")[0] == 401

    assert request(node, "GET", "/api/v1/node", ("ghost", "x"))[0] == 401
    node.wait_log(r"admin GET /api/v1/node from 127\.0\.0\.1 refused: "
                  r"unknown user 'ghost'")

    outside = "127.0.0.2"
    for method, path, body in (("GET", "/api/v1/node", None),
                               ("GET", "/", None),
                               ("POST", "/api/v1/etrn", {"domain": "x.test"})):
        status, text = request(node, method, path, BOSS, source=outside,
                               body=body)
        assert status == 403, (method, path, status, text)
        assert "may log in from 127.0.0.2" in text, text
        node.wait_log(rf"admin {method} {path} from {outside} refused: "
                      r"no scheduler.auth user may log in from 127\.0\.0\.2")
    # Whatever the credentials, the same answer from there.
    for auth in (("boss", "wrong"), ("ghost", "x"), None):
        assert request(node, "GET", "/api/v1/node", auth,
                       source=outside)[0] == 403, auth

    # 127.0.0.3 is far's: boss (right password) and a user that does not
    # exist get the same 401; only the log tells them apart.
    inside_far = "127.0.0.3"
    answers = {}
    for auth in (BOSS, ("boss", "wrong"), ("ghost", "x")):
        status, text = request(node, "GET", "/api/v1/node", auth,
                               source=inside_far)
        answers[auth] = (status, text)
    assert {a[0] for a in answers.values()} == {401}, answers
    assert len({a[1] for a in answers.values()}) == 1, answers
    node.wait_log(r"admin GET /api/v1/node from 127\.0\.0\.3 refused: "
                  r"user 'boss' may not log in from 127\.0\.0\.3")
    node.wait_log(r"admin GET /api/v1/node from 127\.0\.0\.3 refused: "
                  r"unknown user 'ghost'")
    assert request(node, "GET", "/api/v1/node", ("far", "f4r"),
                   source=inside_far)[0] == 200
    # The probes need no user, from anywhere.
    assert request(node, "GET", "/healthz", source=outside)[0] == 200
