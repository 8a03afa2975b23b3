#!/usr/bin/env python3
"""One quicstashd per spool directory (common/spool_lock.c).

  second-instance: a second quicstashd on the first one's spool, same UDP port (it used to join the
                   port's SO_REUSEPORT group, report ready and stall clients), exits non-zero with
                   one line naming the first (its pid and UDP address) and starts no child; the
                   first keeps serving: events sent after are all acknowledged and delivered;
  check-spool:     `--check-spool --repair` on the live spool refuses (exit 2, the holder named);
                   a plain check runs and notes that the spool is in use;
  released:        once the first has stopped (SIGTERM), or was killed with all its children, a
                   new instance starts on the spool;
  survives:        after the shipper was killed and restarted, and after a reload (SIGHUP), a
                   second instance is still refused;
  orphan:          the supervisor killed alone while its shipper is still stopping (held stopped
                   here): the next instance's shipper waits for it (the spool directory's flock)
                   instead of writing the spool beside it, then serves;
  planted-link:    a symbolic link where the lock file goes is refused, never followed.
"""
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

N = 200


def second_on(first, recv, udp_port=None):
    """A Server sharing first's spool (and certificate, so that clients trust either)."""
    s = q.Server(recv, udp_port=udp_port or first.udp_port, name="second")
    s.spool, s.cert, s.key = first.spool, first.cert, first.key
    return s


def wait_exit(server, timeout):
    try:
        return server.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def send_and_deliver(server, recv, start, what):
    lines = q.gen_events(N, start=start)
    q.send_acked(server, lines, what)
    q.verify_delivery(recv, range(start, start + N), q.tmo(30), what)


def second_instance(recv=None):
    recv = recv or q.Receiver().start()
    first = q.Server(recv, name="first").start()
    send_and_deliver(first, recv, 0, "before the second instance")
    # on the first one's port, then on a port of its own (that one used to say ready)
    for k, port in enumerate([first.udp_port, q.free_port("udp")]):
        second = second_on(first, recv, port)
        second.start(wait_ready=False)
        rc = wait_exit(second, q.tmo(20))
        lines = [l for l in second.log(since_start=True).splitlines() if l and not l.startswith("---- ")]
        check(rc is not None, "the second instance is still running; its log:\n%s" % "\n".join(lines[-20:]))
        check(rc != 0, "the second instance exited 0")
        check(len(lines) == 1, "the second instance logged %d lines, expected one:\n%s"
              % (len(lines), "\n".join(lines)))
        want = r"spool %s is in use by quicstashd \(udp %s\), pid %d" % (re.escape(first.spool),
                                                                       re.escape(first.addr), first.pid)
        check(re.search(want, lines[0]), "the refusal does not name the first instance: %r" % lines[0])
        check(not any(second.all_pids().values()), "the second started children")
        check(first.running(), "the first instance is gone")
        send_and_deliver(first, recv, (k + 1) * N, "after the second instance")
        log("second instance on port %d refused (exit %d): %s" % (port, rc, lines[0]))
    first.stop()
    return "refused with exit %d, the first served %d events after" % (rc, N)


def check_spool(recv=None):
    recv = recv or q.Receiver().start()
    first = q.Server(recv, name="first").start()
    rc, out = first.check_spool(repair=True)
    check(rc == 2 and re.search(r"in use by quicstashd \(udp .*\), pid %d.*not repairing" % first.pid, out),
          "--check-spool --repair on a live spool: exit %d\n%s" % (rc, out))
    rc, out = first.check_spool()
    check(rc == 0 and re.search(r"note: spool .* is in use by quicstashd", out),
          "--check-spool on a live spool: exit %d\n%s" % (rc, out))
    send_and_deliver(first, recv, 3 * N, "after the checks")
    first.stop()
    rc, out = first.check_spool(repair=True)
    check(rc == 0 and "in use" not in out, "--check-spool --repair on a stopped spool: exit %d\n%s" % (rc, out))
    return "repair refused while live, allowed after"


