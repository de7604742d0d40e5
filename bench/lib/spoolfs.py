"""The file system the benchmarks' spools and queues live on (--spool-fs).

  root  the temporary folder as it is (tempfile.gettempdir(); on the
        project's benchmark machine the root ext4, which has NO journal)
  ext4  a fresh ext4 made with mkfs.ext4's defaults (journal on,
        data=ordered) in an image file, loop-mounted
  xfs   a fresh XFS made with mkfs.xfs's defaults (its log) likewise

An ISP runs its spool on a journalled ext4 or XFS; the machine's own `/`
may not be one. For ext4 and xfs, SpoolFs.open():

  1. creates a folder zmbench-spoolfs-* in the temporary folder and in it
     an image of --spool-fs-size MiB, written with zeros (not sparse, not
     fallocated: the file system below then allocates nothing and converts
     no extent while the benchmark runs);
  2. makes the file system on it with the tool's defaults, except that
     nothing is discarded (a discard would punch the image sparse again)
     and ext4's inode tables and journal are written at once instead of
     by a kernel thread in the background of the first measurements;
  3. mounts it with `mount -o loop` (the loop device is freed when it is
     unmounted) and switches the loop device to direct I/O, so that its
     writes do not pass through the page cache twice; a flush of the
     loop device is an fsync of the image on the file system below;
  4. every MTA's work folder (zmnode's node directory, Postfix's
     queue_directory, Exim's spool, OpenSMTPD's queue: the scripts put
     each MTA's whole instance in a folder made by `folder()`) is made on
     it.

close() unmounts it and deletes the folder with the image: at the end, on
an error, on Ctrl-C (KeyboardInterrupt) and on SIGTERM/SIGHUP once
exit_on_signals() has made those raise SystemExit. The scripts run in a
private mount namespace when they can (benchlib.enter_netns(mount=True)):
the mount is invisible outside and vanishes with the namespace even if
the script is killed outright (only the image's folder is then left in
the temporary folder).

Needs root (mount) and mkfs.ext4 (e2fsprogs) or mkfs.xfs (xfsprogs, not
installed by scripts/install-deps: `apt-get install xfsprogs`).
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

KINDS = ("root", "ext4", "xfs")
MKFS = {
    "ext4": ["mkfs.ext4", "-q", "-F", "-E", "nodiscard,lazy_itable_init=0,lazy_journal_init=0"],
    "xfs": ["mkfs.xfs", "-q", "-f", "-K"],
}
PACKAGES = {"ext4": "e2fsprogs", "xfs": "xfsprogs"}


def add_arguments(ap, many=True):
    """--spool-fs (a comma-separated list when `many`) and --spool-fs-size."""
    if many:
        ap.add_argument("--spool-fs", default="root", metavar="FS[,FS...]",
                        help="file system(s) under every MTA's spool: root (the temporary "
                        "folder as it is), ext4, xfs (fresh, journalled, loop-mounted "
                        "images); several or `all`: each run of each MTA on each, "
                        "interleaved (default root)")
    else:
        ap.add_argument("--spool-fs", default="root", choices=KINDS,
                        help="file system under the spool: root (the temporary folder as "
                        "it is), ext4 or xfs (a fresh, journalled, loop-mounted image)")
    ap.add_argument("--spool-fs-size", type=int, default=1024, metavar="MIB",
                    help="size of the ext4/xfs image (default 1024 MiB)")


def parse_kinds(ap, text):
    """The --spool-fs list: ['root', 'ext4', ...]; errors through `ap`."""
    if text == "all":
        return list(KINDS)
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    for k in kinds:
        if k not in KINDS:
            ap.error(f"--spool-fs: unknown file system {k} (root, ext4, xfs)")
    if not kinds or len(set(kinds)) != len(kinds):
        ap.error("--spool-fs: name each file system once")
    return kinds


def needs_mount(kinds):
    return any(k != "root" for k in kinds)


def exit_on_signals():
    """SIGTERM and SIGHUP raise SystemExit, so that `finally` blocks (the
    MTAs' stops, the unmounts) run as they do on Ctrl-C."""

    def handler(signum, _frame):
        raise SystemExit(128 + signum)

    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, handler)


def _run(args, timeout=300):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {(r.stderr or r.stdout).strip()[:300]}")
    return r.stdout


