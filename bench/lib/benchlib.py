"""Shared pieces of the side-by-side benchmarks (bench/smtp-accept, bench/relay,
bench/connections).

- netns: re-run the calling script inside a private network namespace
  (`unshare --net`, loopback up), so fixed ports are free and nothing leaks.
- Process trees: CPU seconds and proportional memory (Pss) of a server and
  every process below it, from /proc.
- Servers: a zmnode node (`zmailer init`, then either the smtpserver alone
  or the whole node) and the private peers (bench/peers/postfix, exim,
  opensmtpd: one class, `Peer`, over their common command interface).
- Clients: an asyncio SMTP client that times end-of-data -> 250 per
  message and stamps each message with an id; two sinks that record when
  each id arrives (Postfix's smtp-sink dumping to tmpfs, the default of
  bench/relay, and an asyncio one); an idle-connection opener.

Every wait is bounded; nothing here asserts, the scripts print figures.
"""

import asyncio
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(BENCH)
PEERS = os.path.join(BENCH, "peers")
PEER_POSTFIX = os.path.join(PEERS, "postfix")
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ----- environment -----

def enter_netns(mount=False):
    """Re-executes this script in a private network namespace, once (and a
    private mount namespace too with `mount`: mounts made inside, such as
    spoolfs's, are invisible outside and vanish with it). The script is
    replaced (exec, same pid), so Ctrl-C and SIGTERM reach it directly
    and its own clean-up runs. True when inside one."""
    if os.environ.get("ZMBENCH_NETNS") == "1":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return True
    if shutil.which("unshare") is None or os.geteuid() != 0:
        return False
    env = dict(os.environ, ZMBENCH_NETNS="1")
    sys.stdout.flush()
    sys.stderr.flush()
    args = ["unshare", "--net"] + (["--mount", "--propagation", "private"] if mount else [])
    os.execvpe("unshare", args + [sys.executable] + sys.argv, env)


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = min(max(soft, want), hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return new


def uptime():
    with open("/proc/loadavg") as f:
        return "load " + " ".join(f.read().split()[:3])


def wait_port(host, port, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


# ----- /proc accounting -----

def _children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(root):
    """The pid `root` and every live descendant."""
    kids = _children_map()
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_seconds(root):
    """utime+stime of the tree, plus reaped children (cutime+cstime)."""
    total = 0
    for p in tree(root):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is state (field 3); utime is field 14 -> index 11.
        total += sum(int(x) for x in fields[11:15])
    return total / CLK_TCK


def pss_kib(root):
    """Proportional set size of the tree, KiB (shared pages split fairly)."""
    total = 0
    for p in tree(root):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


class SyscallCount:
    """`strace -f -c` over the processes `pids` (and what they fork
    meanwhile): how many system calls of each kind they make. Give strace
    a second to attach before the measured phase (it has no readiness
    signal). strace slows what it follows."""

    def __init__(self, pids, out_path):
        self.out_path = out_path
        args = ["strace", "-f", "-c", "-o", out_path]
        for p in pids:
            args += ["-p", str(p)]
        self.proc = subprocess.Popen(args, stderr=subprocess.DEVNULL)

    def stop(self):
        """[(calls, syscall)], most first."""
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)
        rows = []
        try:
            with open(self.out_path) as f:
                for line in f:
                    parts = line.split()
                    # % time, seconds, usecs/call, calls, [errors], syscall
                    if (len(parts) >= 5 and parts[0][0].isdigit()
                            and parts[-1] != "total"):
                        try:
                            rows.append((int(parts[3]), parts[-1]))
                        except ValueError:
                            continue
        except FileNotFoundError:
            pass
        rows.sort(reverse=True)
        return rows


class FlushTrace:
    """strace -f over a process tree (and everything it forks meanwhile):
    how many calls that force data to disk it makes and the wall-clock
    seconds spent in them: fsync, fdatasync, syncfs, sync_file_range, and
    opens with O_SYNC or O_DSYNC (reported as `O_SYNC-open`; every write
    through such a file is synchronous). strace slows the traced processes;
    rates of a traced phase are not comparable."""

    CALLS = ("fsync", "fdatasync", "syncfs", "sync_file_range")
    OPENS = ("open", "openat", "openat2")
    # sync_file_range(2) writes data out but flushes no cache and commits
    # no journal: listed, not counted as a flush.
    NOT_FLUSHES = ("sync_file_range",)

    @classmethod
    def total(cls, flushes):
        """The flushes among stop()'s calls."""
        return sum(k for c, (k, _) in flushes.items() if c not in cls.NOT_FLUSHES)

    def __init__(self, root, out_path):
        self.out_path = out_path
        args = ["strace", "-f", "-qq", "-T", "-o", out_path,
                "-e", "trace=" + ",".join(self.CALLS + self.OPENS)]
        for p in tree(root):
            args += ["-p", str(p)]
        self.proc = subprocess.Popen(args, stderr=subprocess.DEVNULL)
        time.sleep(1)  # strace has no readiness signal; attaching settles

    def stop(self):
        """{call: (count, seconds)}"""
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=30)
        out = {}

        def add(name, secs):
            k, t = out.get(name, (0, 0.0))
            out[name] = (k + 1, t + secs)

        with open(self.out_path) as f:
            for line in f:
                # "PID call(args) = ret <0.000123>"; resumed calls start
                # with "<... call resumed>".
                m = _STRACE_LINE.match(line)
                if not m:
                    continue
                call = m.group(1) or m.group(2)
                secs = float(m.group(3)) if m.group(3) else 0.0
                unfinished = "<unfinished" in line
                if call in self.CALLS and not unfinished:
                    add(call, secs)  # counted when it returns
                elif (call in self.OPENS and m.group(1)
                      and ("O_SYNC" in line or "O_DSYNC" in line)):
                    add("O_SYNC-open", secs)  # flags are on the first line
        return out