def released(recv=None):
    recv = recv or q.Receiver().start()
    first = q.Server(recv, name="first").start()
    first.stop()
    again = second_on(first, recv, q.free_port("udp")).start()
    send_and_deliver(again, recv, 4 * N, "after a clean stop")
    again.kill_tree()  # supervisor and children at once
    third = second_on(first, recv, q.free_port("udp")).start()
    send_and_deliver(third, recv, 5 * N, "after kill -9")
    third.stop()
    return "the lock goes with its holder"


def refused(first, recv):
    """A second instance on first's spool exits non-zero with one line naming first."""
    second = second_on(first, recv, q.free_port("udp"))
    second.start(wait_ready=False)
    rc = wait_exit(second, q.tmo(20))
    text = second.log(since_start=True)
    check(rc not in (None, 0) and "is in use by quicstashd" in text and "pid %d" % first.pid in text,
          "a second instance was not refused (exit %r):\n%s" % (rc, text[-2000:]))


def survives(recv=None):
    recv = recv or q.Receiver().start()
    first = q.Server(recv, name="survives").start()
    old = first.kill_child("shipper")
    first.wait_respawn("shipper", old, 1)
    refused(first, recv)
    first.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + q.tmo(30)
    while "reload 1 complete" not in first.log(since_start=True) and time.monotonic() < deadline:
        time.sleep(0.1)
    check("reload 1 complete" in first.log(since_start=True), "the reload did not complete:\n%s" % first.log_tail())
    refused(first, recv)
    send_and_deliver(first, recv, 8 * N, "after a shipper restart and a reload")
    first.stop()
    return "held across a shipper crash and a reload"


def orphan(recv=None):
    recv = recv or q.Receiver().start()
    first = q.Server(recv, name="orphan").start()
    send_and_deliver(first, recv, 6 * N, "before the supervisor is killed")
    shipper = first.pids("shipper")[0]
    os.kill(shipper, signal.SIGSTOP)  # still stopping when the next instance starts
    os.kill(first.pid, signal.SIGKILL)
    first.proc.wait(timeout=q.tmo(10))
    second = second_on(first, recv, q.free_port("udp"))
    second.start(wait_ready=False)
    deadline = time.monotonic() + q.tmo(8)
    while "held by an earlier shipper" not in second.log(since_start=True) and time.monotonic() < deadline:
        time.sleep(0.05)
    ready = any("READY=1" in m for m in second.notify_msgs)
    waiting = "held by an earlier shipper" in second.log(since_start=True)
    os.kill(shipper, signal.SIGCONT)  # its pending SIGTERM (PR_SET_PDEATHSIG) ends it
    check(waiting and not ready, "the new shipper did not wait for the earlier one (waiting %s, ready %s); log:\n%s"
          % (waiting, ready, second.log_tail()))
    second.wait_ready(q.tmo(30))
    send_and_deliver(second, recv, 7 * N, "after the earlier shipper let the spool go")
    second.stop()
    return "a new shipper waited for the orphaned one"


def planted_link(recv=None):
    recv = recv or q.Receiver().start()
    first = q.Server(recv, name="link")
    os.makedirs(first.spool, exist_ok=True)
    target = os.path.join(first.dir, "victim")
    with open(target, "w") as f:
        f.write("keep me\n")
    os.symlink(target, os.path.join(first.spool, "quicstashd.lock"))
    first.start(wait_ready=False)
    rc = wait_exit(first, q.tmo(20))
    out = first.log(since_start=True)
    check(rc not in (None, 0) and "symbolic link" in out, "a linked lock file: exit %r\n%s" % (rc, out))
    with open(target) as f:
        check(f.read() == "keep me\n", "the link's target was written")
    return "refused"


CASES = [("second-instance", second_instance), ("check-spool", check_spool), ("released", released),
         ("survives", survives), ("orphan", orphan), ("planted-link", planted_link)]


def run():
    recv = q.Receiver().start()
    return "; ".join(fn(recv) for _, fn in CASES)


if __name__ == "__main__":
    q.main(run, cases=CASES)
