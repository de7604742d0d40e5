"""Every long-running program of a node runs unprivileged.

A node is started the way deploy/systemd/zmnode.service starts it: as an
unprivileged user (here `nobody`) with CAP_NET_BIND_SERVICE as its only,
ambient, capability, and the smtpserver on a port below 1024. Then, from
/proc/<pid>/status of every process of the node (the supervisor, the
scheduler, router, smtpserver, admind, and the transport agents running
after a delivery):

- every uid and gid (real, effective, saved, file system) is nobody's;
- no program but the smtpserver (which binds the port) and the supervisor
  (which hands the capability to it) holds any capability: the supervisor
  clears the ambient set of every other program it starts;
- the node takes and delivers mail.

(The root start with smtpserver.conf's `PARAM user` is
test_security_smtp.py::test_smtpserver_drops_privileges_after_binding.)
"""

import os
import pathlib
import pwd
import shutil
import subprocess

import pytest

from conftest import BIN, COMMAND_TIMEOUT, wait_for
from reliability_util import (privileged_free_port, smtp, status_field,
                              transaction)
from smtpserver_util import command, set_params

NET_BIND_SERVICE = 1 << 10


def program_of(pid):
    argv0 = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    return os.path.basename(argv0).decode(errors="replace")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (to become nobody)")
@pytest.mark.skipif(not shutil.which("setpriv"), reason="no setpriv")
def test_every_program_runs_unprivileged_like_the_systemd_unit(node_factory):
    user = pwd.getpwnam("nobody")
    port = privileged_free_port()

    def setup(n):
        set_params(n, BindPort=port)
        subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}",
                        str(n.home)], check=True, timeout=COMMAND_TIMEOUT)
        n.home.parent.chmod(0o755)  # mkdtemp made it 0700

    node = node_factory(start=False, setup=setup)
    node.started = True  # the fixture stops it (as root) at the end
    proc = subprocess.run(
        ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
         "--init-groups", "--inh-caps=-all,+net_bind_service",
         "--ambient-caps=-all,+net_bind_service",
         str(BIN / "zmailer"), "-C", str(node.home), "start"],
        env=node.env, cwd=str(node.home), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, timeout=COMMAND_TIMEOUT)
    assert proc.returncode == 0, proc.stdout.decode(errors="replace")
    for prog in ("scheduler", "router", "smtpserver", "admind"):
        wait_for(lambda: node.running(prog), what=f"{prog} running")

    # Mail through the privileged port, so transport agents run too.
    with smtp(node, port=port) as s:
        command(s, "EHLO client.example")
        reply = transaction(s, "a@localhost", ["root@localhost"],
                            "Subject: unprivileged\n\nunprivileged\n")
        assert reply.startswith("250"), reply
    node.wait_mbox_message("root", "unprivileged")

    seen = {}
    for pid in node.node_processes():
        try:
            name = program_of(pid)
            uids = status_field(pid, "Uid").split()
            gids = status_field(pid, "Gid").split()
            caps = {f: int(status_field(pid, f), 16)
                    for f in ("CapEff", "CapPrm", "CapAmb")}
        except (OSError, AttributeError):
            continue  # it ended meanwhile (a transport agent)
        seen[name] = (uids, gids, caps)
    print({k: (v[0][0], v[1][0], {f: hex(c) for f, c in v[2].items()})
           for k, v in seen.items()})
    for prog in ("zmailer", "scheduler", "router", "smtpserver", "admind"):
        assert prog in seen, (prog, sorted(seen))
    for name, (uids, gids, caps) in seen.items():
        assert uids == [str(user.pw_uid)] * 4, (name, uids)
        assert gids == [str(user.pw_gid)] * 4, (name, gids)
        if name in ("smtpserver", "zmailer"):
            assert caps["CapEff"] & ~NET_BIND_SERVICE == 0, (name, caps)
        else:
            assert caps == {"CapEff": 0, "CapPrm": 0, "CapAmb": 0}, (name,
                                                                     caps)
