"""Runs a command as a child subreaper, so that every process it starts
stays below this one even when its parent exits (Exim's delivery processes,
double-forked daemons): the benchmarks find all of an MTA's processes in
/proc below this pid, and the CPU time of every exited one in this pid's
cutime/cstime. SIGTERM and SIGINT are passed on to the command; when the
command has exited, the remaining processes are waited for (up to --grace
seconds, then killed), and the command's status is returned.

  python3 bench/lib/reaper.py [--grace S] CMD ARGS...
"""
import ctypes
import os
import signal
import sys
import time

PR_SET_CHILD_SUBREAPER = 36


def main(argv):
    grace = 10.0
    if len(argv) > 2 and argv[1] == "--grace":
        grace = float(argv[2])
        argv = argv[2:]
    if len(argv) < 2:
        print("usage: reaper.py [--grace S] CMD ARGS...", file=sys.stderr)
        return 64
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("reaper: prctl failed", file=sys.stderr)
        return 71
    main_pid = os.fork()
    if main_pid == 0:
        try:
            os.execvp(argv[1], argv[1:])
        finally:
            os._exit(127)

    def forward(sig, _frame):
        try:
            os.kill(main_pid, sig)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    deadline = None
    while True:
        try:
            pid, st = os.waitpid(-1, os.WNOHANG if deadline else 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == main_pid:
            status = os.waitstatus_to_exitcode(st)
            deadline = time.monotonic() + grace
        elif pid == 0:  # others still running after the command exited
            if time.monotonic() > deadline:
                for p in os.listdir("/proc"):
                    if p.isdigit():
                        try:
                            with open(f"/proc/{p}/stat") as f:
                                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                            if ppid == os.getpid():
                                os.kill(int(p), signal.SIGKILL)
                        except (OSError, ValueError):
                            pass
                deadline = time.monotonic() + 5
            time.sleep(0.05)
    return max(0, status) if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
