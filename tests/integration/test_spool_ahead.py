#!/usr/bin/env python3
"""Zeros laid ahead of small group commits (issue 27, docs/SPOOL.md "Zeros laid ahead").

At everyday rates each group commit is a few events, and before, each one grew the segment file:
its fdatasync also had to make the new size and blocks durable (ext4: the inode and the allocation
metadata, more synchronous writes and waits). A commit that grows the file by a small group now
also writes zeros up to 256 KiB past its end, under the same fdatasync, and the next commits write
inside the file.
  1. ahead: a client sends 250 events a second, one at a time (each commit a small group). The
     write segment's size, sampled every few milliseconds, takes at most a few values (it steps by
     256 KiB), where before it changed with every commit; bytes past the records are zeros.
  2. stop: after a clean stop the zeros are cut: `--check-spool` reports no damage and nothing
     after the last record.
  3. crash: kill -9 of the whole tree while events flow. `--check-spool` calls the zeros after
     the last record "zeros laid ahead" (not damage, exit 0); the next start cuts them without a
     torn-tail warning, and every acknowledged event reaches Logstash."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

RATE = 250
AHEAD = 256 * 1024


def newest_segment(spool):
    segs = sorted(f for f in os.listdir(spool) if f.endswith(".seg"))
    return os.path.join(spool, segs[-1]) if segs else None


def sample_sizes(spool, seconds):
    """The distinct sizes of the newest segment file seen over `seconds`, in order."""
    sizes, end = [], time.monotonic() + seconds
    while time.monotonic() < end:
        seg = newest_segment(spool)
        try:
            size = os.stat(seg).st_size if seg else None
        except OSError:
            size = None
        if size is not None and (not sizes or sizes[-1] != size):
            sizes.append(size)
        time.sleep(0.003)
    return sizes


def start_load(server, n, name):
    load = q.Load(server, n, client_timeout=int(q.tmo(60)), feed_rate=RATE, name=name)
    load.start_client()
    load.clients[0].wait_acked(RATE // 2, q.tmo(30))
    return load


def case_ahead():
    recv = q.Receiver().start()
    server = q.Server(recv, name="ahead").start()
    load = start_load(server, 4 * RATE, "ahead")
    acked0 = len(load.acked_numbers())
    sizes = sample_sizes(server.spool, 2.0)
    acked = len(load.acked_numbers()) - acked0
    log("%d events acknowledged while sampling; the write segment's sizes: %r" % (acked, sizes))
    check(acked >= RATE, "only %d events acknowledged in 2 s at %d a second: the load did not run" % (acked, RATE))
    check(len(sizes) <= 3, "the write segment's size changed %d times while %d events were committed in small "
          "groups (%r): commits grow the file instead of writing into zeros laid ahead" % (len(sizes) - 1, acked, sizes))
    check(sizes[-1] >= AHEAD, "the write segment is %d bytes: no zeros laid ahead" % sizes[-1])
    with open(newest_segment(server.spool), "rb") as f:
        f.seek(sizes[-1] - 4096)
        tail = f.read(4096)
    check(tail == bytes(4096), "the last 4 KiB of the write segment are not zeros")
    rc = q.finish_client(load)
    dups = q.verify_delivery(recv, load.acked_numbers(), q.tmo(60))
    server.stop()
    rc, out = server.check_spool()
    log("after a clean stop, --check-spool (exit %d):\n%s" % (rc, out))
    check(rc == 0 and "DAMAGE" not in out and "zeros laid ahead" not in out and "earlier use" not in out,
          "after a clean stop the spool is not clean (exit %d):\n%s" % (rc, out))
    recv.stop()
    return "%d commits' worth of events, %d segment sizes seen (%d bytes), zeros cut at the stop, %d duplicates" % (
        acked, len(sizes), sizes[-1], dups)


def case_crash():
    recv = q.Receiver().start()
    server = q.Server(recv, name="ahead-crash").start()
    load = start_load(server, 4 * RATE, "crash")
    # the client's first events may go in one large group (sent together once it connected): wait
    # for the paced ones, whose small commits lay the zeros
    deadline = time.monotonic() + q.tmo(20)
    while os.stat(newest_segment(server.spool)).st_size < AHEAD and time.monotonic() < deadline:
        time.sleep(0.01)
    check(os.stat(newest_segment(server.spool)).st_size >= AHEAD,
          "no zeros laid ahead in the write segment after %d events sent at %d a second"
          % (len(load.acked_numbers()), RATE))
    # the shipper stopped before the tree is killed: one that saw the supervisor die first would
    # stop cleanly and cut the zeros (kill_tree is not atomic)
    for pid in server.pids("shipper"):
        os.kill(pid, signal.SIGSTOP)
    server.kill_tree()
    acked_at_kill = load.acked_numbers()
    rc, out = server.check_spool()
    log("after kill -9 at %d acknowledged, --check-spool (exit %d):\n%s" % (len(acked_at_kill), rc, out))
    check("zeros laid ahead" in out, "no zeros laid ahead after the last record:\n%s" % out)
    check(rc == 0 and "DAMAGE" not in out, "the zeros laid ahead are called damage (exit %d):\n%s" % (rc, out))
    since = len(server.log())
    server.start()
    check(server.wait_log("zeros laid ahead of the records: cut", since, q.tmo(20)),
          "the restart did not cut the zeros laid ahead:\n%s" % server.log_tail())
    check("torn or corrupt" not in server.log()[since:], "the restart called the zeros a torn tail:\n%s"
          % server.log_tail())
    q.verify_delivery(recv, acked_at_kill, q.tmo(60), what="acknowledged before the kill")
    dups = q.finish_after_kills(load, recv, server, q.tmo(60))
    server.stop()
    recv.stop()
    return "kill -9 at %d acknowledged: zeros after the last record, not damage; cut at the restart, zero loss, " \
           "%d duplicates" % (len(acked_at_kill), dups)


CASES = [("ahead", case_ahead), ("crash", case_crash)]


def run():
    q.need_binaries()
    return "; ".join(fn() for _, fn in CASES)


if __name__ == "__main__":
    q.main(run, cases=CASES)
