"""Harness for the zmnode integration tests.

Every test gets throw-away nodes built by the real programs: `zmailer init`
into a fresh directory with free loopback ports, `zmailer start`, and at the
end `zmailer stop` (then `zmailer kill` if something is still up). The tests
then act as a user would: sendmail, SMTP (smtplib, swaks), mailq, zmailer,
and look at what a user sees: mailbox files, the event log, command output.

The programs come from $ZM_BIN (the build's bin/ folder; the ctest entries
set it), else <repo>/build/bin.

Waiting is done by polling a predicate with a short interval and a bound
(`wait_for`), never by sleeping a fixed time.

Sanitizer builds: each node's programs get `log_path=<dir>/sanitizer/report`
(beside the node directory) in ASAN_OPTIONS/UBSAN_OPTIONS, because their
stderr goes to /dev/null under the supervisor; a test fails at teardown if
any such report appeared.
"""

import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(os.environ.get("ZM_BIN") or REPO / "build" / "bin").resolve()

# Bounds used by the harness (seconds). Sanitizer builds are several times
# slower than release builds, so the bounds are generous; none of them is a
# timing assertion, only a limit on how long to wait for something to happen.
DEFAULT_WAIT = float(os.environ.get("ZM_WAIT", "60"))
COMMAND_TIMEOUT = float(os.environ.get("ZM_COMMAND_TIMEOUT", "120"))
DAEMONS = ("scheduler", "router", "smtpserver")


