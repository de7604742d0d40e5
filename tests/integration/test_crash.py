"""Crash test: SIGKILL the node's programs while mail flows; nothing that was
acknowledged may be lost.

Two submitters run at once: one through `sendmail` (acknowledged = exit 0),
one through SMTP (acknowledged = 250 after DATA). Every message carries
`X-Seq: n` (unique per message) and `X-Attempt: k` (a submission retried
after a failed attempt gets a new k). Meanwhile the test SIGKILLs the
router, the scheduler, the smtpserver and a mailbox transport agent at
random moments; the supervisor restarts the daemons, the scheduler
restarts agents. The load runs for at least ZM_CRASH_MESSAGES messages and
until every fault is injected (bounded by ZM_CRASH_MAX_MESSAGES), so the
faults always hit a busy node. At the end the queue must drain (bounded)
and every acknowledged X-Seq must be in the mailbox at least once.

Duplicates are allowed (see docs/testing.md): a crash after the mailbox
write but before the result reaches the control file makes the message
be delivered again. They are counted and printed, as are deliveries of
attempts that were never acknowledged (the server died after its commit but
before the client saw 250).

Knobs (environment): ZM_CRASH_MESSAGES (300), ZM_CRASH_MAX_MESSAGES (10000),
ZM_CRASH_KILLS (8), ZM_CRASH_DRAIN (seconds, 180), ZM_CRASH_SEED,
ZM_CRASH_MAX_ATTEMPTS (40 per message), and ZM_CRASH_DURATION (seconds, 0):
when set, the faults are spread over that long and the load runs at least
that long (the soak, bench/soak/run.sh).
"""

import collections
import fcntl
import os
import random
import re
import signal
import smtplib
import threading
import time

from conftest import DAEMONS, pid_alive, wait_for

MESSAGES = int(os.environ.get("ZM_CRASH_MESSAGES", "300"))
MAX_MESSAGES = int(os.environ.get("ZM_CRASH_MAX_MESSAGES", "10000"))
KILLS = int(os.environ.get("ZM_CRASH_KILLS", "8"))
DRAIN = float(os.environ.get("ZM_CRASH_DRAIN", "180"))
SEED = int(os.environ.get("ZM_CRASH_SEED", str(int(time.time()))))
DURATION = float(os.environ.get("ZM_CRASH_DURATION", "0"))
TARGETS = ("router", "scheduler", "smtpserver", "mailbox")
# Per message; bounded retry while a daemon restarts. A soak raises it: at
# its fault rate the supervisor's restart back-off (up to 60 s) can keep
# the smtpserver down for many attempts in a row.
MAX_ATTEMPTS = int(os.environ.get("ZM_CRASH_MAX_ATTEMPTS", "40"))


def make_message(seq, attempt, via):
    return (f"From: load@localhost\nTo: root@localhost\n"
            f"Subject: crash load {seq}\nX-Seq: {seq}\nX-Attempt: {attempt}\n"
            f"X-Via: {via}\n\nmessage {seq} attempt {attempt}\n"
            + "filler line to give the writes some size\n" * 20
            + f"end of message {seq} attempt {attempt}\n")


