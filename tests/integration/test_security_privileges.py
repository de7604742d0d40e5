"""Every long-running program of a node runs unprivileged.

1. Started as root with smtpserver.conf's `PARAM user nobody` (the node
   user), the smtpserver on a port below 1024: the supervisor gives the
   node's writable folders to nobody and every program (the supervisor
   too) runs with nobody's uids, gids and supplementary groups. Only the
   supervisor (which hands them on) and the scheduler (which runs
   transport agents as scheduler.conf's users) hold capabilities, and only
   CAP_SETUID/CAP_SETGID/CAP_KILL (+ CAP_NET_BIND_SERVICE for the
   supervisor); the
   smtpserver dropped CAP_NET_BIND_SERVICE once bound, in every thread.
   The mailbox agent (`user=root` in scheduler.conf) runs as root. Mail
   goes through, and all of it holds after a SIGHUP and after the
   supervisor restarts a killed smtpserver and scheduler. A reload that
   asks the smtpserver for another port below 1024 is logged as an error
   naming the port, and the old listener keeps serving.
2. Started the way deploy/systemd/zmnode.service starts it: as an
   unprivileged user (here `nobody`) with CAP_NET_BIND_SERVICE as its only,
   ambient, capability, the smtpserver on a port below 1024: every uid and
   gid is nobody's, only the supervisor holds the capability (the
   smtpserver cleared it from its effective, permitted and ambient sets
   once bound), and the node takes and delivers mail.

(Started as root, the smtpserver alone with `PARAM user`:
test_security_smtp.py::test_smtpserver_drops_privileges_after_binding.)
"""

import os
import pathlib
import pwd
import shutil
import subprocess

import pytest

from conftest import BIN, COMMAND_TIMEOUT, pid_alive, wait_for
from reliability_util import (privileged_free_port, smtp, status_field,
                              transaction)
from smtpserver_util import command, set_params

NET_BIND_SERVICE = 1 << 10
KILL = 1 << 5
SETGID = 1 << 6
SETUID = 1 << 7
CAPS = ("CapEff", "CapPrm", "CapAmb")


def program_of(pid):
    argv0 = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0]
    return os.path.basename(argv0).decode(errors="replace")


def identity(pid):
    """uids, gids, supplementary groups and capability sets of `pid` and of
    every one of its threads (capabilities belong to threads)."""
    def one(path):
        fields = {}
        for line in pathlib.Path(path).read_text().splitlines():
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        return {"Uid": fields["Uid"].split(), "Gid": fields["Gid"].split(),
                "Groups": sorted(int(g) for g in fields["Groups"].split()),
                **{c: int(fields[c], 16) for c in CAPS}}
    main = one(f"/proc/{pid}/status")
    threads = [one(f"/proc/{pid}/task/{t}/status")
               for t in os.listdir(f"/proc/{pid}/task")]
    return main, threads


def node_identities(node):
    """{program: [(pid, identity, thread identities)]} of the node's live
    processes (a transport agent may end meanwhile: skipped)."""
    seen = {}
    for pid in node.node_processes():
        try:
            main, threads = identity(pid)
            seen.setdefault(program_of(pid), []).append((pid, main, threads))
        except (OSError, KeyError):
            continue
    return seen


def nice_of(pid):
    stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[16])


def deliver(node, port, text):
    with smtp(node, port=port) as s:
        command(s, "EHLO client.example")
        reply = transaction(s, "a@localhost", ["root@localhost"],
                            f"Subject: {text}\n\n{text}\n")
        assert reply.startswith("250"), reply
    node.wait_mbox_message("root", text)


