#!/usr/bin/env python3
"""Several Logstash addresses (--logstash-addr A,B): when the one in use fails, the output moves to
the next at once, re-sending what had not settled; nothing acknowledged is lost.
  1. both up: events go to A;
  2. A goes down: the output moves to B, and the events arrive there;
  3. a restart with A still down: the output starts on B without waiting out a backoff;
  4. both down, then A back: everything sent meanwhile arrives at A;
  5. bad lists are refused at start with a reason (exit 2).
The status line names the address in use."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log


def status_names(server, since):
    return [l for m in server.notify_msgs[since:] for l in m.splitlines() if "Logstash up at" in l]


def bad_lists(a):
    cases = [a + ",", "," + a, a + ",," + a, a + ",file:/tmp/x", ",".join([a] * 9), a + ",not-an-address"]
    d = q.mkdtemp("failover-bad")
    for lst in cases:
        argv = [q.QUICSTASHD, "-l", lst, "-s", "127.0.0.1:%d" % q.free_port("udp"), "--spool-dir",
                os.path.join(d, "spool")]
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=q.tmo(10), cwd=d)
        except subprocess.TimeoutExpired:
            check(False, "-l %r was accepted: the server started" % lst)
        check(p.returncode == 2 and "--logstash-addr" in p.stderr,
              "-l %r: exit %r, stderr %r (expected 2 and a reason)" % (lst, p.returncode, p.stderr))
    log("%d bad lists refused with a reason" % len(cases))


def run():
    q.need_binaries()
    a, b = q.Receiver().start(), q.Receiver().start()
    server = q.Server("%s,%s" % (a.addr, b.addr), name="failover")
    server.start()
    n = q.scale(3000)

    q.send_acked(server, q.gen_events(n), "both up")
    check(not a.wait_numbers(range(n), q.tmo(30), quiet=0.5), "events missing at A")
    check(b.count() == 0, "B got %d lines while A was up" % b.count())
    log("phase 1: %d events to A, none to B" % n)

    since = len(server.notify_msgs)
    a.stop()
    t0 = time.monotonic()
    q.send_acked(server, q.gen_events(n, start=n), "A down")
    missing = q.arrived([b], range(n, 2 * n), q.tmo(30))
    check(not missing, "%d events never reached B after A went down; log:\n%s" % (len(missing), server.log_tail()))
    log("phase 2: A down, %d events at B after %.1f s" % (n, time.monotonic() - t0))
    deadline = time.monotonic() + q.tmo(10)  # the status line is sent on a timer: wait for the next ones
    while time.monotonic() < deadline and not any(b.addr in l for l in status_names(server, since)):
        time.sleep(0.1)
    check(any(b.addr in l for l in status_names(server, since)),
          "the status line never named B as the address in use: %r" % status_names(server, since)[-3:])

    server.stop()
    server.start()
    t0 = time.monotonic()
    q.send_acked(server, q.gen_events(n, start=2 * n), "restart with A down")
    missing = q.arrived([b], range(2 * n, 3 * n), q.tmo(30))
    took = time.monotonic() - t0
    check(not missing, "%d events missing at B after a restart with A down" % len(missing))
    check(took < q.tmo(5), "%.1f s until the events reached B after a restart with A down" % took)
    log("phase 3: restarted with A down: %d events at B in %.1f s" % (n, took))

    b.stop()
    q.send_acked(server, q.gen_events(n, start=3 * n), "both down")  # acknowledged from the spool
    a2 = q.Receiver(port=a.port).start()
    missing = q.arrived([a2], range(3 * n, 4 * n), q.tmo(60))
    check(not missing, "%d events sent with both down never reached A when it came back" % len(missing))
    log("phase 4: both down, then A back: all %d events at A" % n)
    missing = q.arrived([a, b, a2], range(4 * n), 1)
    check(not missing, "%d of %d events lost over the phases" % (len(missing), 4 * n))
    server.stop()

    bad_lists(a.addr)
    return "failover A -> B at once, a restart starts on the live one, both down then back: nothing lost"


if __name__ == "__main__":
    q.main(run)