def _findmnt(path):
    """(source, fstype, options, target) of the file system holding `path`."""
    out = _run(["findmnt", "-n", "-o", "SOURCE,FSTYPE,OPTIONS,TARGET", "--target", path])
    parts = out.split()
    return parts[0], parts[1], parts[2], parts[3]


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def journal_text(source, fstype, target):
    """'yes (...)' or 'no (...)': whether the file system at `target`
    journals its metadata, and how."""
    if fstype == "ext4":
        dev = os.path.basename(os.path.realpath(source))
        task = _read(f"/sys/fs/ext4/{dev}/journal_task")
        if task is None:
            return "unknown (no /sys/fs/ext4 entry)"
        if task == "<none>":
            return f"no (/sys/fs/ext4/{dev}/journal_task is <none>)"
        opts = _read(f"/proc/fs/ext4/{dev}/options") or ""
        data = next((o for o in opts.split("\n") if o.startswith("data=")), "data=?")
        size = ""
        try:
            out = subprocess.run(["dumpe2fs", "-h", source], capture_output=True, text=True,
                                 timeout=30).stdout
            size = next((ln.split(":", 1)[1].strip() + ", " for ln in out.splitlines()
                         if ln.startswith(("Journal size:", "Total journal size:"))), "")
        except (OSError, subprocess.TimeoutExpired):
            pass
        return f"yes (jbd2, {size}{data})"
    if fstype == "xfs":
        log = ""
        try:
            out = subprocess.run(["xfs_info", target], capture_output=True, text=True,
                                 timeout=30).stdout
            for ln in out.splitlines():
                if ln.startswith("log"):
                    f = dict(kv.split("=", 1) for kv in ln.replace(",", " ").split()
                             if "=" in kv)
                    where = "internal" if "internal" in ln else "external"
                    mib = int(f.get("bsize", 0)) * int(f.get("blocks", 0)) / 2**20
                    log = f", {where}, {mib:.0f} MiB"
        except (OSError, subprocess.TimeoutExpired, ValueError):
            pass
        return f"yes (XFS log{log})"
    if fstype in ("tmpfs", "ramfs"):
        return f"no ({fstype}: memory, nothing reaches a disk)"
    return f"? ({fstype})"


def describe_folder(path):
    """'ext4 /dev/vda at / (rw,relatime,...); journal: no (...)'."""
    try:
        source, fstype, options, target = _findmnt(path)
    except (RuntimeError, IndexError, OSError) as e:
        return f"? ({e})"
    return (f"{fstype} {source} at {target} ({options}); "
            f"journal: {journal_text(source, fstype, target)}")


