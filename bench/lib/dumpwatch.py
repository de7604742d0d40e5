"""Arrival clock for Postfix's smtp-sink in bench/relay: watches the folder
smtp-sink dumps each transaction into (`smtp-sink -d DIR/...`) and appends
`<wall-clock time> <file name>` to LOG when a file is closed (inotify
IN_CLOSE_WRITE: smtp-sink closes the dump at the final `.`, before its 250).

  python3 bench/lib/dumpwatch.py DIR LOG

A file's modification time would do as well but for the kernel's coarse
file clock (one tick, 4 ms here, behind the real time); this process stamps
each event with time.time(), the clock the clients stamp acceptance with.
It runs on its own (no lock shared with the benchmark's client). LOG.ready
appears once the watch is in place. Stops on SIGTERM.
"""
import ctypes
import os
import signal
import struct
import sys
import time

IN_CLOSE_WRITE = 0x00000008
EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then the name


def main():
    folder, path = sys.argv[1], sys.argv[2]
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    fd = libc.inotify_init1(os.O_CLOEXEC)
    if fd < 0:
        sys.exit(f"dumpwatch: inotify_init1: {os.strerror(ctypes.get_errno())}")
    if libc.inotify_add_watch(fd, folder.encode(), IN_CLOSE_WRITE) < 0:
        sys.exit(f"dumpwatch: {folder}: {os.strerror(ctypes.get_errno())}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with open(path, "a") as log:
        with open(path + ".ready", "w"):
            pass
        while True:
            buf = os.read(fd, 65536)
            now = time.time()
            k = 0
            lines = []
            while k + EVENT.size <= len(buf):
                _, mask, _, n = EVENT.unpack_from(buf, k)
                name = buf[k + EVENT.size:k + EVENT.size + n].rstrip(b"\0").decode()
                k += EVENT.size + n
                if mask & IN_CLOSE_WRITE and name:
                    lines.append(f"{now:.6f} {name}\n")
            log.write("".join(lines))
            log.flush()


if __name__ == "__main__":
    main()
