"""zmailer: start/stop/status, config errors, freeze/thaw, restarts."""

import os
import re
import signal

import pytest

from conftest import DAEMONS, pid_alive, wait_for


def test_status_and_stop(node):
    proc = node.zmailer("status")
    assert proc.returncode == 0, proc.output
    for prog in DAEMONS:
        assert re.search(rf"{prog}\s+running", proc.stdout), proc.stdout
    pids = [node.pid(p) for p in ("zmailer",) + DAEMONS]
    assert all(pids), pids
    proc = node.stop()
    assert proc.returncode == 0, proc.output
    for pid in pids:
        assert not pid_alive(pid), f"pid {pid} still alive after stop"
    proc = node.zmailer("status")
    assert proc.returncode == 3, proc.output


def test_config_error_refuses_start(node_factory):
    def break_config(node):
        path = node.etc / "smtpserver.conf"
        text = path.read_text()
        if not text.endswith("\n"):
            text += "\n"
        text += "PARAM bogus\n"
        path.write_text(text)
        node.bad_line = text.count("\n")

    node = node_factory(start=False, setup=break_config)
    proc = node.start(check=False)
    assert proc.returncode != 0, proc.output
    assert f"smtpserver.conf:{node.bad_line}:" in proc.output, proc.output


def test_freeze_blocks_start_until_thaw(node):
    proc = node.zmailer("freeze")
    assert proc.returncode == 0, proc.output
    # A running node stays up when frozen.
    assert node.running("scheduler")
    assert node.stop().returncode == 0
    proc = node.start(check=False)
    assert proc.returncode == 1, proc.output
    assert "frozen" in proc.output, proc.output
    assert not node.running("zmailer")
    assert node.zmailer("thaw").returncode == 0
    node.start()
    proc = node.sendmail("root@localhost",
                         message="Subject: thawed-token\n\nback\n")
    assert proc.returncode == 0, proc.output
    node.wait_mbox_message("root", "thawed-token")


def test_second_start_refused(node):
    proc = node.zmailer("start")
    assert proc.returncode != 0, proc.output


@pytest.mark.parametrize("program", DAEMONS)
def test_killed_program_is_restarted(node, program):
    old = node.pid(program)
    os.kill(old, signal.SIGKILL)
    new = node.wait_restarted(program, old)
    assert new != old
    node.wait_log(rf"warning: {program} \(pid {old}\) .*restarting")
    # Mail still flows, through both entry points.
    proc = node.sendmail("root@localhost",
                         message=f"Subject: after-{program}-kill\n\nok\n")
    assert proc.returncode == 0, proc.output
    node.wait_mbox_message("root", f"after-{program}-kill")
    proc = node.swaks("--to", "root@localhost", "--from", "s@localhost",
                      "--header", f"Subject: smtp-after-{program}-kill")
    assert proc.returncode == 0, proc.output
    node.wait_mbox_message("root", f"smtp-after-{program}-kill")


def test_bad_subcommand(node_factory):
    node = node_factory(start=False)
    proc = node.zmailer("no-such-subcommand")
    assert proc.returncode == 64, proc.output