_STRACE_LINE = __import__("re").compile(
    r"^\d+\s+(?:(\w+)\(|<\.\.\. (\w+) resumed>).*?(?:<(\d+\.\d+)>)?\s*$")


def flushes_per_message(flushes, messages):
    """'fsync=1.00/msg (6.1ms each) ...' from FlushTrace.stop()."""
    if not flushes:
        return "none"
    return " ".join(f"{c}={k / max(1, messages):.2f}/msg ({sec / max(1, k) * 1000:.1f}ms each)"
                    for c, (k, sec) in sorted(flushes.items()))


def disk_fsync_rate(folder, size=5120, seconds=3.0, stats=None):
    """The disk's ceiling for durable queue files: 5 KiB files created,
    written, fsync'd, and their folder fsync'd, one writer, for `seconds`;
    files per second (and stats["files"] = how many, if given)."""
    d = os.path.join(folder, "fsync-ceiling")
    os.makedirs(d, exist_ok=True)
    data = b"x" * size
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
    n = 0
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < seconds:
            fd = os.open(os.path.join(d, f"f{n}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)
            os.fsync(dfd)
            n += 1
        if stats is not None:
            stats["files"] = n
        return n / (time.monotonic() - t0)
    finally:
        os.close(dfd)
        shutil.rmtree(d, ignore_errors=True)


def disk_fsync_rate_on(spool):
    """disk_fsync_rate() in a folder on the spoolfs.SpoolFs `spool`;
    (rate, text) where text says how many cache flushes of the disk below
    each creation cost (that they reach the disk through a loop device;
    other users of the disk add theirs)."""
    import spoolfs
    home = spool.folder("zmbench-ceiling-")
    disk = spool.disk()
    try:
        os.sync()
        f0 = spoolfs.cache_flushes(disk)
        stats = {}
        rate = disk_fsync_rate(home, stats=stats)
        f1 = spoolfs.cache_flushes(disk)
        created = stats.get("files", 0)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    text = "" if f0 is None or f1 is None or created < 1 else \
        f", {(f1 - f0) / created:.1f} cache flushes of {disk} each"
    return rate, text


class PeakPss:
    """Samples the Pss of a process tree every `interval` seconds in a
    thread; .peak_kib is the largest sum seen (KiB)."""

    def __init__(self, root, interval=0.5):
        import threading
        self.root = root
        self.interval = interval
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, pss_kib(self.root))
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=30)
        self.peak_kib = max(self.peak_kib, pss_kib(self.root))
        return self.peak_kib


# ----- servers -----

