"""Deployment artefacts of deploy/ (issue 8), checked without a cluster.

- Kubernetes: each overlay is rendered (deploy/k8s/render.py; and
  `kubectl kustomize`, when installed, must give the same objects),
  validated against the Kubernetes schemas (npm kubernetes-models, pinned
  in deploy/validate/package-lock.json), and checked for the promises of
  docs/operations.md (deploy/k8s/check_manifests.py; broken copies must
  fail each rule). The source YAML is yamllint-clean.
- The container: the build is installed into a temporary prefix, and every
  shared library the installed programs need (ldd) must come from a package
  in the Containerfile's runtime list (dpkg -S maps file -> package). The
  entrypoint initializes a node volume the way a pod would and starts it.
- VMs: `systemd-analyze verify` of the unit (as install.sh writes it) says
  nothing, and the logrotate file rotates a live log.
"""

import base64
import copy
import json
import os
import pathlib
import random
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

import pytest
import yaml

from conftest import BIN, COMMAND_TIMEOUT, DEFAULT_WAIT, Node, free_port, \
    wait_for
from smtpserver_util import command, connect, read_reply, set_params

REPO = pathlib.Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("inbound-mx", "outbound-submission")
BUILD = BIN.parent

sys.path.insert(0, str(K8S))
import check_manifests  # noqa: E402
import render  # noqa: E402


def run(cmd, **kw):
    kw.setdefault("timeout", COMMAND_TIMEOUT)
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, **kw)


# ----- Kubernetes -----

@pytest.fixture(scope="module")
def k8s_tree(tmp_path_factory):
    """A copy of deploy/k8s with each overlay's secrets made by
    make-secrets.sh (they are never in git)."""
    tree = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, tree, ignore=shutil.ignore_patterns(
        "secrets", "__pycache__"))
    for overlay in OVERLAYS:
        proc = run(["sh", str(tree / "make-secrets.sh"),
                    str(tree / "overlays" / overlay), "mx.example.net"])
        assert proc.returncode == 0, proc.stderr
        assert "password" in proc.stdout
    return tree


@pytest.fixture(scope="module")
def rendered(k8s_tree):
    return {o: render.render(k8s_tree / "overlays" / o) for o in OVERLAYS}


def normalized(objects):
    """Objects keyed by kind/name with generated-name hashes and Secret
    encodings taken out (kubectl's kustomize computes its own suffixes;
    test_kustomize_hash_vectors checks ours against kustomize's)."""
    generated = {o["metadata"]["name"] for o in objects
                 if o["kind"] in ("ConfigMap", "Secret")}
    text = yaml.safe_dump(list(objects), sort_keys=True)
    for name in generated:
        text = text.replace(name, name.rsplit("-", 1)[0] + "-HASH")
    out = {}
    for o in yaml.safe_load(text):
        if o["kind"] == "Secret":
            o["data"] = {k: base64.b64decode(v) for k, v in o["data"].items()}
        out[(o["kind"], o["metadata"]["name"])] = o
    return out


def test_kustomize_hash_vectors():
    # Kustomize's own test vectors (api/hasher): our suffixes are the same
    # function of the content.
    assert render.kustomize_hash(
        {"kind": "ConfigMap", "metadata": {"name": ""},
         "data": {"one": ""}}) == "9g67k2htb6"
    a = render.kustomize_hash({"kind": "ConfigMap", "metadata": {"name": "c"},
                               "data": {"smtpserver.conf": "PARAM a 1\n"}})
    b = render.kustomize_hash({"kind": "ConfigMap", "metadata": {"name": "c"},
                               "data": {"smtpserver.conf": "PARAM a 2\n"}})
    assert a != b, "a config change must change the name (and roll the pods)"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_render_same_as_kubectl(k8s_tree, rendered, overlay):
    kubectl = shutil.which("kubectl")
    if not kubectl:
        pytest.skip("kubectl not installed: render.py alone renders")
    proc = run([kubectl, "kustomize", str(k8s_tree / "overlays" / overlay)])
    assert proc.returncode == 0, proc.stderr
    theirs = normalized([o for o in yaml.safe_load_all(proc.stdout) if o])
    ours = normalized(rendered[overlay])
    assert sorted(ours) == sorted(theirs)
    for key in ours:
        assert ours[key] == theirs[key], f"{key} differs from kubectl's"