def free_port():
    """A loopback TCP port that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def have_ipv6_loopback():
    """Whether this host can bind ::1 (some containers have no IPv6)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def wait_for(predicate, timeout=DEFAULT_WAIT, interval=0.05, what=None):
    """Polls `predicate` until it returns something truthy; returns that.

    Raises AssertionError naming `what` after `timeout` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for "
                f"{what or getattr(predicate, '__name__', 'condition')}")
        time.sleep(interval)


def describe_process(pid):
    """'argv...; state S; wchan NAME' of a live process, as far as /proc
    still shows it."""
    def read(name):
        try:
            with open(f"/proc/{pid}/{name}", "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""
    argv = read("cmdline").replace("\0", " ").strip() or "?"
    state = next((l.split(":", 1)[1].strip() for l in read("status").splitlines()
                  if l.startswith("State:")), "?")
    return f"{argv}; state {state}; wchan {read('wchan') or '?'}"


def pid_alive(pid):
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); count it as dead.
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except OSError:
        return False


def split_mbox(text):
    """Messages of an mbox file, each without its `From ` separator line."""
    messages = []
    current = None
    previous_blank = True
    for line in text.split("\n"):
        if line.startswith("From ") and previous_blank:
            if current is not None:
                messages.append("\n".join(current))
            current = []
        elif current is not None:
            current.append(line)
        previous_blank = line == ""
    if current is not None:
        messages.append("\n".join(current))
    return messages


def header_value(message, name):
    """First value of header `name` in the header block of `message`."""
    want = name.lower() + ":"
    for line in message.split("\n"):
        if line == "":
            break
        if line.lower().startswith(want):
            return line[len(want):].strip()
    return None


class Node:
    """One node directory and the helpers to drive it."""

    def __init__(self, home, smtp_port, node_id="t1"):
        self.home = pathlib.Path(home)
        self.smtp_port = smtp_port
        self.node_id = node_id
        self.bin = BIN
        self.env = dict(os.environ)
        self.env["ZMAILER_HOME"] = str(self.home)
        self.env["PATH"] = f"{BIN}:{self.env.get('PATH', '/usr/bin:/bin')}"
        # Beside the node, not in it: the sanitizer runtime creates the
        # folders of log_path, and `zmailer init` wants an empty directory.
        self.sanitizer_dir = self.home.parent / "sanitizer"
        for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
            opts = self.env.get(var, "")
            opts = ":".join(o for o in opts.split(":")
                            if o and not o.startswith("log_path="))
            self.env[var] = ((opts + ":" if opts else "")
                             + f"log_path={self.sanitizer_dir}/report")
        self.started = False

    # ----- paths -----
    @property
    def etc(self):
        return self.home / "etc"

    @property
    def spool(self):
        return self.home / "spool"

    @property
    def mail(self):
        return self.home / "mail"

    @property
    def maillog(self):
        return self.home / "log" / "maillog"

    # ----- running programs -----
    def run(self, program, *args, input=None, timeout=COMMAND_TIMEOUT,
            env=None):
        """Runs a node program (found in BIN) with ZMAILER_HOME set.

        Returns subprocess.CompletedProcess with text stdout/stderr.
        """
        path = str(BIN / program)
        if isinstance(input, str):
            input = input.encode()
        full_env = dict(self.env)
        if env:
            full_env.update(env)
        proc = subprocess.run([path, *map(str, args)], input=input,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=full_env, cwd=str(self.home),
                              timeout=timeout)
        proc.stdout = proc.stdout.decode(errors="replace")
        proc.stderr = proc.stderr.decode(errors="replace")
        proc.output = proc.stdout + proc.stderr
        return proc

    def zmailer(self, *args, **kw):
        return self.run("zmailer", "-C", self.home, *args, **kw)

    def sendmail(self, *args, message="Subject: test\n\nhi\n", **kw):
        return self.run("sendmail", *args, input=message, **kw)

    def mailq(self, *args, **kw):
        return self.run("mailq", *args, **kw)

    def swaks(self, *args, timeout=COMMAND_TIMEOUT):
        proc = subprocess.run(
            ["swaks", "--server", f"127.0.0.1:{self.smtp_port}", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env,
            timeout=timeout)
        proc.stdout = proc.stdout.decode(errors="replace")
        proc.stderr = proc.stderr.decode(errors="replace")
        proc.output = proc.stdout + proc.stderr
        return proc

    # ----- lifecycle -----
    def start(self, check=True):
        proc = self.zmailer("start")
        if check:
            assert proc.returncode == 0, (
                f"zmailer start failed ({proc.returncode}):\n{proc.output}")
            self.started = True
            for prog in DAEMONS:
                assert pid_alive(self.pid(prog)), (
                    f"{prog} not running after zmailer start:\n{proc.output}")
        else:
            self.started = True  # teardown must clean up whatever started
        return proc

    def stop(self):
        proc = self.zmailer("stop", timeout=90)
        self.started = False
        return proc

    def pid(self, program):
        try:
            return int((self.home / "run" / f"{program}.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def running(self, program):
        return pid_alive(self.pid(program))

    def node_processes(self):
        """Pids of live processes that belong to this node.

        A process belongs to the node when its ZMAILER_HOME is the node, its
        working directory is the node, or its command line names the node.
        """
        pids = []
        home = str(self.home)
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            pid = int(entry)
            try:
                cmd = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes()
                exe_args = cmd.split(b"\0")
                if not exe_args or not exe_args[0]:
                    continue
                if not os.path.basename(exe_args[0]).decode(
                        errors="replace") in (
                            "zmailer", "scheduler", "router", "smtpserver",
                            "mailbox", "errormail", "sendmail", "mailq",
                            "clusterd", "admind"):
                    continue
                belongs = home.encode() in cmd
                if not belongs:
                    env = pathlib.Path(f"/proc/{pid}/environ").read_bytes()
                    belongs = f"ZMAILER_HOME={home}".encode() in env.split(b"\0")
                if not belongs:
                    belongs = os.readlink(f"/proc/{pid}/cwd") == home
            except OSError:
                continue
            if belongs and pid_alive(pid):
                pids.append(pid)
        return pids

    def ta_pids(self, name="mailbox"):
        """Pids of running transport agents `name` of this node."""
        out = []
        for pid in self.node_processes():
            try:
                argv0 = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(
                    b"\0")[0]
            except OSError:
                continue
            if os.path.basename(argv0).decode(errors="replace") == name:
                out.append(pid)
        return out

    def wait_restarted(self, program, old_pid, timeout=DEFAULT_WAIT):
        """Waits until the supervisor has a new live `program` process."""
        def restarted():
            pid = self.pid(program)
            return pid if pid and pid != old_pid and pid_alive(pid) else None
        return wait_for(restarted, timeout,
                        what=f"{program} restarted (old pid {old_pid})")

    def teardown(self, dump):
        """Stops everything this node started; dumps logs if `dump`."""
        if self.started or any(self.running(p) for p in ("zmailer",) + DAEMONS):
            try:
                self.stop()
            except subprocess.TimeoutExpired:
                pass
            if any(self.running(p) for p in ("zmailer",) + DAEMONS):
                try:
                    self.zmailer("kill", timeout=60)
                except subprocess.TimeoutExpired:
                    pass
        # Agents of a killed scheduler see EOF and exit by themselves; give
        # them a bounded moment, then, as a last resort, end whatever of
        # this node is left (by pid, only this node's processes).
        try:
            wait_for(lambda: not self.node_processes(), timeout=20,
                     interval=0.1, what="node processes to exit")
        except AssertionError:
            pass
        leftovers = []
        for pid in self.node_processes():
            # Named by what it runs and where it waits, for the report.
            leftovers.append(f"{pid} ({describe_process(pid)})")
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if dump:
            self.dump()
        return leftovers

    def dump(self):
        print(f"===== node {self.home} =====")
        for name in ("maillog", "ta.stderr"):
            path = self.home / "log" / name
            if path.exists():
                lines = path.read_text(errors="replace").splitlines()
                print(f"----- log/{name} (last {min(len(lines), 300)} of "
                      f"{len(lines)} lines) -----")
                print("\n".join(lines[-300:]))
        for folder in sorted(self.spool_counts().items()):
            print("spool", *folder)

    def sanitizer_reports(self):
        reports = []
        d = self.sanitizer_dir
        if d.is_dir():
            for p in sorted(d.iterdir()):
                reports.append((p.name, p.read_text(errors="replace")))
        return reports

    # ----- what a user sees -----
    def log_lines(self, queue_id=None):
        try:
            lines = self.maillog.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []
        if queue_id:
            lines = [l for l in lines if queue_id in l]
        return lines

    def wait_log(self, pattern, timeout=DEFAULT_WAIT):
        """Waits for a maillog line matching regex `pattern`; returns the match."""
        rx = re.compile(pattern)

        def find():
            for line in self.log_lines():
                m = rx.search(line)
                if m:
                    return m
            return None
        return wait_for(find, timeout, what=f"maillog line /{pattern}/")

    def mailbox_path(self, user):
        return self.mail / user

    def mbox(self, user):
        try:
            return (self.mail / user).read_text(errors="replace")
        except (FileNotFoundError, IsADirectoryError):
            return ""

    def mbox_messages(self, user):
        return split_mbox(self.mbox(user))

    def maildir_messages(self, user):
        out = []
        for sub in ("new", "cur"):
            d = self.mail / user / sub
            if d.is_dir():
                for p in sorted(d.iterdir()):
                    out.append(p.read_text(errors="replace"))
        return out

    def wait_mbox_message(self, user, needle, timeout=DEFAULT_WAIT):
        """Waits until a message containing `needle` is in mbox mail/<user>."""
        def find():
            for m in self.mbox_messages(user):
                if needle in m:
                    return m
            return None
        return wait_for(find, timeout,
                        what=f"a message with {needle!r} in mail/{user}")

    def spool_files(self, folder):
        """Files in a spool folder; those of a staging folder's hashed
        subfolders (public/, tmp/) as "<hh>/<name>"."""
        d = self.spool / folder
        out = []
        try:
            names = os.listdir(d)
        except FileNotFoundError:
            return []
        for n in names:
            if n.startswith("."):
                continue
            if (d / n).is_dir():
                try:
                    out += [f"{n}/{f}" for f in os.listdir(d / n)
                            if not f.startswith(".")]
                except FileNotFoundError:
                    pass
            else:
                out.append(n)
        return sorted(out)

    def spool_counts(self):
        out = {}
        if self.spool.is_dir():
            for d in sorted(self.spool.iterdir()):
                if d.is_dir():
                    out[d.name] = len(self.spool_files(d.name))
        return out

    def queue_empty(self):
        return all(not self.spool_files(f)
                   for f in ("public", "router", "queue", "transport"))

    def submitted_ids(self, count=1, timeout=DEFAULT_WAIT):
        """Queue ids of the messages sendmail submitted, in log order;
        waits until there are at least `count`."""
        rx = re.compile(r"zmnode/sendmail\[\d+\]: (\S+): uid=\d+ from=<")

        def ids():
            found = [m.group(1) for m in map(rx.search, self.log_lines()) if m]
            return found if len(found) >= count else None
        return wait_for(ids, timeout, what=f"{count} sendmail log line(s)")


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _failed(request):
    for when in ("setup", "call"):
        rep = getattr(request.node, "rep_" + when, None)
        if rep is not None and rep.failed:
            return True
    return False


@pytest.fixture
def node_factory(request):
    """Makes nodes: make(start=True, setup=None, node_id="t1") -> Node.

    `setup(node)` runs after `zmailer init` and before `zmailer start`
    (to change a config file). Every node is stopped at teardown.
    """
    nodes = []
    dirs = []

    def make(start=True, setup=None, node_id="t1", init_args=()):
        # Short paths: the scheduler's UNIX socket lives in run/ and
        # sun_path holds 108 bytes.
        parent = tempfile.mkdtemp(prefix="zmit-", dir="/tmp")
        dirs.append(parent)
        home = pathlib.Path(parent) / "node"
        port = free_port()
        node = Node(home, port, node_id)
        # admind (the admin HTTP listener) gets a free port too.
        node.admin_port = free_port()
        nodes.append(node)
        proc = subprocess.run(
            [str(BIN / "zmailer"), "init", str(home), "--smtp-port", str(port),
             "--admin-listen", f"127.0.0.1:{node.admin_port}",
             "--node-id", node_id, *init_args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=node.env,
            timeout=COMMAND_TIMEOUT)
        assert proc.returncode == 0, (
            f"zmailer init failed ({proc.returncode}):\n"
            f"{proc.stdout.decode(errors='replace')}"
            f"{proc.stderr.decode(errors='replace')}")
        if setup:
            setup(node)
        if start:
            node.start()
        return node

    yield make

    failed = _failed(request)
    problems = []
    for node in nodes:
        leftovers = node.teardown(dump=failed)
        if leftovers:
            problems.append(f"{node.home}: processes left after stop/kill: "
                            f"{leftovers}")
        for name, text in node.sanitizer_reports():
            problems.append(f"{node.sanitizer_dir}/{name}:\n{text}")
    kept = []
    for d in dirs:
        # Keep a failed test's node for inspection, unless init never made
        # one there.
        if (failed or problems) and (pathlib.Path(d) / "node" / "etc").is_dir():
            kept.append(d)
        else:
            shutil.rmtree(d, ignore_errors=True)
    if kept:
        print("node directories kept for inspection:", *kept)
    if problems and not failed:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def node(node_factory):
    """A started node with default configuration."""
    return node_factory()
