#!/usr/bin/env python3
# A transport agent for the scheduler tests (docs/ta-protocol.md). The
# recipient's user decides: "ok*" delivered, "fail*" failed (5.1.1),
# "hold*" waits (at most 20 s) for the file $ZMAILER_HOME/release, then is
# deferred; while it waits, $ZMAILER_HOME/busy/<pid> exists and the number
# of such files is appended to $ZMAILER_HOME/concurrency (so tests can see
# how many agents worked at once); anything else deferred. Final results
# are appended to the control file first, as real agents do.
import os
import sys
import time

home = os.environ["ZMAILER_HOME"]


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def xtext(s):
    return "".join(c if "!" <= c <= "~" and c not in "+=" else "+%02X" % ord(c) for c in s)


say("#hungry")
for job in sys.stdin:
    qid, host, indexes = job.rstrip("\n").split("\t")
    control = os.path.join(home, "spool", "transport", qid)
    users = {}
    with open(control) as f:
        for line in f:
            p = line.split()
            if p and p[0] == "r":
                users[int(p[1])] = p[4]
    for i in (int(x) for x in indexes.split(",")):
        user = users[i]
        now = int(time.time())
        if user.startswith("ok"):
            with open(control, "a") as f:
                f.write("d %d ok %d 2.0.0 %s\n" % (i, now, xtext("delivered to test box")))
            say("%s\t%d\tok\t2.0.0\tlocal\t0\t0.001\tdelivered to test box" % (qid, i))
        elif user.startswith("fail"):
            with open(control, "a") as f:
                f.write("d %d failed %d 5.1.1 %s\n" % (i, now, xtext("user unknown")))
            say("%s\t%d\terror\t5.1.1\tlocal\t0\t0\tuser unknown" % (qid, i))
        elif user.startswith("hold"):
            busy = os.path.join(home, "busy")
            os.makedirs(busy, exist_ok=True)
            mine = os.path.join(busy, str(os.getpid()))
            open(mine, "w").close()
            with open(os.path.join(home, "concurrency"), "a") as f:
                f.write("%d\n" % len(os.listdir(busy)))
            deadline = time.time() + 20
            while not os.path.exists(os.path.join(home, "release")) and time.time() < deadline:
                time.sleep(0.02)
            os.unlink(mine)
            say("%s\t%d\tdeferred\t4.4.1\tlocal\t0\t0\theld" % (qid, i))
        else:
            say("%s\t%d\tdeferred\t4.2.2\tlocal\t0\t0\tmailbox busy" % (qid, i))
    say("#hungry")