class Zmnode:
    """A throw-away zmnode node. mode 'accept': the smtpserver alone;
    mode 'relay': the whole node under its supervisor."""

    name = "zmnode"

    def __init__(self, bindir, home, port, mode="accept", conns=20000,
                 smtp_conf_extra=(), scheduler_conf=None, scheduler_edit=None):
        """scheduler_conf: the text of etc/scheduler.conf; scheduler_edit: a
        function applied to the one `zmailer init` wrote (the binaries' own
        defaults, which may differ from the checkout's)."""
        self.bindir = os.path.abspath(bindir)
        self.home = home
        self.node = os.path.join(home, "zmnode")
        self.port = port
        self.mode = mode
        self.proc = None
        self.env = dict(os.environ, ZMAILER_HOME=self.node)
        self.env.pop("ZMBENCH_NETNS", None)
        zmailer = os.path.join(self.bindir, "zmailer")
        subprocess.run([zmailer, "init", self.node, "--smtp-port", str(port),
                        "--node-id", "bench", "--hostname", "zmnode.bench.example"],
                       check=True, stdout=subprocess.DEVNULL, env=self.env)
        conf = os.path.join(self.node, "etc", "smtpserver.conf")
        with open(conf) as f:
            text = f.read()
        text = text.replace("PARAM MaxSameIpSource    10 ",
                            f"PARAM MaxSameIpSource    {conns} ")
        text = text.replace("PARAM MaxParallelConnections 800 ",
                            f"PARAM MaxParallelConnections {conns} ")
        for line in smtp_conf_extra:
            text = line + "\n" + text
        with open(conf, "w") as f:
            f.write(text)
        sched = os.path.join(self.node, "etc", "scheduler.conf")
        if scheduler_edit is not None:
            with open(sched) as f:
                scheduler_conf = scheduler_edit(f.read())
        if scheduler_conf is not None:
            with open(sched, "w") as f:
                f.write(scheduler_conf)

    def start(self):
        if self.mode == "accept":
            self.proc = subprocess.Popen(
                [os.path.join(self.bindir, "smtpserver"), "-C", self.node, "-f"],
                env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            self.proc = subprocess.Popen(
                [os.path.join(self.bindir, "zmailer"), "start", "-f"],
                env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_port("127.0.0.1", self.port):
            raise RuntimeError("zmnode smtpserver did not come up")

    @property
    def root_pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def drained(self, timeout):
        """True once no message is left in the spool (within `timeout` s)."""
        deadline = time.monotonic() + timeout
        dirs = [os.path.join(self.node, "spool", d) for d in ("router", "transport", "queue")]
        while any(files for d in dirs for _, _, files in os.walk(d)):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def version(self):
        """The checkout holding the binaries (its HEAD now: the build may
        be older) and the binaries' folder."""
        r = subprocess.run(["git", "-C", self.bindir, "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True)
        return f"zmnode {r.stdout.strip() or '?'} ({self.bindir})"


def point_smtp_at_sink(text, sink_port):
    """scheduler.conf `text` with the smtp/* clause's agent pointed at the
    sink (whatever else the clause says)."""
    m = re.search(r'^smtp/\*\n(?:[ \t]+.*\n)*?[ \t]+command="smtp"', text, re.M)
    if not m:
        raise RuntimeError('scheduler.conf: no smtp/* clause with command="smtp"; '
                           "update bench/lib/benchlib.py")
    clause = m.group(0)
    return text.replace(clause, clause[:-1] + f' -F [127.0.0.1]:{sink_port}"', 1)


class Peer:
    """A private peer MTA instance through its script in bench/peers/
    (postfix, exim, opensmtpd: install, setup, start, stop, pid, drained,
    version)."""

    LABELS = {"postfix": "Postfix", "exim": "Exim", "opensmtpd": "OpenSMTPD"}
    # Durability of an acknowledged message, for the tables.
    DURABLE = {"postfix": True, "exim": True, "opensmtpd": False}

    def __init__(self, name, home, port, mode="accept", sink_port=None, procs=100):
        self.name = name
        self.script = os.path.join(PEERS, name)
        os.chmod(home, 0o755)  # their daemons run unprivileged and must reach the queue
        self.dir = os.path.join(home, name)
        self.port = port
        args = [self.script, "setup", self.dir, "--port", str(port), "--mode", mode,
                "--procs", str(procs)]
        if sink_port:
            args += ["--sink-port", str(sink_port)]
        subprocess.run([self.script, "install"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)

    def start(self):
        subprocess.run([self.script, "start", self.dir], check=True,
                       stdout=subprocess.DEVNULL)

    @property
    def root_pid(self):
        r = subprocess.run([self.script, "pid", self.dir], check=True,
                           capture_output=True, text=True)
        return int(r.stdout.strip())

    def stop(self):
        subprocess.run([self.script, "stop", self.dir], stdout=subprocess.DEVNULL)

    def drained(self, timeout):
        """True once the queue is empty (within `timeout` seconds)."""
        r = subprocess.run([self.script, "drained", self.dir, "--timeout", str(int(timeout))],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return r.returncode == 0

    def version(self):
        r = subprocess.run([self.script, "version"], capture_output=True, text=True)
        return r.stdout.strip() or self.LABELS[self.name]


class Postfix(Peer):
    """A private Postfix instance (bench/peers/postfix)."""

    def __init__(self, home, port, mode="accept", sink_port=None, procs=100):
        super().__init__("postfix", home, port, mode, sink_port, procs)


def postfix_bin(name):
    r = subprocess.run([PEER_POSTFIX, "bin", name], check=True, capture_output=True,
                       text=True)
    return r.stdout.strip()


def postfix_env():
    root = os.environ.get("ZMBENCH_PREFIX", "/opt/zmbench/postfix")
    return dict(os.environ, LD_LIBRARY_PATH=os.path.join(root, "root/usr/lib/postfix"))


def smtp_source(port, messages, sessions, size, timeout, per_session=False):
    """Postfix's smtp-source; returns (seconds, returncode)."""
    args = [postfix_bin("smtp-source"), "-s", str(sessions), "-m", str(messages),
            "-l", str(size), "-f", "bench@source.example", "-t", "rcpt@sink.example",
            "-M", "source.example"]
    if per_session:
        args.append("-d")
    args.append(f"127.0.0.1:{port}")
    t0 = time.monotonic()
    try:
        r = subprocess.run(args, env=postfix_env(), timeout=timeout,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        rc = r.returncode
        if rc:
            print("  smtp-source:", r.stderr.strip()[:300], file=sys.stderr)
    except subprocess.TimeoutExpired:
        rc = "timeout"
    return time.monotonic() - t0, rc


# ----- asyncio SMTP client and sink -----

async def read_reply(reader):
    """One SMTP reply: (code, last line). Bounded by the caller's timeout."""
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed")
        if len(line) < 4 or line[3:4] != b"-":
            return int(line[:3]), line


async def send_one(host, port, body, msg_id, stamps, latencies, errors):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        code, line = await read_reply(reader)
        if code != 220:
            raise ConnectionError(f"banner {line!r}")
        for cmd, want in ((b"EHLO client.bench.example\r\n", 250),
                          (b"MAIL FROM:<bench@source.example>\r\n", 250),
                          (b"RCPT TO:<rcpt@sink.example>\r\n", 250),
                          (b"DATA\r\n", 354)):
            writer.write(cmd)
            code, line = await read_reply(reader)
            if code != want:
                raise ConnectionError(f"{cmd.split()[0].decode()}: {line!r}")
        writer.write(f"Subject: bench {msg_id}\r\nX-Bench-Id: {msg_id}\r\n"
                     f"From: <bench@source.example>\r\nTo: <rcpt@sink.example>\r\n\r\n"
                     .encode() + body + b".\r\n")
        await writer.drain()
        t0 = time.monotonic()
        code, line = await read_reply(reader)
        t1 = time.monotonic()
        if code != 250:
            raise ConnectionError(f"end of data: {line!r}")
        latencies.append(t1 - t0)
        stamps[msg_id] = time.time()
        writer.write(b"QUIT\r\n")
        await writer.drain()
        try:
            await asyncio.wait_for(read_reply(reader), 5)
        except (asyncio.TimeoutError, ConnectionError):
            pass
    except (OSError, ConnectionError) as e:
        errors.append(repr(e))
    finally:
        writer.close()


def make_body(size):
    line = b"x" * 76 + b"\r\n"
    return line * max(1, size // len(line))


async def _timed_load(port, messages, sessions, size, timeout, tag):
    body = make_body(size)
    latencies, errors, stamps = [], [], {}
    counter = iter(range(messages))

    async def worker():
        for k in counter:
            await send_one("127.0.0.1", port, body, f"{tag}-{k}", stamps, latencies, errors)

    t0 = time.monotonic()
    tasks = [asyncio.create_task(worker()) for _ in range(sessions)]
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for t in pending:
        t.cancel()
    return time.monotonic() - t0, latencies, errors, stamps


def timed_load(port, messages, sessions, size, timeout, tag="m"):
    """N messages over `sessions` parallel connections, one message per
    connection (as smtp-source does by default); returns (seconds,
    latencies end-of-data->250, errors, {id: wall-clock acceptance})."""
    return asyncio.run(_timed_load(port, messages, sessions, size, timeout, tag))


def percentile(values, q):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


class Sink:
    """An SMTP sink in `workers` processes sharing the port (SO_REUSEPORT):
    accepts everything and appends `<wall-clock time> <X-Bench-Id>` per
    message to LOG (worker 0) or LOG.k (worker k)."""

    def __init__(self, port, log_path, workers=2, defer=False):
        self.port = port
        self.logs = [log_path] + [f"{log_path}.{k}" for k in range(1, workers)]
        extra = ["--reuse-port"] if workers > 1 else []
        if defer:
            extra.append("--defer")  # 421 to every connection (bench/queue)
        self.procs = [subprocess.Popen(
            [sys.executable, os.path.join(BENCH, "lib", "sink.py"), str(port), log] + extra)
            for log in self.logs]
        # Every worker must be listening before load spreads over them.
        deadline = time.monotonic() + 20
        while not all(os.path.exists(log + ".ready") for log in self.logs):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                self.stop()
                raise RuntimeError("sink did not come up")
            time.sleep(0.02)

    def arrivals_all(self):
        """[(id, time)] in arrival order, every message (id '-' for
        messages without X-Bench-Id, as smtp-source sends them)."""
        out = []
        for log in self.logs:
            try:
                with open(log) as f:
                    for line in f:
                        parts = line.split()
                        if len(parts) == 2:
                            out.append((parts[1], float(parts[0])))
            except FileNotFoundError:
                pass
        out.sort(key=lambda x: x[1])
        return out

    def count(self):
        n = 0
        for log in self.logs:
            try:
                with open(log, "rb") as f:
                    n += f.read().count(b"\n")
            except FileNotFoundError:
                pass
        return n

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(timeout=10)


class SmtpSink:
    """Postfix's smtp-sink (C, one process, event-driven) on 127.0.0.1:PORT,
    with the interface of Sink. Each mail transaction is dumped (`-d`) to
    its own file in a tmpfs folder (/dev/shm); bench/lib/dumpwatch.py
    stamps each file with the wall clock when smtp-sink closes it (at the
    final `.`, before the 250) in LOG.arrivals. The X-Bench-Id of a message
    is read from its file's head when asked, once per file. Nothing is
    synced: the sink pays a small write per message, the watcher a read
    per burst of arrivals."""

    HEAD = 16384  # an X-Bench-Id lies in the first header lines

    def __init__(self, port, log_path, dump=True, max_conns=1024):
        self.port = port
        base = "/dev/shm" if os.path.isdir("/dev/shm") else os.path.dirname(log_path)
        self.dir = tempfile.mkdtemp(prefix="zmbench-sink-", dir=base)
        os.chmod(self.dir, 0o777)  # smtp-sink runs as nobody (-u)
        self.arrivals_log = log_path + ".arrivals"
        self.watch = None
        args = [postfix_bin("smtp-sink"), "-u", "nobody", "-m", str(max_conns)]
        if dump:
            # strftime's seconds in the name, then smtp-sink's random
            # suffix: two transactions never share a file.
            args += ["-d", os.path.join(self.dir, "%H%M%S.")]
            self.watch = subprocess.Popen(
                [sys.executable, os.path.join(BENCH, "lib", "dumpwatch.py"), self.dir,
                 self.arrivals_log])
            deadline = time.monotonic() + 20
            while not os.path.exists(self.arrivals_log + ".ready"):
                if time.monotonic() > deadline or self.watch.poll() is not None:
                    self.stop()
                    raise RuntimeError("dumpwatch did not come up")
                time.sleep(0.02)
        self._err = open(log_path, "w")
        self.proc = subprocess.Popen(args + [f"127.0.0.1:{port}", "1024"],
                                     env=postfix_env(), stdout=subprocess.DEVNULL,
                                     stderr=self._err)
        self._ids = {}  # file name -> X-Bench-Id ('-' if none)
        if not wait_port("127.0.0.1", port):
            self.stop()
            raise RuntimeError("smtp-sink did not come up")

    def _bench_id(self, name):
        got = self._ids.get(name)
        if got is not None:
            return got
        try:
            with open(os.path.join(self.dir, name), "rb") as f:
                head = f.read(self.HEAD)
        except OSError:
            return "-"
        got = "-"
        k = head.lower().find(b"\nx-bench-id:")
        if k >= 0:
            end = head.find(b"\n", k + 1)
            got = head[k + 12:end if end >= 0 else len(head)].strip().decode(
                errors="replace") or "-"
        self._ids[name] = got  # the file was closed: it is whole
        return got

    def _closed(self):
        """[(time, file name)] of every transaction smtp-sink finished."""
        try:
            with open(self.arrivals_log) as f:
                text = f.read()
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 2:
                out.append((float(parts[0]), parts[1]))
        return out

    def arrivals_all(self):
        """[(id, time)] in arrival order, as Sink.arrivals_all()."""
        out = [(self._bench_id(name), t) for t, name in self._closed()]
        out.sort(key=lambda x: x[1])
        return out

    def count(self):
        try:
            with open(self.arrivals_log, "rb") as f:
                return f.read().count(b"\n")
        except FileNotFoundError:
            return 0

    def stop(self):
        for p in (getattr(self, "proc", None), self.watch):
            if p is None or p.poll() is not None:
                continue
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if getattr(self, "_err", None):
            self._err.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def make_sink(kind, port, log_path, workers=2):
    """The relay benchmarks' sink: 'smtp-sink' (Postfix's, the default)
    or 'py' (bench/lib/sink.py in `workers` processes)."""
    if kind == "py":
        return Sink(port, log_path, workers=workers)
    return SmtpSink(port, log_path)


async def _open_held(port, count, sources, timeout, slow):
    """Opens `count` connections from 127.0.0.x sources and waits for each
    banner; returns (connections, banners received, errors). With `slow`,
    the caller trickles bytes into them (see _trickle)."""
    conns, errors = [], []
    got = 0
    sem = asyncio.Semaphore(200)  # connect in waves, not 10,000 SYNs at once

    async def one(i):
        nonlocal got
        src = f"127.0.0.{2 + i % sources}"
        async with sem:
            try:
                r, w = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0)), timeout)
                conns.append((r, w))
                line = await asyncio.wait_for(r.readline(), timeout)
                if line.startswith(b"220"):
                    got += 1
                else:
                    errors.append(line[:80])
            except (OSError, asyncio.TimeoutError) as e:
                errors.append(repr(e)[:80])

    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(count))), timeout * 4)
    return conns, got, errors


async def _trickle(conns, interval, stop):
    """A slow client on every connection: `EHLO slow.bench.example` and
    then NOOPs, one byte per `interval` seconds per connection, until
    `stop` is set. Returns how many connections the server closed."""
    text = b"EHLO slow.bench.example\r\n" + b"NOOP\r\n" * 1000
    closed = 0
    k = 0
    while not stop.is_set() and k < len(text):
        for r, w in conns:
            if w.is_closing():
                continue
            try:
                w.write(text[k:k + 1])
            except (OSError, RuntimeError):
                closed += 1
        k += 1
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except asyncio.TimeoutError:
            pass
    return closed


def held_connections(server, count, sources=40, timeout=60.0, probe=None, slow=False,
                     interval=1.0):
    """Memory per held connection: Pss of the server tree before and after
    `count` connections got their banner (idle ones, or slow ones that
    trickle a byte per `interval` s into every connection). `probe()` runs
    in a thread while they are open (e.g. a normal client's messages) and
    its result is returned."""

    async def run():
        before = pss_kib(server.root_pid)
        t0 = time.monotonic()
        conns, got, errors = await _open_held(server.port, count, sources, timeout, slow)
        opened_s = time.monotonic() - t0
        stop = asyncio.Event()
        trickler = asyncio.create_task(_trickle(conns, interval, stop)) if slow else None
        await asyncio.sleep(max(1.0, 2 * interval if slow else 1.0))  # settle buffers
        after = pss_kib(server.root_pid)
        procs = len(tree(server.root_pid))
        probe_result = await asyncio.get_running_loop().run_in_executor(None, probe) \
            if probe else None
        stop.set()
        closed = await trickler if trickler else 0
        for r, w in conns:
            w.close()
        return dict(before_kib=before, after_kib=after, served=got, errors=errors,
                    opened_s=opened_s, processes=procs, probe=probe_result,
                    closed_by_server=closed)

    return asyncio.run(run())


def idle_connections(server, count, sources=40, timeout=60.0, probe=None):
    """held_connections() with idle connections (bench/smtp-accept)."""
    return held_connections(server, count, sources, timeout, probe)
