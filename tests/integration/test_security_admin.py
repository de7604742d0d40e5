"""admind refuses wrong passwords and addresses outside a user's masks.

scheduler.auth (the same file and format as the scheduler's admin socket)
gives each user address masks. A user `boss` allowed from 127.0.0.1/32
only, with `read-auth yes` so every API request needs a user:

- from 127.0.0.1 with the right password: 200 (API and dashboard);
- from 127.0.0.1 with a wrong password: 401;
- from 127.0.0.2 (outside the mask), with the right password or not: 403,
  for reading, for the dashboard and for a state change, and admind logs
  each refusal with the address and the reason;
- an unknown user from anywhere: 401.
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
        with open(n.etc / "admin.conf", "a") as f:
            f.write("read-auth yes\n")

    node = node_factory(setup=setup)
    AdminApi(node).wait_up()

    assert request(node, "GET", "/api/v1/node", BOSS)[0] == 200
    assert request(node, "GET", "/", BOSS)[0] == 200
    assert request(node, "GET", "/api/v1/node", ("boss", "wrong"))[0] == 401
    assert request(node, "GET", "/api/v1/node")[0] == 401

    outside = "127.0.0.2"
    for method, path, body in (("GET", "/api/v1/node", None),
                               ("GET", "/", None),
                               ("POST", "/api/v1/etrn", {"domain": "x.test"})):
        status, text = request(node, method, path, BOSS, source=outside,
                               body=body)
        assert status == 403, (method, path, status, text)
        assert "may not log in from 127.0.0.2" in text, text
        node.wait_log(rf"admin {method} {path} from {outside} refused: "
                      r"user 'boss' may not log in from 127\.0\.0\.2")
    # A wrong password from there is refused the same way (the answer
    # says nothing about the password) ...
    assert request(node, "GET", "/api/v1/node", ("boss", "wrong"),
                   source=outside)[0] == 403
    # ... and an unknown user is a plain 401.
    assert request(node, "GET", "/api/v1/node", ("ghost", "x"),
                   source=outside)[0] == 401
    # The probes need no user, from anywhere.
    assert request(node, "GET", "/healthz", source=outside)[0] == 200