class SpoolFs:
    """One --spool-fs kind for the length of a benchmark: open(), then
    folder(prefix) for each MTA run's work folder, close() at the end (or
    use it as a context manager)."""

    def __init__(self, kind, size_mib=1024, base=None):
        if kind not in KINDS:
            raise ValueError(f"unknown spool file system {kind}")
        self.kind = kind
        self.size_mib = size_mib
        self.base = base or tempfile.gettempdir()
        self.work = None      # zmbench-spoolfs-* (image and mount point)
        self.image = None
        self.mnt = None
        self.device = None
        self.dio = None
        self.mounted = False
        self.mkfs_s = None

    @property
    def root(self):
        """The folder the MTAs' work folders are made in."""
        return self.base if self.kind == "root" else self.mnt

    def check(self):
        """None, or why this kind cannot be used here."""
        if self.kind == "root":
            return None
        if os.geteuid() != 0:
            return f"--spool-fs {self.kind} needs root (mount)"
        for tool in (MKFS[self.kind][0], "mount", "umount", "losetup", "findmnt"):
            if shutil.which(tool) is None:
                return (f"--spool-fs {self.kind}: no {tool} "
                        f"(apt-get install {PACKAGES.get(self.kind, 'util-linux')})")
        if self.size_mib < 512:
            return "--spool-fs-size: at least 512 MiB (XFS needs 300; queues need room)"
        return None

    def open(self):
        why = self.check()
        if why:
            raise RuntimeError(why)
        if self.kind == "root":
            return self
        try:
            self.work = tempfile.mkdtemp(prefix=f"zmbench-spoolfs-{self.kind}-", dir=self.base)
            # The peers' daemons run unprivileged and must reach their queues.
            os.chmod(self.work, 0o755)
            self.image = os.path.join(self.work, "image")
            self.mnt = os.path.join(self.work, "mnt")
            os.mkdir(self.mnt)
            _run(["dd", "if=/dev/zero", f"of={self.image}", "bs=4M",
                  f"count={(self.size_mib + 3) // 4}", "oflag=direct", "conv=fsync",
                  "status=none"], timeout=600)
            t = time.monotonic()
            _run(MKFS[self.kind] + [self.image])
            self.mkfs_s = time.monotonic() - t
            _run(["mount", "-o", "loop", self.image, self.mnt])
            self.mounted = True
            self.device = _findmnt(self.mnt)[0]
            r = subprocess.run(["losetup", "--direct-io=on", self.device],
                               capture_output=True, text=True, timeout=30)
            dev = os.path.basename(self.device)
            self.dio = r.returncode == 0 and _read(f"/sys/block/{dev}/loop/dio") == "1"
            os.chmod(self.mnt, 0o755)
        except BaseException:
            self.close()
            raise
        return self

    def disk(self):
        """The block device the data finally reaches ('vda'): the file
        system's own for root, the one holding the image otherwise."""
        try:
            src = _findmnt(self.base if self.kind == "root" else self.work)[0]
        except (RuntimeError, IndexError, OSError):
            return None
        name = os.path.basename(os.path.realpath(src))
        return name if os.path.exists(f"/sys/class/block/{name}/stat") else None

    def flush_device(self):
        """The block device whose flush requests are this file system's own
        (its loop device for ext4/xfs, the disk for root), or None."""
        if self.kind != "root":
            return os.path.basename(self.device) if self.device else None
        return self.disk()

    def folder(self, prefix):
        """A new work folder for one MTA run on this file system."""
        return tempfile.mkdtemp(prefix=prefix, dir=self.root)

    def describe(self):
        """One line for the report's header: the file system, its mount
        options, its journal."""
        if self.kind == "root":
            return f"root: {self.base} on {describe_folder(self.base)}"
        below = describe_folder(self.work)
        mkfs = " ".join(a for a in MKFS[self.kind] if a not in ("-q", "-F", "-f"))
        return (f"{self.kind}: fresh {self.kind} ({mkfs}) "
                f"in a {self.size_mib} MiB zero-filled image on "
                f"{below.split(';')[0]}, via {self.device} "
                f"(direct I/O {'on' if self.dio else 'OFF'}); "
                f"{describe_folder(self.mnt)}")

    def close(self):
        """Unmounts (waiting up to 10 s for the last user to leave, then
        lazily, naming who holds it) and deletes the image's folder."""
        if self.mounted:
            deadline = time.monotonic() + 10
            while True:
                r = subprocess.run(["umount", self.mnt], capture_output=True, text=True)
                if r.returncode == 0:
                    break
                if time.monotonic() > deadline:
                    print(f"spool-fs: {self.mnt} still busy ({', '.join(holders(self.mnt))}); "
                          "detaching it lazily", file=sys.stderr)
                    subprocess.run(["umount", "-l", self.mnt])
                    break
                time.sleep(0.2)
            self.mounted = False
        if self.work:
            shutil.rmtree(self.work, ignore_errors=True)
            self.work = None

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()
        return False


def cache_flushes(disk):
    """Flush requests the block device `disk` has completed (field 16 of
    /sys/class/block/DISK/stat), or None."""
    try:
        with open(f"/sys/class/block/{disk}/stat") as f:
            return int(f.read().split()[15])
    except (OSError, IndexError, ValueError, TypeError):
        return None


def holders(path):
    """'pid (comm)' of every process with its working folder or an open
    file below `path` (bounded: one pass over /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        links = []
        for name in ("cwd", "root"):
            try:
                links.append(os.readlink(f"/proc/{d}/{name}"))
            except OSError:
                pass
        try:
            for fd in os.listdir(f"/proc/{d}/fd"):
                try:
                    links.append(os.readlink(f"/proc/{d}/fd/{fd}"))
                except OSError:
                    pass
        except OSError:
            pass
        if any(ln == path or ln.startswith(path + "/") for ln in links):
            out.append(f"{d} ({_read(f'/proc/{d}/comm') or '?'})")
    return out or ["no process found"]


def open_all(kinds, size_mib, stack):
    """{kind: SpoolFs} for every kind, opened, each closed by the
    contextlib.ExitStack `stack`."""
    out = {}
    for k in kinds:
        out[k] = stack.enter_context(SpoolFs(k, size_mib))
    return out