class Load:
    """Submits numbered messages from several threads and records which
    attempt of each was acknowledged."""

    def __init__(self, node):
        self.node = node
        self.lock = threading.Lock()
        self.next_seq = 0
        self.acked = {}            # seq -> attempt acknowledged
        self.failed_attempts = []  # (seq, attempt, reason)
        self.gave_up = []
        self.faults_done = threading.Event()

    def take_seq(self):
        """The next message number, or None when the load is over."""
        with self.lock:
            if self.next_seq >= MAX_MESSAGES or (
                    self.next_seq >= MESSAGES and self.faults_done.is_set()):
                return None
            self.next_seq += 1
            return self.next_seq - 1

    def record(self, seq, attempt, ok, reason=""):
        with self.lock:
            if ok:
                self.acked[seq] = attempt
            else:
                self.failed_attempts.append((seq, attempt, reason))

    def via_sendmail(self):
        while (seq := self.take_seq()) is not None:
            for attempt in range(MAX_ATTEMPTS):
                proc = self.node.sendmail(
                    "-i", "-f", "load@localhost", "root@localhost",
                    message=make_message(seq, attempt, "sendmail"))
                ok = proc.returncode == 0
                self.record(seq, attempt, ok,
                            f"sendmail exit {proc.returncode}: "
                            f"{proc.stderr.strip()}")
                if ok:
                    break
            else:
                self.gave_up.append(seq)

    def via_smtp(self):
        client = None
        while (seq := self.take_seq()) is not None:
            for attempt in range(MAX_ATTEMPTS):
                try:
                    if client is None:
                        client = smtplib.SMTP("127.0.0.1",
                                              self.node.smtp_port, timeout=60)
                        client.ehlo("load.example")
                    # Raises unless DATA got 250: only then is it acknowledged.
                    client.sendmail("load@localhost", ["root@localhost"],
                                    make_message(seq, attempt, "smtp"))
                    self.record(seq, attempt, True)
                    break
                except (OSError, smtplib.SMTPException) as e:
                    self.record(seq, attempt, False, f"smtp: {e!r}")
                    try:
                        if client is not None:
                            client.close()
                    except OSError:
                        pass
                    client = None
                    # The smtpserver is restarting: poll until it is back.
                    try:
                        wait_for(lambda: self.node.running("smtpserver"),
                                 timeout=30, interval=0.05,
                                 what="smtpserver back")
                    except AssertionError:
                        pass
            else:
                self.gave_up.append(seq)
        if client is not None:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                pass


def kill_one(node, target, rng, last_killed):
    """SIGKILLs `target`; returns a description or None if nothing to kill.

    A daemon is killed again only after the supervisor has restarted it
    (a new live pid), so each of its faults is one crash and one restart;
    different daemons may be down at the same time.
    """
    if target == "mailbox":
        try:
            pids = wait_for(lambda: node.ta_pids("mailbox"), timeout=5,
                            interval=0.02, what="a mailbox agent")
        except AssertionError:
            return None
        pid = rng.choice(pids)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        return f"mailbox[{pid}]"
    if target in last_killed:
        node.wait_restarted(target, last_killed[target], timeout=120)
    pid = node.pid(target)
    if not pid_alive(pid):
        return None
    os.kill(pid, signal.SIGKILL)
    last_killed[target] = pid
    return f"{target}[{pid}]"


def inject_faults(node, rng, load_running):
    """KILLS faults at random moments, spread over TARGETS."""
    pending = []
    while len(pending) < KILLS:
        batch = list(TARGETS)
        rng.shuffle(batch)
        pending.extend(batch)
    pending = pending[:KILLS]
    faults = []
    misses = 0
    last_killed = {}
    while pending and misses < 4 * KILLS:
        # A random moment: this pause is the point of the test, not a wait
        # for readiness. A soak spreads the faults over its duration.
        if DURATION > 0:
            time.sleep(rng.uniform(0.5, 1.5) * DURATION / KILLS)
        else:
            time.sleep(rng.uniform(0.05, 0.8))
        target = pending.pop(0)
        what = kill_one(node, target, rng, last_killed)
        if what:
            faults.append((what, "load" if load_running() else "drain"))
        else:
            misses += 1
            pending.append(target)  # nothing to kill right now; later
    return faults


def delivered(node):
    """Complete copies per (seq, attempt) in root's mbox, and the number of
    partial ones (headers present, last line missing).

    Scans the raw file rather than split messages, so a copy that follows
    a torn write still counts (and the torn one shows up as partial).
    """
    text = node.mbox("root")
    starts = collections.Counter(
        (int(a), int(b)) for a, b in
        re.findall(r"^X-Seq: (\d+)\nX-Attempt: (\d+)$", text, re.M))
    ends = collections.Counter(
        (int(a), int(b)) for a, b in
        re.findall(r"^end of message (\d+) attempt (\d+)$", text, re.M))
    partial = sum(max(0, starts[k] - ends[k]) for k in starts)
    return ends, partial


def abandoned_submissions(node):
    """Files in public/ that no writer holds: submissions whose writer was
    killed before committing (never acknowledged; the router removes them
    at its next start once they are a minute old)."""
    out = []
    for name in node.spool_files("public"):
        path = node.spool / "public" / name
        try:
            with open(path, "rb") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live writer
                text = f.read().decode(errors="replace")
        except FileNotFoundError:
            continue
        m = re.search(r"^X-Seq: (\d+)\nX-Attempt: (\d+)$", text, re.M)
        out.append((name, (int(m.group(1)), int(m.group(2))) if m else None))
    return out


