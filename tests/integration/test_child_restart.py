#!/usr/bin/env python3
"""kill -9 of an acceptor, of a parser and of the shipper, one at a time (issue 2): the supervisor
restarts it (a new pid, the log says so) and the service serves again (a send succeeds, every
event arrives)."""
import os
import re
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log


def run():
    q.need_binaries()
    recv = q.Receiver().start()
    server = q.Server(recv, extra=["--acceptors", "2", "--parsers", "2"], name="restart")
    server.start()
    pids = server.all_pids()
    log("children: %r" % pids)
    check(len(pids["acceptor"]) == 2 and len(pids["parser"]) == 2 and len(pids["shipper"]) == 1,
          "expected 2 acceptors, 2 parsers, 1 shipper as children of the supervisor, found %r" % pids)
    nxt = 0
    k = q.scale(3000)
    rc, out, err = q.send(server, q.gen_events(k, nxt), timeout=q.tmo(60), client_timeout=int(q.tmo(30)))
    check(rc == 0, "baseline send: exit %r; %s" % (rc, err[-500:]))
    nxt += k
    for role in ("acceptor", "parser", "shipper"):
        before = server.pids(role)
        log_len = len(server.log())
        old = server.kill_child(role, signal.SIGKILL)
        t0 = time.monotonic()
        now = server.wait_respawn(role, old, len(before))
        log("%s %d killed; replaced by %r after %.2fs" % (role, old, [p for p in now if p not in before],
                                                         time.monotonic() - t0))
        check(server.running(), "supervisor died after kill -9 of a %s" % role)
        # the log mentions it
        deadline = time.monotonic() + q.tmo(5)
        new_log = ""
        while time.monotonic() < deadline:
            new_log = server.log()[log_len:]
            if role in new_log and re.search(r"%d|signal 9|SIGKILL|killed|restart" % old, new_log, re.I):
                break
            time.sleep(0.1)
        check(role in new_log and re.search(r"%d|signal 9|SIGKILL|killed|restart" % old, new_log, re.I),
              "the log does not mention the death/restart of %s %d; new log:\n%s" % (role, old, new_log[-1500:]))
        for other in ("acceptor", "parser", "shipper"):
            if other != role:
                check(server.pids(other) == pids[other],
                      "killing a %s also replaced %s children: %r -> %r" % (role, other, pids[other],
                                                                           server.pids(other)))
        pids[role] = server.pids(role)
        # serves again
        rc, out, err = q.send(server, q.gen_events(k, nxt), timeout=q.tmo(90), client_timeout=int(q.tmo(45)))
        check(rc == 0, "send after kill -9 of a %s: exit %r; stderr %s\nlog tail:\n%s"
              % (role, rc, err[-800:], server.log_tail()))
        missing = recv.wait_numbers(range(0, nxt + k), q.tmo(30), quiet=0.2)
        check(not missing, "after kill -9 of a %s: %d events missing, first %s"
              % (role, len(missing), sorted(missing)[:20]))
        nxt += k
        log("%s: restarted and serving" % role)
    seen = recv.seen()
    dups = sum(c - 1 for c in seen.values() if c > 1)
    server.stop()
    return "acceptor, parser and shipper each restarted after kill -9; %d events delivered, %d duplicates" % (nxt, dups)


if __name__ == "__main__":
    q.main(run)
