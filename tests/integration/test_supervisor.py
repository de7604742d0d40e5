"""The supervisor's restart policy, through a real node (docs/operations.md
"The supervisor"; the policy itself: tests/unit/zmailer/restart_policy_test).

- A program killed over and over right after each start (a crash loop) is
  restarted every time, after a delay that doubles; the supervisor logs
  each death with the delay and how many restarts in a row it is.
- A program whose configuration has become invalid fails at each restart;
  after more than 5 such failures in a row the supervisor gives up on it
  (an `error:` line naming the cause), the other programs keep running,
  and once the configuration is fixed `zmailer reload` starts it again.

ZM_TEST_RESTART_DELAY_MS shortens the first delay (100 ms instead of 1 s)
so the sequence runs in seconds; the doubling is the production policy's.
Nothing here measures time: the delays are read from the log.
"""

import re
import signal
import os

from conftest import wait_for
from reliability_util import smtp, transaction
from smtpserver_util import command, set_params

FIRST_DELAY_MS = 100
RESTART = re.compile(
    r"warning: (\w+) \(pid (\d+)\) (.*?); restarting in (\d+)(ms|s) "
    r"\(restart (\d+) in a row\)")


def restarts(node, program):
    """(pid, how, delay_ms, in_a_row) of each logged restart of `program`."""
    out = []
    for line in node.log_lines():
        m = RESTART.search(line)
        if m and m.group(1) == program:
            delay = int(m.group(4)) * (1 if m.group(5) == "ms" else 1000)
            out.append((int(m.group(2)), m.group(3), delay, int(m.group(6))))
    return out


def quick_node(node_factory, setup=None):
    node = node_factory(start=False, setup=setup)
    node.env["ZM_TEST_RESTART_DELAY_MS"] = str(FIRST_DELAY_MS)
    node.start()
    return node


def test_a_crash_loop_is_restarted_with_growing_delays(node_factory):
    node = quick_node(node_factory)
    kills = 5
    killed = []
    pid = node.pid("router")
    for i in range(kills):
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)
        wait_for(lambda: len(restarts(node, "router")) > i,
                 what=f"restart {i + 1} of the router in the log")
        pid = node.wait_restarted("router", pid)
    seen = restarts(node, "router")
    print(seen)
    assert [s[0] for s in seen] == killed
    assert all("killed by signal 9" in s[1] for s in seen), seen
    # Each run lasted far less than the 10 s that count as stable, so the
    # delay doubles and the count goes up at every restart.
    assert [s[3] for s in seen] == list(range(1, kills + 1)), seen
    assert [s[2] for s in seen] == [FIRST_DELAY_MS << i
                                    for i in range(kills)], seen
    # The node still works.
    with smtp(node) as s:
        command(s, "EHLO client.example")
        reply = transaction(s, "a@localhost", ["root@localhost"],
                            "Subject: after the loop\n\nback\n")
        assert reply.startswith("250"), reply
    node.wait_mbox_message("root", "after the loop")


def test_a_program_failing_on_its_configuration_is_given_up_on(node_factory):
    node = quick_node(node_factory)
    conf = node.etc / "smtpserver.conf"
    good = conf.read_text()
    set_params(node, no_such_parameter=1)
    pid = node.pid("smtpserver")
    others = {p: node.pid(p) for p in ("scheduler", "router", "admind")}
    os.kill(pid, signal.SIGKILL)
    line = node.wait_log(r"smtpserver \(pid \d+\) exited with status 1 .*"
                         r"giving up on it").string
    print(line)
    assert "no-such-parameter" in line, line
    seen = restarts(node, "smtpserver")
    print(seen)
    # The kill, then 5 configuration failures, each restarted later than
    # the one before; the 6th is given up on.
    assert len(seen) == 6, seen
    assert [s[2] for s in seen] == [FIRST_DELAY_MS << i for i in range(6)]
    assert all("exited with status 1" in s[1] for s in seen[1:]), seen
    assert not node.running("smtpserver")
    # Nothing else was touched.
    assert {p: node.pid(p) for p in others} == others

    conf.write_text(good)
    assert node.zmailer("reload").returncode == 0
    wait_for(lambda: node.running("smtpserver"), what="smtpserver again")
    with smtp(node) as s:
        reply = command(s, "EHLO client.example")
        assert reply.startswith("250"), reply