def test_render_refuses_what_it_does_not_understand(k8s_tree, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(k8s_tree / "overlays" / "inbound-mx", bad)
    kfile = bad / "kustomization.yaml"
    text = kfile.read_text().replace("../../base", str(k8s_tree / "base"))
    kfile.write_text(text + "commonLabels:\n  team: mail\n")
    proc = run([sys.executable, str(K8S / "render.py"), str(bad)])
    assert proc.returncode == 1
    assert "commonLabels" in proc.stderr


def test_overlays_differ_where_they_should(rendered):
    def sts(objs):
        return next(o for o in objs if o["kind"] == "StatefulSet")

    def smtp_ports(objs):
        svc = next(o for o in objs if o["kind"] == "Service" and
                   o["metadata"]["name"] == "zmnode-smtp")
        return sorted(p["port"] for p in svc["spec"]["ports"])

    mx, sub = rendered["inbound-mx"], rendered["outbound-submission"]
    assert smtp_ports(mx) == [25]
    assert smtp_ports(sub) == [25, 465, 587]
    env = {e["name"]: e.get("value") for e in
           sts(sub)["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["ZMNODE_MAIL_DOMAIN"] == "smtp.example.net"
    conf = next(o for o in sub if o["kind"] == "ConfigMap")["data"]
    assert "PARAM BindSubmit  @SUBMISSION_PORT@" in conf["smtpserver.conf"]
    assert "scheduler.conf" in conf, "merge keeps the base's files"
    assert {o["metadata"].get("namespace") for o in mx
            if o["kind"] != "Namespace"} == {"mail-mx"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_manifests_keep_their_promises(rendered, overlay):
    assert check_manifests.check(rendered[overlay]) == []


def _sts_container(objs):
    sts = next(o for o in objs if o["kind"] == "StatefulSet")
    return sts, sts["spec"]["template"]["spec"]["containers"][0]


def _break_grace(objs):
    _sts_container(objs)[0]["spec"]["template"]["spec"][
        "terminationGracePeriodSeconds"] = 60


def _break_drain(objs):
    cm = next(o for o in objs if o["kind"] == "ConfigMap")
    cm["data"]["smtpserver.conf"] = cm["data"]["smtpserver.conf"].replace(
        "PARAM drain-timeout      60", "PARAM drain-timeout      200")


def _break_probe_port(objs):
    _sts_container(objs)[1]["readinessProbe"]["httpGet"]["port"] = 25


def _break_probe_path(objs):
    _sts_container(objs)[1]["livenessProbe"]["httpGet"]["path"] = "/readyz"


def _break_pvc_mount(objs):
    for m in _sts_container(objs)[1]["volumeMounts"]:
        if m["mountPath"] == "/var/lib/zmnode":
            m["mountPath"] = "/data"


def _break_caps(objs):
    _sts_container(objs)[1]["securityContext"]["capabilities"]["add"].append(
        "NET_ADMIN")


def _break_rootfs(objs):
    _sts_container(objs)[1]["securityContext"]["readOnlyRootFilesystem"] = \
        False


def _break_nonroot(objs):
    sts = _sts_container(objs)[0]
    del sts["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"]


def _break_low_ports(objs):
    sts = _sts_container(objs)[0]
    del sts["spec"]["template"]["spec"]["securityContext"]["sysctls"]


def _break_peers(objs):
    svc = next(o for o in objs if o["kind"] == "Service" and
               o["metadata"]["name"] == "zmnode-peers")
    del svc["spec"]["publishNotReadyAddresses"]


def _break_traffic_policy(objs):
    svc = next(o for o in objs if o["kind"] == "Service" and
               o["metadata"]["name"] == "zmnode-smtp")
    svc["spec"]["externalTrafficPolicy"] = "Cluster"


def _break_pdb(objs):
    next(o for o in objs if o["kind"] == "PodDisruptionBudget")["spec"][
        "maxUnavailable"] = 2


def _break_affinity(objs):
    del _sts_container(objs)[0]["spec"]["template"]["spec"]["affinity"]


def _break_limits(objs):
    del _sts_container(objs)[1]["resources"]["limits"]


def _break_secret_ref(objs):
    objs[:] = [o for o in objs if not (
        o["kind"] == "Secret" and "peer-ca" in o["metadata"]["name"])]


@pytest.mark.parametrize("breaker,expect", [
    (_break_grace, "terminationGracePeriodSeconds"),
    (_break_drain, "terminationGracePeriodSeconds"),
    (_break_probe_port, "readinessProbe does not point at the admin port"),
    (_break_probe_path, "livenessProbe asks /readyz"),
    (_break_pvc_mount, "not mounted from a volumeClaimTemplate"),
    (_break_caps, "want only NET_BIND_SERVICE"),
    (_break_rootfs, "root file system is writable"),
    (_break_nonroot, "runAsNonRoot"),
    (_break_low_ports, "cannot bind port 25"),
    (_break_peers, "publish not-ready"),
    (_break_traffic_policy, "externalTrafficPolicy"),
    (_break_pdb, "maxUnavailable"),
    (_break_affinity, "anti-affinity"),
    (_break_limits, "resources.limits"),
    (_break_secret_ref, "peer-ca"),
])
def test_manifest_checks_catch_mistakes(rendered, breaker, expect):
    objs = copy.deepcopy(rendered["outbound-submission"])
    breaker(objs)
    problems = check_manifests.check(objs)
    assert any(expect in p for p in problems), problems


@pytest.fixture(scope="module")
def validator():
    node = shutil.which("node")
    if not node:
        pytest.skip("no node.js (Debian: nodejs, npm) for kubernetes-models")
    vdir = DEPLOY / "validate"
    if not (vdir / "node_modules" / "kubernetes-models").is_dir():
        proc = run(["npm", "ci", "--no-audit", "--no-fund"], cwd=vdir,
                   timeout=600)
        if proc.returncode != 0:
            pytest.skip("npm ci in deploy/validate failed (offline?): "
                        + proc.stderr.strip().splitlines()[-1])
    return [node, str(vdir / "validate.js")]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_manifests_match_kubernetes_schemas(rendered, validator, overlay,
                                            tmp_path):
    path = tmp_path / "objects.json"
    path.write_text(json.dumps(rendered[overlay]))
    proc = run(validator + [str(path)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    kinds = {line.split()[-1] for line in proc.stdout.splitlines()}
    assert {"StatefulSet", "Service", "PodDisruptionBudget", "ConfigMap",
            "Secret"} <= kinds


def test_schema_validation_rejects_bad_objects(rendered, validator, tmp_path):
    objs = copy.deepcopy(rendered["inbound-mx"])
    _sts_container(objs)[0]["spec"]["replicas"] = "three"
    objs.append({"apiVersion": "v1", "kind": "Servise",
                 "metadata": {"name": "typo"}})
    path = tmp_path / "objects.json"
    path.write_text(json.dumps(objs))
    proc = run(validator + [str(path)])
    assert proc.returncode == 1
    assert "replicas must be integer" in proc.stdout
    assert "no schema for v1 Servise" in proc.stdout


def test_yamllint_clean():
    if not shutil.which("yamllint"):
        pytest.skip("yamllint not installed (scripts/install-deps)")
    files = [p for p in DEPLOY.rglob("*.yaml") if "node_modules" not in p.parts
             and "secrets" not in p.parts]
    assert len(files) >= 10
    proc = run(["yamllint", "-s", "-c", str(DEPLOY / ".yamllint"),
                *map(str, files)])
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ----- the container -----

def runtime_packages():
    text = (DEPLOY / "container" / "Containerfile").read_text()
    block = text.split("# BEGIN RUNTIME_PACKAGES")[1].split(
        "# END RUNTIME_PACKAGES")[0]
    names = re.findall(r"^\s+([a-z0-9][a-z0-9.+-]+) \\$", block, re.M)
    assert names, "no package list between the markers"
    return set(names)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """`cmake --install` of this build into a temporary prefix."""
    if not (BUILD / "CMakeCache.txt").is_file():
        pytest.skip(f"{BUILD} is not a CMake build folder")
    prefix = tmp_path_factory.mktemp("prefix")
    proc = run(["cmake", "--install", str(BUILD), "--prefix", str(prefix)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    programs = sorted(p for p in (prefix / "bin").iterdir()
                      if p.is_file() and os.access(p, os.X_OK))
    assert any(p.name == "zmailer" for p in programs)
    return prefix, programs


def dependency_closure(packages):
    """The packages apt installs for `packages`: them and, recursively,
    their Depends and Pre-Depends (each alternative that is installed
    here)."""
    seen, todo = set(), list(packages)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        proc = run(["dpkg-query", "-W", "-f=${Depends}, ${Pre-Depends}",
                    name])
        if proc.returncode != 0:
            continue  # not installed here: nothing to follow
        for alt in re.split(r"[,|]", proc.stdout):
            dep = re.sub(r"\(.*?\)", "", alt).strip().split(":")[0]
            if dep and dep not in seen:
                todo.append(dep)
    return seen


def sanitizer_build():
    cache = (BUILD / "CMakeCache.txt").read_text()
    return re.search(r"^ZM_SANITIZE:BOOL=ON$", cache, re.M) is not None


def test_runtime_stage_provides_every_library(installed):
    prefix, programs = installed
    listed = runtime_packages()
    wanted = dependency_closure(listed)
    for name in listed:
        assert run(["dpkg-query", "-W", name]).returncode == 0, \
            f"{name} (runtime list) is not a package installed here"
    libs = {}
    for prog in programs:
        proc = run(["ldd", str(prog)])
        if "not a dynamic executable" in proc.stdout + proc.stderr:
            continue
        assert proc.returncode == 0, proc.stderr
        for line in proc.stdout.splitlines():
            assert "not found" not in line, f"{prog.name}: {line.strip()}"
            m = re.match(r"\s*(\S+) => (/\S+)", line) or re.match(
                r"\s*(/\S+) \(", line)
            if m:
                libs.setdefault(os.path.realpath(m.groups()[-1]),
                                set()).add(prog.name)
    assert len(libs) > 10
    # Sanitizer runtimes exist only in ZM_SANITIZE builds; the image is a
    # release build.
    skip = re.compile(r"/lib(asan|ubsan|lsan|tsan)\.so") \
        if sanitizer_build() else None
    missing = []
    for lib, users in sorted(libs.items()):
        if skip and skip.search(lib):
            continue
        proc = run(["dpkg", "-S", lib])
        if proc.returncode != 0:
            # Merged /usr: dpkg knows /lib/x86_64-linux-gnu/..., ldd says /usr/lib/...
            alt = re.sub(r"^/usr/lib/", "/lib/", lib)
            proc = run(["dpkg", "-S", alt])
        assert proc.returncode == 0, f"{lib} (used by {sorted(users)}) " \
            "belongs to no Debian package"
        packages = {p.strip().split(":")[0]
                    for p in proc.stdout.split(": ")[0].split(",")}
        if not packages & wanted:
            missing.append(f"{lib} from {sorted(packages)} "
                           f"(used by {', '.join(sorted(users)[:4])})")
    assert not missing, "not in the runtime stage's list:\n" + "\n".join(
        missing)


def test_runtime_list_has_no_build_packages():
    for name in runtime_packages():
        assert not name.endswith("-dev"), name
        assert name not in ("build-essential", "cmake", "ninja-build", "g++")


# ----- the entrypoint (what a pod does at start) -----

def quiet_port():
    """A free port below the kernel's ephemeral range.

    The entrypoint's node listens on 0.0.0.0 (gossip), so a port that any
    other test's outgoing connection happens to use as its local port
    (free_port() draws from the same ephemeral range) would make the bind
    fail while tests run in parallel."""
    low = 32768
    try:
        low = int(pathlib.Path(
            "/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    return free_port()


@pytest.fixture
def pod(tmp_path_factory, k8s_tree, rendered):
    """The mounts of an outbound-submission pod, made from the rendered
    ConfigMap and the generated Secrets, on free loopback ports."""
    root = pathlib.Path(tempfile.mkdtemp(prefix="zmdp-", dir="/tmp"))
    objs = rendered["outbound-submission"]
    mounts = {"config": "ConfigMap", "smtp-tls": "zmnode-smtp-tls",
              "peer-ca": "zmnode-peer-ca", "etc-secrets": "zmnode-etc-secrets"}
    for folder, which in mounts.items():
        d = root / folder
        d.mkdir()
        obj = next(o for o in objs if o["kind"] == which or
                   o["metadata"]["name"].startswith(which + "-"))
        for key, value in obj["data"].items():
            data = base64.b64decode(value) if obj["kind"] == "Secret" \
                else value.encode()
            (d / key).write_bytes(data)
    (root / "node").mkdir()
    (root / "node" / "lost+found").mkdir()  # as on a fresh ext4 volume
    (root / "tmp").mkdir()
    ports = {k: quiet_port() for k in
             ("smtp", "submission", "smtps", "gossip", "admin")}
    env = dict(os.environ)
    env.update({
        "PATH": f"{BIN}:{env.get('PATH', '/usr/bin:/bin')}",
        "POD_NAME": "zmnode-0", "POD_NAMESPACE": "mail-submission",
        "ZMAILER_HOME": str(root / "node"),
        "ZMNODE_MAIL_DOMAIN": "smtp.example.net",
        "ZMNODE_SMTP_PORT": str(ports["smtp"]),
        "ZMNODE_SUBMISSION_PORT": str(ports["submission"]),
        "ZMNODE_SMTPS_PORT": str(ports["smtps"]),
        "ZMNODE_GOSSIP_PORT": str(ports["gossip"]),
        "ZMNODE_ADMIN_LISTEN": f"127.0.0.1:{ports['admin']}",
        # No cluster DNS here: the node advertises and seeds by loopback.
        "ZMNODE_ADVERTISE": f"127.0.0.1:{ports['gossip']}",
        "ZMNODE_SEED_DNS": "localhost",
        "ZMNODE_CONFIG_DIR": str(root / "config"),
        "ZMNODE_SMTP_TLS_DIR": str(root / "smtp-tls"),
        "ZMNODE_PEER_CA_DIR": str(root / "peer-ca"),
        "ZMNODE_ETC_SECRETS_DIR": str(root / "etc-secrets"),
        "TMPDIR": str(root / "tmp"),
    })
    node = Node(root / "node", ports["smtp"], "zmnode-0")
    env["ASAN_OPTIONS"] = node.env["ASAN_OPTIONS"]
    env["UBSAN_OPTIONS"] = node.env["UBSAN_OPTIONS"]
    yield root, env, ports, node
    leftovers = node.teardown(dump=True)
    shutil.rmtree(root, ignore_errors=True)
    assert not leftovers, f"processes left: {leftovers}"


ENTRYPOINT = str(DEPLOY / "container" / "entrypoint.sh")


def smtp_banner(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.settimeout(10)
            return s.recv(512).decode(errors="replace")
    except OSError:
        return None


def test_entrypoint_inits_once_and_starts_the_node(pod):
    root, env, ports, node = pod
    home = root / "node"
    # First start, init only (a command after the entrypoint replaces
    # `zmailer start -f`).
    proc = run(["sh", ENTRYPOINT, "true"], env=env)
    assert proc.returncode == 0, proc.stderr
    assert "initialized node zmnode-0" in proc.stderr
    cluster = (home / "etc" / "cluster.conf").read_text()
    assert re.search(r"^node-id zmnode-0$", cluster, re.M)
    assert re.search(rf"^gossip-listen\s+0.0.0.0:{ports['gossip']}$",
                     cluster, re.M)
    assert re.search(r"^seed-dns\s+localhost$", cluster, re.M)
    mail = (home / "etc" / "mail.conf").read_text()
    assert "hostname=zmnode-0.smtp.example.net" in mail
    # The ConfigMap's file, placeholders filled in.
    conf = (home / "etc" / "smtpserver.conf").read_text()
    assert f"PARAM BindSubmit  {ports['submission']}" in conf
    assert "@" + "HOSTNAME@" not in conf
    # The Secrets: STARTTLS certificate, credentials (0600), and a peer
    # certificate issued for this pod from the fleet CA, whose key is gone.
    assert (home / "etc" / "tls" / "smtpserver-cert.pem").read_bytes() == \
        (root / "smtp-tls" / "tls.crt").read_bytes()
    for secret in ("scheduler.auth", "smtp-auth.passwd",
                   "tls/smtpserver-key.pem"):
        assert (home / "etc" / secret).stat().st_mode & 0o077 == 0, secret
    subject = run(["openssl", "x509", "-noout", "-subject", "-issuer", "-in",
                   str(home / "etc" / "tls" / "cluster-cert.pem")]).stdout
    assert "CN = zmnode-0" in subject and "zmnode fleet CA" in subject
    assert not list((root / "tmp").iterdir()), "the CA copy was not removed"
    assert not list(home.rglob("ca-key.pem"))

    # Second start: no second init (the spool survives), then the node
    # itself, in the foreground as PID 1 would run it.
    marker = home / "spool" / "deferred" / "keep-me"
    marker.write_text("queued before the restart\n")
    # The supervisor mirrors every log line to stderr: a file, not a pipe
    # nobody reads while it runs.
    errfile = root / "entrypoint.stderr"
    with open(errfile, "w") as err:
        proc = subprocess.Popen(["sh", ENTRYPOINT], env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
    try:
        try:
            banner = wait_for(lambda: smtp_banner(ports["submission"]),
                              timeout=DEFAULT_WAIT, interval=0.2,
                              what="the submission port to answer")
        except AssertionError as e:
            # Why a program would not start (a bind failure, a sanitizer
            # report) is on stderr or in the sanitizer's files, not in the
            # maillog.
            # In the foreground the programs' stderr is the supervisor's.
            files = [errfile] + sorted(node.sanitizer_dir.glob("report*"))
            said = "".join(
                f"\n--- {f.name} ---\n{f.read_text(errors='replace')[-6000:]}"
                for f in files)
            raise AssertionError(f"{e}{said}") from None
        assert banner.startswith("220 zmnode-0.smtp.example.net")
        with smtplib.SMTP("127.0.0.1", ports["submission"],
                          timeout=30) as s:
            s.ehlo("client.example")
            assert s.has_extn("starttls")
        wait_for(lambda: smtp_banner(ports["smtp"]), timeout=DEFAULT_WAIT,
                 interval=0.2, what="port 25's stand-in to answer")
        assert marker.read_text() == "queued before the restart\n"
        # The fleet agent runs with the pod's certificate; the admin
        # listener answers the probes (once admind is part of the build).
        if (BIN / "clusterd").exists():
            wait_for(lambda: node.running("clusterd"), timeout=DEFAULT_WAIT,
                     what="clusterd to run")
        if (BIN / "admind").exists():
            def probe(path):
                try:
                    with urllib.request.urlopen(
                            f"http://127.0.0.1:{ports['admin']}{path}",
                            timeout=10) as r:
                        return r.status, r.read().decode()
                except urllib.error.HTTPError as e:
                    return e.code, e.read().decode()
                except OSError:
                    return None
            assert wait_for(lambda: probe("/healthz"), timeout=DEFAULT_WAIT,
                            what="admind's /healthz")[0] == 200
            assert wait_for(lambda: (probe("/readyz") or (0,))[0] == 200,
                            timeout=DEFAULT_WAIT, what="/readyz 200")
        # The entrypoint exec'd the supervisor: SIGTERM to "PID 1" stops
        # the node cleanly.
        assert node.pid("zmailer") == proc.pid
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=150)
        assert proc.returncode == 0, errfile.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "initialized node" not in errfile.read_text()


def test_entrypoint_refuses_another_pods_volume(pod):
    root, env, ports, node = pod
    assert run(["sh", ENTRYPOINT, "true"], env=env).returncode == 0
    env = dict(env, POD_NAME="zmnode-1")
    proc = run(["sh", ENTRYPOINT, "true"], env=env)
    assert proc.returncode == 78
    assert "holds node 'zmnode-0', not 'zmnode-1'" in proc.stderr


# ----- VMs: systemd and logrotate -----

def test_install_sh_writes_unit_and_logrotate(tmp_path):
    dest = tmp_path / "root"
    proc = run(["sh", str(DEPLOY / "systemd" / "install.sh"), "--prefix",
                "/opt/zm", "--home", "/srv/mx1"],
               env=dict(os.environ, DESTDIR=str(dest)))
    assert proc.returncode == 0, proc.stderr
    unit = (dest / "etc/systemd/system/zmnode.service").read_text()
    assert "ExecStart=/opt/zm/bin/zmailer -C /srv/mx1 start -f" in unit
    assert "ReadWritePaths=/srv/mx1" in unit
    assert "/var/lib/zmnode" not in unit
    rotate = (dest / "etc/logrotate.d/zmnode").read_text()
    assert "/srv/mx1/log/maillog " in rotate


def test_systemd_unit_is_hardened():
    unit = (DEPLOY / "systemd" / "zmnode.service").read_text()
    settings = dict(re.findall(r"^(\w+)=(.*)$", unit, re.M))
    assert settings["Type"] == "simple"
    assert settings["ExecStart"].endswith(" start -f")
    for key, value in (("NoNewPrivileges", "yes"),
                       ("ProtectSystem", "strict"),
                       ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                       ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
                       ("AmbientCapabilities", "CAP_NET_BIND_SERVICE"),
                       ("ReadWritePaths", "/var/lib/zmnode")):
        assert settings.get(key) == value, key
    assert settings["User"] != "root"
    # The stop is a drain: longer than the smtpserver's drain-timeout
    # default (30 s) + readiness delay (5 s) + the other programs' stop.
    assert int(settings["TimeoutStopSec"]) > 30 + 5 + 20


def test_systemd_analyze_verify_is_silent(installed, tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze not installed")
    prefix, _ = installed
    dest = tmp_path / "root"
    proc = run(["sh", str(DEPLOY / "systemd" / "install.sh"), "--prefix",
                str(prefix), "--home", str(tmp_path / "node")],
               env=dict(os.environ, DESTDIR=str(dest)))
    assert proc.returncode == 0, proc.stderr
    unit = dest / "etc/systemd/system/zmnode.service"
    proc = run(["systemd-analyze", "verify", "--man=no", str(unit)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == "" and proc.stderr.strip() == "", \
        proc.stdout + proc.stderr
    # And it can fail: a program that is not there.
    broken = tmp_path / "zmnode.service"
    broken.write_text(unit.read_text().replace(f"{prefix}/bin/zmailer",
                                               f"{prefix}/bin/nonesuch"))
    proc = run(["systemd-analyze", "verify", "--man=no", str(broken)])
    assert proc.returncode != 0 and "nonesuch" in proc.stderr


def test_logrotate_rotates_a_live_log(tmp_path):
    logrotate = shutil.which("logrotate") or (
        "/usr/sbin/logrotate" if os.path.exists("/usr/sbin/logrotate")
        else None)
    if not logrotate:
        pytest.skip("logrotate not installed (scripts/install-deps)")
    home = tmp_path / "node"
    (home / "log").mkdir(parents=True)
    log = home / "log" / "maillog"
    # A writer holding the file open with O_APPEND, as every program does.
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, b"before rotation\n")
        conf = (DEPLOY / "systemd" / "zmnode.logrotate").read_text()
        conf = conf.replace("/var/lib/zmnode", str(home))
        # Run as whoever runs the test, not the zmnode user.
        conf = re.sub(r"^\s*su .*$", "", conf, flags=re.M)
        (tmp_path / "zmnode.conf").write_text(conf)
        proc = run([logrotate, "-f", "-s", str(tmp_path / "state"),
                    str(tmp_path / "zmnode.conf")])
        assert proc.returncode == 0, proc.stdout + proc.stderr
        os.write(fd, b"after rotation\n")
    finally:
        os.close(fd)
    assert (home / "log" / "maillog.1").read_text() == "before rotation\n"
    # copytruncate: the same file, emptied; the writer's next line is at
    # its start, not after a hole.
    assert log.read_bytes() == b"after rotation\n"


# ----- PROXY protocol: the alternative to externalTrafficPolicy: Local -----

def proxy_v1(src, port, dst="127.0.0.1", dport=25):
    family = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {family} {src} {dst} {port} {dport}\r\n".encode()


def proxy_v2(src, port, dst="127.0.0.1", dport=25, command=1):
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    body = (socket.inet_aton(src) + socket.inet_aton(dst) +
            port.to_bytes(2, "big") + dport.to_bytes(2, "big"))
    fam = 0x11 if command else 0x00
    if not command:
        body = b""
    return sig + bytes([0x20 | command, fam]) + len(body).to_bytes(
        2, "big") + body


def proxied_session(port, header):
    """Connects, sends `header`, returns (socket, greeting or '')."""
    s = connect(port)
    s.sendall(header)
    try:
        return s, read_reply(s)
    except OSError:
        return s, ""


@pytest.fixture
def proxy_node(node_factory):
    def setup(n):
        set_params(n, proxy_protocol="smtp", proxy_trusted="127.0.0.0/8",
                   proxy_timeout=2, MaxSameIpSource=1)
    return node_factory(setup=setup)


def test_proxy_header_names_the_client(proxy_node):
    node = proxy_node
    s, greeting = proxied_session(node.smtp_port, proxy_v1("192.0.2.7", 40001))
    with s:
        assert greeting.startswith("220 "), greeting
        assert command(s, "EHLO client.example").startswith("250")
        assert command(s, "MAIL FROM:<a@client.example>").startswith("250")
        assert command(s, "RCPT TO:<root@localhost>").startswith("250")
        assert command(s, "DATA").startswith("354")
        reply = command(s, "Subject: via proxy\r\n\r\nhello\r\n.")
        assert reply.startswith("250"), reply
        command(s, "QUIT")
    node.wait_log(r"PROXY header from unknown\[127\.0\.0\.1\]: client "
                  r"unknown\[192\.0\.2\.7\] port 40001")
    node.wait_log(r"connect from unknown\[192\.0\.2\.7\]")
    msg = node.wait_mbox_message("root", "via proxy")
    assert "192.0.2.7" in msg.split("\n\n")[0], msg


def test_proxy_v2_and_limits_per_client(proxy_node):
    node = proxy_node
    # MaxSameIpSource 1 counts the clients behind the proxy, not the proxy.
    a, ga = proxied_session(node.smtp_port, proxy_v2("198.51.100.1", 1111))
    b, gb = proxied_session(node.smtp_port, proxy_v2("198.51.100.2", 2222))
    c, gc = proxied_session(node.smtp_port, proxy_v1("198.51.100.1", 3333))
    with a, b, c:
        assert ga.startswith("220 ") and gb.startswith("220 "), (ga, gb)
        assert gc.startswith("421 "), gc
    node.wait_log(r"refused connection from unknown\[198\.51\.100\.1\]: "
                  r"MaxSameIpSource")
    # v2 LOCAL (the balancer's health check): served as the proxy itself.
    d, gd = proxied_session(node.smtp_port, proxy_v2("0.0.0.0", 0, command=0))
    with d:
        assert gd.startswith("220 "), gd


def test_proxy_header_missing_or_bad_closes(proxy_node):
    node = proxy_node
    s, got = proxied_session(node.smtp_port, b"EHLO client.example\r\n")
    with s:
        assert got == "", got
    node.wait_log(r"PROXY header from unknown\[127\.0\.0\.1\]: .*does not "
                  r"start with one; connection closed")
    s, got = proxied_session(node.smtp_port,
                             b"PROXY TCP4 192.0.2.7 127.0.0.1 99999 25\r\n")
    with s:
        assert got == ""
    node.wait_log(r"PROXY header from .*port is not a number")
    # Nothing at all: closed after proxy-timeout, not held forever.
    s = connect(node.smtp_port)
    with s:
        assert s.recv(100) == b""
    node.wait_log(r"PROXY header from .*none within proxy-timeout")
    assert node.running("smtpserver")


def test_proxy_untrusted_peer_is_a_direct_client(node_factory):
    def setup(n):
        set_params(n, proxy_protocol="smtp", proxy_trusted="10.0.0.0/8")
    node = node_factory(setup=setup)
    s = connect(node.smtp_port)
    with s:
        assert read_reply(s).startswith("220 ")  # no header wanted
        # A header from an untrusted peer is only an unknown command.
        reply = command(s, "PROXY TCP4 192.0.2.7 127.0.0.1 1 25")
        assert reply[:1] == "5", reply
    node.wait_log(r"connect from unknown\[127\.0\.0\.1\]")


def test_proxy_protocol_needs_trusted_networks(node_factory):
    def setup(n):
        set_params(n, proxy_protocol="smtp")
    node = node_factory(start=False, setup=setup)
    proc = node.start(check=False)
    assert proc.returncode != 0
    assert re.search(r"smtpserver\.conf:\d+: proxy-protocol needs "
                     r"proxy-trusted", proc.output), proc.output
