#!/usr/bin/env python3
"""Issue 26 point 3: a full disk must not wedge the spool for good.
The spool is on a 3 MB tmpfs (mounted by the test) and the spool limit is the default 1 GiB, so
segments (64 MiB at most) never reach their full size: the disk fills first. The receiver is down
until the disk is full and acknowledgements stall; then it comes back. Before the fix every
acknowledged event was shipped, but the one write segment, fully shipped and never full-sized, was
never retired: the disk stayed 100% used and acknowledgements never resumed (only a restart helped).
Now, with no restart and no remount: acknowledgements resume by themselves, the client finishes,
NEW events sent afterwards are acknowledged and delivered, and the disk's usage drops."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

DISK = 3 * 1024 * 1024


def disk_used(path):
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def wait_used_below(path, limit, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and disk_used(path) >= limit:
        time.sleep(0.1)
    return disk_used(path)


def run():
    q.need_binaries()
    recv = q.Receiver()  # down until the disk is full
    server = q.Server(recv, name="diskwedge")
    q.mount_tmpfs(server.spool, "3m")
    server.start()
    n = 40000  # ~8 MB: more than the disk holds, so it fills once more after the receiver is back
    load = q.Load(server, n, client_timeout=int(q.tmo(240)), name="a")
    load.start_client()
    acked, stalled = load.client.wait_stall(quiet=3.0, timeout=q.tmo(90))
    used = disk_used(server.spool)
    log("receiver down: acks stalled=%s at %d of %d; disk %d of %d bytes used" % (stalled, acked, n, used, DISK))
    check(stalled and acked < n, "acknowledgements did not stop on a full 3 MB disk (%d of %d acked)" % (acked, n))
    check(used > DISK * 3 // 4, "the disk is not full when acknowledgements stopped (%d bytes used)" % used)
    check(server.running() and load.client.running(), "the server or the client died on a full disk")

    recv.start()
    q.verify_delivery(recv, load.acked_numbers(), q.tmo(60), what="acknowledged while the disk filled")
    log("receiver back: everything acknowledged so far has arrived; disk %d bytes used" % disk_used(server.spool))
    got = load.client.wait_acked(acked + 1, q.tmo(30))
    check(got > acked, "acknowledgements did not resume within 30 s after the output caught up (%d acked; "
          "disk %d bytes used): the fully shipped write segment is never retired; log:\n%s"
          % (got, disk_used(server.spool), server.log_tail()))
    log("acknowledgements resumed: %d -> %d" % (acked, got))
    q.finish_client(load, timeout=q.tmo(240))
    check(load.acked_numbers() == load.all_numbers(), "the client finished without every event acknowledged")
    dups = q.verify_delivery(recv, load.acked_numbers(), q.tmo(60))

    # New events after all that: acknowledged and delivered, still without a restart.
    load_b = q.Load(server, 2000, start=n, client_timeout=int(q.tmo(60)), name="b")
    load_b.start_client()
    q.finish_client(load_b)
    check(load_b.acked_numbers() == load_b.all_numbers(), "new events after the recovery were not all acknowledged")
    dups += q.verify_delivery(recv, load_b.acked_numbers(), q.tmo(60), what="sent after the recovery")

    # Everything is shipped: the space comes back (a fully shipped segment is retired; the write
    # segment holds at most what came since the last roll).
    used = wait_used_below(server.spool, DISK // 2, q.tmo(30))
    log("after delivery: disk %d bytes used" % used)
    check(used < DISK // 2, "the disk stays %d of %d bytes used after everything was shipped" % (used, DISK))
    check(server.pid and server.running(), "quicstashd is not running")
    check(not recv.bad_json, "garbage at the receiver: %r" % recv.bad_json[:2])
    server.stop()
    rc, out = server.check_spool()
    check(rc == 0, "--check-spool after the stop: exit %r\n%s" % (rc, out[-1500:]))
    return "3 MB disk filled with the receiver down: resumed by itself at %d acked, %d+2000 delivered, %d duplicates" % (
        acked, n, dups)


if __name__ == "__main__":
    q.main(run)
