#!/usr/bin/env python3
"""A child that sends a control message its role may not send is taken for compromised (issue 20,
point 3): the supervisor logs it, kills the child and restarts it like one that crashed, and the
service keeps serving (every event arrives). The test-only hook QS_TEST_CTL_FORBIDDEN=ROLE makes the
first process of slot 0 of ROLE send one: a parser asks for a Logstash lookup (only the shipper
may), the shipper sends SHUTDOWN (only the supervisor may); with ROLE:ready an acceptor says READY
again, thousands of times (a process says it once: each was an sd_notify and messages to the other
children, and the supervisor read its socket until empty, held there); with shipper:status the
shipper's STATUS texts carry newlines and sd_notify assignments (see status_text). The tables
themselves are checked message by message in tests/unit/test_ctl_dispatch.c."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log


def wait_log(server, pattern, what):
    deadline = time.monotonic() + q.tmo(20)
    while time.monotonic() < deadline:
        m = re.search(pattern, server.log())
        if m:
            return m
        time.sleep(0.1)
    check(False, "%s: no log line matching %r; log tail:\n%s" % (what, pattern, server.log_tail()))


def forbidden(role, message, kind=None):
    q.need_binaries()
    q.need_test_hooks("QS_TEST_CTL_FORBIDDEN")
    recv = q.Receiver().start()
    server = q.Server(recv, extra=["--acceptors", "2", "--parsers", "2"], name="forbidden-" + role)
    server.env["QS_TEST_CTL_FORBIDDEN"] = role + (":" + kind if kind else "")
    server.start()
    if kind == "ready":
        wait_log(server, r"%s 0 said READY twice" % role, "the second READY")
    wait_log(server, r"%s 0 sent control message %s \(\d+ bytes\), [^:]*: taking it for compromised, killing it"
             % (role, message), "the forbidden %s" % message)
    wait_log(server, r"%s 0 was killed by signal 9" % role, "the kill")
    wait_log(server, r"restarting %s 0 in \d+ ms" % role, "the restart")
    deadline = time.monotonic() + q.tmo(20)
    while time.monotonic() < deadline and len(server.pids(role)) < (2 if role == "parser" else 1):
        time.sleep(0.05)
    check(server.running(), "the supervisor died")
    k = q.scale(3000)
    rc, out, err = q.send(server, q.gen_events(k, 0), timeout=q.tmo(90), client_timeout=int(q.tmo(45)))
    check(rc == 0, "send after the %s was restarted: exit %r; %s\nlog tail:\n%s"
          % (role, rc, err[-800:], server.log_tail()))
    missing = recv.wait_numbers(range(0, k), q.tmo(30), quiet=0.2)
    check(not missing, "%d events missing, first %s" % (len(missing), sorted(missing)[:20]))
    kills = len(re.findall(r"taking it for compromised", server.log()))
    check(kills == 1, "expected one compromised child (the hook fires in the first process only), saw %d" % kills)
    server.stop()
    return "%s sending %s: killed, restarted, %d events delivered" % (role, message, k)


def status_text():
    """The shipper's STATUS text (a compromised one's) goes into the supervisor's sd_notify STATUS=
    line (with several Logstash addresses): a newline in it started assignments of its own
    (WATCHDOG_USEC=, STATUS=...). Control characters are replaced before anything uses the text."""
    q.need_binaries()
    q.need_test_hooks("QS_TEST_CTL_FORBIDDEN")
    a, b = q.Receiver().start(), q.Receiver().start()
    server = q.Server("%s,%s" % (a.addr, b.addr), name="forbidden-status")
    server.env["QS_TEST_CTL_FORBIDDEN"] = "shipper:status"
    server.start()
    q.send_acked(server, q.gen_events(200), "200 events")
    deadline = time.monotonic() + q.tmo(20)
    seen = []
    while time.monotonic() < deadline and not seen:
        seen = [m for m in server.notify_msgs if "?WATCHDOG_USEC=1?STATUS=injected" in m]
        time.sleep(0.1)
    check(seen, "the hook's STATUS text never reached the notify line: %r" % server.notify_msgs[-3:])
    lines = [l for m in server.notify_msgs for l in m.splitlines()]
    injected = [l for l in lines if l.startswith("WATCHDOG_USEC=") or l.startswith("STATUS=injected")]
    check(not injected, "sd_notify assignments from the shipper's text: %r" % injected[:3])
    check("taking it for compromised" not in server.log(), "a STATUS with such a text is not a kill")
    server.stop()
    return "a STATUS text with newlines: one notify line (%s)" % seen[0].splitlines()[0][-70:]


CASES = [("parser", lambda: forbidden("parser", "RESOLVE")),
         ("shipper", lambda: forbidden("shipper", "SHUTDOWN")),
         ("ready", lambda: forbidden("acceptor", "READY", kind="ready")),
         ("status", status_text)]


def run():
    return "; ".join(fn() for _, fn in CASES)


if __name__ == "__main__":
    q.main(run, cases=CASES)
