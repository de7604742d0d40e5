"""Helpers for the admin listener tests (admind: docs/admin-api.md).

    api = AdminApi(node)                      # node.admin_port from conftest
    status, body = api.get("/api/v1/node")    # body: parsed JSON or text
    status, body = api.post("/api/v1/etrn", {"domain": "x"},
                            auth=("nobody", "nobody"))
    families = parse_metrics(api.get("/metrics")[1])

Everything goes over real HTTP (http.client) to the node's admind.
"""

import base64
import http.client
import json
import ssl

from conftest import wait_for

# A user with every right, added to a node's scheduler.auth by the tests
# that change state.
ROOT = ("root", "s3cret-root")


def add_root_user(node):
    """Appends ROOT (ALL rights from loopback) to etc/scheduler.auth."""
    path = node.etc / "scheduler.auth"
    with open(path, "a") as f:
        f.write(f"{ROOT[0]}:{ROOT[1]}:ALL:[127.0.0.1]/32,[ipv6:::1]/128\n")


class AdminApi:
    def __init__(self, node, timeout=10, cafile=None):
        """`cafile`: speak HTTPS, trusting that certificate (the node's
        self-signed one); the host name is not checked (127.0.0.1)."""
        self.host = "127.0.0.1"
        self.port = node.admin_port
        self.timeout = timeout
        self.context = None
        if cafile:
            self.context = ssl.create_default_context(cafile=str(cafile))
            self.context.check_hostname = False

    def connection(self):
        if self.context:
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout,
                context=self.context)
        return http.client.HTTPConnection(self.host, self.port,
                                          timeout=self.timeout)

    def request(self, method, path, body=None, auth=None, headers=None):
        """(status, parsed body, response headers)."""
        conn = self.connection()
        try:
            h = dict(headers or {})
            data = None
            if body is not None:
                data = body if isinstance(body, (bytes, str)) else \
                    json.dumps(body)
                h["Content-Type"] = "application/json"
            if auth:
                token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode())
                h["Authorization"] = "Basic " + token.decode()
            conn.request(method, path, body=data, headers=h)
            resp = conn.getresponse()
            raw = resp.read(4 << 20).decode(errors="replace")
            ctype = resp.getheader("Content-Type", "")
            parsed = json.loads(raw) if ctype.startswith(
                "application/json") else raw
            return resp.status, parsed, dict(resp.getheaders())
        finally:
            conn.close()

    def get(self, path, auth=None):
        status, body, _ = self.request("GET", path, auth=auth)
        return status, body

    def post(self, path, body, auth=None):
        status, body, _ = self.request("POST", path, body=body, auth=auth)
        return status, body

    def delete(self, path, auth=None):
        status, body, _ = self.request("DELETE", path, auth=auth)
        return status, body

    def up(self):
        try:
            return self.get("/healthz")[0] == 200
        except (OSError, http.client.HTTPException):
            return False

    def wait_up(self):
        return wait_for(self.up, what=f"admind on port {self.port}")


def parse_metrics(text):
    """{name: family} through prometheus_client's text-format parser."""
    from prometheus_client.parser import text_string_to_metric_families
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample_value(families, name, **labels):
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0
    for fam in families.values():
        for s in fam.samples:
            if s.name != name:
                continue
            if all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total
