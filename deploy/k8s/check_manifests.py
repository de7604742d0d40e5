#!/usr/bin/env python3
"""Checks rendered zmnode manifests for what the schemas cannot see.

    deploy/k8s/render.py deploy/k8s/overlays/inbound-mx | deploy/k8s/check_manifests.py -

Prints one line per problem and exits 1 if there is any. The rules are the
ones docs/operations.md promises (issue 8): probes on the admin port, a
grace period longer than the drain, the node directory on a per-pod volume,
a non-root read-only container with only NET_BIND_SERVICE, peers found
through a headless Service that publishes not-ready pods, client addresses
kept on the SMTP Service, a PodDisruptionBudget of one, anti-affinity, and
resources. tests/integration/test_deploy.py runs it on every overlay (and
on broken copies, to see each rule fail).
"""

import re
import sys

import yaml

ADMIN_PORT = 8025
GOSSIP_PORT = 7946
# The contract's default wait between readyz turning 503 and the 421s
# (drain-readiness-delay), used unless a config file sets it.
DEFAULT_READINESS_DELAY_S = 5
DEFAULT_DRAIN_TIMEOUT_S = 30
# What the rest of the stop takes after the sessions end: leaving the
# fleet and stopping scheduler, router, clusterd, admind (each gets
# SIGTERM; they exit in well under this when healthy).
STOP_MARGIN_S = 20


def _one(objects, kind, problems):
    found = [o for o in objects if o.get("kind") == kind]
    if len(found) != 1:
        problems.append(f"expected one {kind}, found {len(found)}")
        return None
    return found[0]


def _param(conf_text, key):
    """The value of `PARAM key value` in a smtpserver.conf text, or None."""
    for line in conf_text.splitlines():
        m = re.match(r"\s*PARAM\s+(\S+)\s+(\S+)", line)
        if m and m.group(1).lower() == key.lower():
            return m.group(2)
    return None


def _duration_s(text):
    m = re.fullmatch(r"(\d+)(ms|s|m|h)?", text or "")
    if not m:
        return None
    n = int(m.group(1))
    return {"ms": n / 1000, None: n, "s": n, "m": 60 * n, "h": 3600 * n}[
        m.group(2)]


def _port_number(container, port):
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p.get("containerPort")
    return None