def check_root_start(node, user, groups, when):
    """Every program of `node` runs as `user`, with only its capabilities."""
    want_caps = {
        "zmailer": NET_BIND_SERVICE | SETUID | SETGID | KILL,
        "scheduler": SETUID | SETGID | KILL,
    }
    seen = node_identities(node)
    print(when, {k: [(p, m["Uid"][0], {c: hex(m[c]) for c in CAPS})
                     for p, m, _ in v] for k, v in seen.items()})
    for prog in ("zmailer", "scheduler", "router", "smtpserver", "admind",
                 "mailbox"):
        assert prog in seen, (when, prog, sorted(seen))
    for name, procs in seen.items():
        for pid, main, threads in procs:
            if name == "mailbox":
                # scheduler.conf: local/* user=root (it delivers as each
                # recipient); started by the scheduler with CAP_SETUID,
                # with local/*'s nice=3.
                assert main["Uid"] == ["0"] * 4, (when, name, main)
                assert main["Gid"] == ["0"] * 4, (when, name, main)
                assert nice_of(pid) == 3, (when, name, nice_of(pid))
                continue
            for ident in [main] + threads:
                assert ident["Uid"] == [str(user.pw_uid)] * 4, (when, name,
                                                                ident)
                assert ident["Gid"] == [str(user.pw_gid)] * 4, (when, name,
                                                                ident)
                assert ident["Groups"] == groups, (when, name, ident)
                caps = want_caps.get(name, 0)
                assert ident["CapEff"] == caps, (when, name, hex(caps), ident)
                assert ident["CapPrm"] == caps, (when, name, hex(caps), ident)
                assert ident["CapAmb"] == 0, (when, name, ident)


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
        n.sanitizer_dir.mkdir(exist_ok=True)  # reports written as nobody
        n.sanitizer_dir.chmod(0o1777)

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
        if name == "zmailer":
            assert caps["CapEff"] & ~NET_BIND_SERVICE == 0, (name, caps)
        else:
            # The smtpserver too: it cleared the capability once bound.
            assert caps == {"CapEff": 0, "CapPrm": 0, "CapAmb": 0}, (name,
                                                                     caps)
    node.wait_log(r"smtpserver.*listeners bound: capabilities dropped")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_started_as_root_every_program_runs_as_the_node_user(node_factory):
    user = pwd.getpwnam("nobody")
    groups = sorted(set(os.getgrouplist(user.pw_name, user.pw_gid)))
    port = privileged_free_port()

    def setup(n):
        set_params(n, user="nobody", BindPort=port)
        n.home.parent.chmod(0o755)  # mkdtemp made it 0700
        # The processes running as nobody write their sanitizer reports.
        n.sanitizer_dir.mkdir(exist_ok=True)
        n.sanitizer_dir.chmod(0o1777)
        # The agent's nice increment goes through the same start-up as its
        # user (scheduler_agents.cc).
        conf = n.etc / "scheduler.conf"
        text = conf.read_text()
        assert '    command="mailbox"' in text
        conf.write_text(text.replace('    command="mailbox"',
                                     '    nice=3\n    command="mailbox"', 1))

    # No chown here: the supervisor gives the folders to the node user.
    node = node_factory(setup=setup)
    for d in ("spool", "db", "log", "run"):
        st = (node.home / d).stat()
        assert (st.st_uid, st.st_gid) == (user.pw_uid, user.pw_gid), d
    assert (node.home / "etc").stat().st_uid == 0  # its config stays root's
    node.wait_log(r"zmailer\[\d+\]: the node is running as user nobody")
    node.wait_log(r"smtpserver.*listeners bound: capabilities dropped")

    deliver(node, port, "as-node-user")
    # sendmail run by root: its spool files get the node user's group
    # (set-group-id folders), so the router running as nobody reads them.
    proc = node.sendmail("root@localhost",
                         message="Subject: by-sendmail\n\nby-sendmail\n")
    assert proc.returncode == 0, proc.output
    node.wait_mbox_message("root", "by-sendmail")
    wait_for(lambda: node.ta_pids("mailbox"), what="a mailbox agent")
    check_root_start(node, user, groups, "after start")

    # SIGHUP: everything reloads and stays as it was. A new port below
    # 1024 is refused (logged with the port), the old listener serves on.
    other = privileged_free_port()  # `port` is the smtpserver's now
    assert other != port
    conf = node.etc / "smtpserver.conf"
    conf.write_text(conf.read_text().replace(f"PARAM BindPort {port}",
                                             f"PARAM BindPort {other}"))
    assert node.zmailer("reload").returncode == 0
    node.wait_log(rf"reload: \[127\.0\.0\.1\]:{other} is below 1024")
    deliver(node, port, "after-reload")
    check_root_start(node, user, groups, "after reload")

    # The supervisor restarts killed programs the same way.
    for prog in ("smtpserver", "scheduler"):
        old = node.pid(prog)
        os.kill(old, 9)
        node.wait_restarted(prog, old)
    # The restarted smtpserver binds the port the file now names.
    conf.write_text(conf.read_text().replace(f"PARAM BindPort {other}",
                                             f"PARAM BindPort {port}"))
    old = node.pid("smtpserver")
    os.kill(old, 9)
    node.wait_restarted("smtpserver", old)
    deliver(node, port, "after-restart")
    wait_for(lambda: node.ta_pids("mailbox"), what="a mailbox agent")
    check_root_start(node, user, groups, "after restarts")
    assert pid_alive(node.pid("zmailer"))