def test_crash_under_load(node):
    rng = random.Random(SEED)
    print(f"crash test seed {SEED} (set ZM_CRASH_SEED to repeat)")
    load = Load(node)
    threads = [threading.Thread(target=load.via_sendmail),
               threading.Thread(target=load.via_smtp)]
    started = time.monotonic()
    for t in threads:
        t.start()
    try:
        faults = inject_faults(
            node, rng, lambda: any(t.is_alive() for t in threads))
        # A soak keeps the load on for its whole duration.
        time.sleep(max(0.0, started + DURATION - time.monotonic()))
    finally:
        load.faults_done.set()
        for t in threads:
            t.join(timeout=900)
    assert not any(t.is_alive() for t in threads), "load did not finish"

    # Every daemon is back.
    for prog in DAEMONS:
        wait_for(lambda: node.running(prog), timeout=120,
                 what=f"{prog} running")

    # Drain: ask the scheduler to retry deferred work now and then (a
    # killed agent defers its job), until the queue is empty.
    last_kick = [0.0]

    def drained():
        if all(not node.spool_files(f) for f in ("router", "queue",
                                                 "transport")):
            return True
        if time.monotonic() - last_kick[0] > 3:
            last_kick[0] = time.monotonic()
            node.sendmail("-q")
        return False
    try:
        wait_for(drained, timeout=DRAIN, interval=0.2,
                 what="the queue to drain")
        drain_error = None
    except AssertionError as e:
        drain_error = str(e)
        # What holds the queue up: leftover mailbox locks, the threads.
        for lock in sorted(node.mail.glob("*.lock")):
            holder = lock.read_text(errors="replace").strip()
            alive = holder.isdigit() and pid_alive(int(holder))
            drain_error += (f"\n{lock} left behind (pid {holder}, "
                            f"{'alive' if alive else 'dead'})")
        drain_error += "\nmailq -Q:\n" + node.mailq("-Q").output

    counts, partial = delivered(node)
    by_seq = collections.Counter()
    for (seq, _attempt), n in counts.items():
        by_seq[seq] += n
    lost = sorted(seq for seq, attempt in load.acked.items()
                  if counts[(seq, attempt)] == 0 and by_seq[seq] == 0)
    lost_attempt = sorted(seq for seq, attempt in load.acked.items()
                          if counts[(seq, attempt)] == 0)
    duplicated = sorted((k, n) for k, n in counts.items() if n > 1)
    unacked_delivered = sorted(
        k for k in counts if load.acked.get(k[0]) != k[1])
    abandoned = abandoned_submissions(node)
    abandoned_acked = [(n, k) for n, k in abandoned
                       if k is not None and load.acked.get(k[0]) == k[1]]

    print("faults injected:", ", ".join(f"{w} ({when})" for w, when in faults))
    print(f"messages submitted: {load.next_seq}; failed submission attempts: "
          f"{len(load.failed_attempts)}")
    for f in load.failed_attempts[:20]:
        print("  ", f)
    if duplicated:
        print("duplicates ((seq, attempt), copies):", duplicated)
    if unacked_delivered:
        print("delivered but never acknowledged (seq, attempt):",
              unacked_delivered)
    if partial:
        print(f"partial messages in the mbox: {partial}")
    if abandoned:
        print("abandoned (never committed) submissions in public/:", abandoned)
    print(f"spool at the end: {node.spool_counts()}")
    print(f"CRASH SUMMARY: faults={len(faults)} acknowledged={len(load.acked)}"
          f" lost={len(lost)} duplicated={sum(n - 1 for _, n in duplicated)}"
          f" unacked_delivered={len(unacked_delivered)} partial={partial}"
          f" abandoned={len(abandoned)}")

    assert len(faults) == KILLS, f"only {len(faults)} faults injected"
    assert not load.gave_up, f"submissions never acknowledged: {load.gave_up}"
    assert not lost, f"acknowledged but lost: {lost}"
    assert not lost_attempt, (
        f"acknowledged attempt not delivered (another attempt was): "
        f"{lost_attempt}")
    assert not abandoned_acked, (
        f"acknowledged messages left in public/: {abandoned_acked}")
    assert drain_error is None, drain_error
    assert not node.spool_files("postman"), (
        f"messages quarantined: {node.spool_files('postman')}")