def check(objects):
    """Returns a list of problems (empty: all rules hold)."""
    problems = []
    sts = _one(objects, "StatefulSet", problems)
    if sts is None:
        return problems
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    containers = pod.get("containers", [])
    if len(containers) != 1:
        return problems + [f"expected one container, found {len(containers)}"]
    c = containers[0]
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    env_from = {e["name"]: e.get("valueFrom", {}) for e in c.get("env", [])}

    # Identity: node id = pod name, stable per volume.
    if env_from.get("POD_NAME", {}).get("fieldRef", {}).get(
            "fieldPath") != "metadata.name":
        problems.append("POD_NAME is not the pod name (downward API)")
    home = env.get("ZMAILER_HOME")
    if not home:
        problems.append("ZMAILER_HOME is not set")

    # The node directory on a per-pod volume.
    claims = {t["metadata"]["name"]: t for t in spec.get(
        "volumeClaimTemplates", [])}
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    if home and mounts.get(home) not in claims:
        problems.append(f"the node directory {home} is not mounted from a "
                        "volumeClaimTemplate")
    for name, claim in claims.items():
        if "ReadWriteOnce" not in claim["spec"].get("accessModes", []):
            problems.append(f"volume claim {name} is not ReadWriteOnce")
    retention = spec.get("persistentVolumeClaimRetentionPolicy", {})
    if retention.get("whenScaled", "Retain") != "Retain":
        problems.append("scale-in deletes the volumes (and their queues)")

    # Probes on the admin listener.
    ports = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
    if ports.get("admin") != ADMIN_PORT:
        problems.append(f"container port 'admin' is not {ADMIN_PORT}")
    admin_listen = env.get("ZMNODE_ADMIN_LISTEN", "")
    if not admin_listen.endswith(f":{ADMIN_PORT}") or admin_listen.startswith(
            "127."):
        problems.append(f"ZMNODE_ADMIN_LISTEN '{admin_listen}' is not "
                        f"reachable on port {ADMIN_PORT}")
    for probe, path in (("startupProbe", "/healthz"),
                        ("livenessProbe", "/healthz"),
                        ("readinessProbe", "/readyz")):
        p = c.get(probe)
        if not p or "httpGet" not in p:
            problems.append(f"{probe}: missing or not httpGet")
            continue
        if p["httpGet"].get("path") != path:
            problems.append(f"{probe} asks {p['httpGet'].get('path')}, "
                            f"not {path}")
        if _port_number(c, p["httpGet"].get("port")) != ADMIN_PORT:
            problems.append(f"{probe} does not point at the admin port "
                            f"{ADMIN_PORT}")
    if c.get("readinessProbe", {}).get("failureThreshold", 3) > 1:
        problems.append("readinessProbe needs several failures: a draining "
                        "pod keeps getting traffic")

    # Grace period > readiness delay + drain timeout + the rest of the stop.
    configmaps = [o for o in objects if o.get("kind") == "ConfigMap"]
    smtp_conf = next((cm["data"]["smtpserver.conf"] for cm in configmaps
                      if "smtpserver.conf" in cm.get("data", {})), None)
    drain = DEFAULT_DRAIN_TIMEOUT_S
    delay = DEFAULT_READINESS_DELAY_S
    if smtp_conf is None:
        problems.append("no ConfigMap carries smtpserver.conf")
    else:
        value = _param(smtp_conf, "drain-timeout")
        if value is not None:
            drain = _duration_s(value)
            if drain is None:
                problems.append(f"drain-timeout '{value}' is not a duration")
                drain = DEFAULT_DRAIN_TIMEOUT_S
        value = _param(smtp_conf, "drain-readiness-delay")
        if value is not None and _duration_s(value) is not None:
            delay = _duration_s(value)
    grace = pod.get("terminationGracePeriodSeconds", 30)
    need = delay + drain + STOP_MARGIN_S
    if grace <= need:
        problems.append(f"terminationGracePeriodSeconds {grace} is not longer "
                        f"than the drain ({delay} s readiness delay + "
                        f"{drain} s drain-timeout + {STOP_MARGIN_S} s stop)")

    # Security context.
    psc = pod.get("securityContext", {})
    csc = c.get("securityContext", {})
    if not (psc.get("runAsNonRoot") or csc.get("runAsNonRoot")):
        problems.append("runAsNonRoot is not set")
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    if not uid:
        problems.append("no non-zero runAsUser")
    if not csc.get("readOnlyRootFilesystem"):
        problems.append("the root file system is writable")
    if csc.get("allowPrivilegeEscalation", True):
        problems.append("allowPrivilegeEscalation is not false")
    if csc.get("privileged"):
        problems.append("the container is privileged")
    caps = csc.get("capabilities", {})
    if [x.upper() for x in caps.get("drop", [])] != ["ALL"]:
        problems.append("capabilities: drop is not [ALL]")
    if [x.upper() for x in caps.get("add", [])] != ["NET_BIND_SERVICE"]:
        problems.append(f"capabilities added: {caps.get('add')}, want only "
                        "NET_BIND_SERVICE")
    # A non-root process gets no ambient capabilities from Kubernetes:
    # ports below 1024 need the pod's unprivileged-port sysctl.
    low = [p.get("containerPort") for p in c.get("ports", [])
           if p.get("containerPort", 1024) < 1024]
    sysctls = {x["name"]: x.get("value") for x in psc.get("sysctls", [])}
    start = sysctls.get("net.ipv4.ip_unprivileged_port_start", "1024")
    if low and (not str(start).isdigit() or int(start) > min(low)):
        problems.append(f"non-root cannot bind port {min(low)}: set sysctl "
                        "net.ipv4.ip_unprivileged_port_start (now "
                        f"{start})")
    if "/tmp" not in mounts:
        problems.append("no writable /tmp with a read-only root")

    # Resources.
    res = c.get("resources", {})
    for kind in ("requests", "limits"):
        for r in ("cpu", "memory"):
            if r not in res.get(kind, {}):
                problems.append(f"resources.{kind}.{r} is not set")

    # Anti-affinity across Kubernetes nodes, matching the pods' labels.
    labels = spec["template"]["metadata"].get("labels", {})
    anti = pod.get("affinity", {}).get("podAntiAffinity", {})
    terms = anti.get("requiredDuringSchedulingIgnoredDuringExecution", []) + [
        t.get("podAffinityTerm", {}) for t in anti.get(
            "preferredDuringSchedulingIgnoredDuringExecution", [])]
    if not any(t.get("topologyKey") == "kubernetes.io/hostname" and
               t.get("labelSelector", {}).get("matchLabels", {}).items()
               <= labels.items() and t.get("labelSelector") for t in terms):
        problems.append("no pod anti-affinity on kubernetes.io/hostname "
                        "for these pods")

    # Peer discovery: the StatefulSet's headless Service.
    services = {o["metadata"]["name"]: o for o in objects
                if o.get("kind") == "Service"}
    peers = services.get(spec.get("serviceName"))
    if peers is None:
        problems.append(f"serviceName {spec.get('serviceName')} is not "
                        "a rendered Service")
    else:
        if peers["spec"].get("clusterIP") != "None":
            problems.append("the peer Service is not headless")
        if not peers["spec"].get("publishNotReadyAddresses"):
            problems.append("the peer Service does not publish not-ready "
                            "pods (starting nodes cannot find their peers)")
        if env.get("ZMNODE_PEER_SERVICE") != peers["metadata"]["name"]:
            problems.append("ZMNODE_PEER_SERVICE is not the peer Service")
        if ports.get("gossip") != GOSSIP_PORT or env.get(
                "ZMNODE_GOSSIP_PORT") != str(GOSSIP_PORT):
            problems.append(f"gossip is not on port {GOSSIP_PORT}")

    # SMTP Services keep the client address.
    smtp_services = [s for s in services.values()
                     if any(p.get("port") == 25 for p in s["spec"]["ports"])]
    if not smtp_services:
        problems.append("no Service exposes port 25")
    for s in smtp_services:
        if s["spec"].get("type") in ("LoadBalancer", "NodePort") and s[
                "spec"].get("externalTrafficPolicy") != "Local":
            problems.append(f"Service {s['metadata']['name']} loses the "
                            "client address (externalTrafficPolicy)")
        for p in s["spec"]["ports"]:
            target = p.get("targetPort", p.get("port"))
            if _port_number(c, target) is None:
                problems.append(f"Service {s['metadata']['name']} port "
                                f"{p.get('port')} targets {target}, which "
                                "the container does not expose")
        if not s["spec"].get("selector", {}).items() <= labels.items():
            problems.append(f"Service {s['metadata']['name']} selects "
                            "other pods")

    # Disruption budget.
    pdb = _one(objects, "PodDisruptionBudget", problems)
    if pdb is not None:
        if pdb["spec"].get("maxUnavailable") != 1:
            problems.append("PodDisruptionBudget maxUnavailable is not 1")
        if not pdb["spec"].get("selector", {}).get(
                "matchLabels", {}).items() <= labels.items():
            problems.append("PodDisruptionBudget selects other pods")

    # Every ConfigMap and Secret the pod mounts is rendered.
    rendered = {(o["kind"], o["metadata"]["name"]) for o in objects}
    for vol in pod.get("volumes", []):
        if "configMap" in vol and ("ConfigMap", vol["configMap"]["name"]) \
                not in rendered:
            problems.append(f"volume {vol['name']}: ConfigMap "
                            f"{vol['configMap']['name']} is not rendered")
        if "secret" in vol and ("Secret", vol["secret"]["secretName"]) \
                not in rendered:
            problems.append(f"volume {vol['name']}: Secret "
                            f"{vol['secret']['secretName']} is not rendered")
    return problems


def main(argv):
    if len(argv) != 2:
        print("usage: check_manifests.py RENDERED.yaml|-", file=sys.stderr)
        return 64
    stream = sys.stdin if argv[1] == "-" else open(argv[1], encoding="utf-8")
    objects = [o for o in yaml.safe_load_all(stream) if o]
    problems = check(objects)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
