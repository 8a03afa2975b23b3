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


def fill_filler(path, nbytes):
    """Another program's data on the spool's file system: leaves the spool a small part of it."""
    filler = os.path.join(os.path.dirname(path), "filler")
    with open(filler, "wb") as f:
        chunk = b"\0" * (1 << 20)
        for _ in range(nbytes >> 20):
            f.write(chunk)
    return filler


def case(name, size, filler_mb, usage_check):
    """The spool in a directory of a tmpfs of `size` (mounted here), `filler_mb` of which another
    file beside the spool takes."""
    recv = q.Receiver()  # down until the disk is full
    server = q.Server(recv, name="diskwedge-" + name)
    mnt = os.path.join(server.dir, "fs")
    q.mount_tmpfs(mnt, size)
    server.spool = os.path.join(mnt, "spool")
    if filler_mb:
        fill_filler(server.spool, filler_mb << 20)
    server.start()
    n = 40000  # ~8 MB: more than the free space, so it fills once more after the receiver is back
    load = q.Load(server, n, client_timeout=int(q.tmo(240)), name="a")
    load.start_client()
    acked, stalled = load.client.wait_stall(quiet=3.0, timeout=q.tmo(90))
    st = os.statvfs(mnt)
    log("%s: receiver down: acks stalled=%s at %d of %d; spool %d bytes, %d bytes free"
        % (name, stalled, acked, n, q.spool_bytes(server.spool), st.f_bavail * st.f_frsize))
    check(stalled and acked < n, "%s: acknowledgements did not stop on a full disk (%d of %d acked)" % (name, acked, n))
    check(st.f_bavail * st.f_frsize < 512 * 1024, "%s: the disk is not full when acknowledgements stopped" % name)
    check(server.running() and load.client.running(), "%s: the server or the client died on a full disk" % name)

    recv.start()
    q.verify_delivery(recv, load.acked_numbers(), q.tmo(60), what="acknowledged while the disk filled")
    got = load.client.wait_acked(acked + 1, q.tmo(30))
    check(got > acked, "%s: acknowledgements did not resume within 30 s after the output caught up (%d acked; "
          "spool %d bytes): the fully shipped write segment is never retired; log:\n%s"
          % (name, got, q.spool_bytes(server.spool), server.log_tail()))
    log("%s: acknowledgements resumed by themselves: %d -> %d" % (name, acked, got))
    q.finish_client(load, timeout=q.tmo(240))
    check(load.acked_numbers() == load.all_numbers(), "%s: the client finished without every event acked" % name)
    dups = q.verify_delivery(recv, load.acked_numbers(), q.tmo(60))

    # New events after all that: acknowledged and delivered, still without a restart.
    load_b = q.Load(server, 2000, start=n, client_timeout=int(q.tmo(60)), name="b")
    load_b.start_client()
    q.finish_client(load_b)
    check(load_b.acked_numbers() == load_b.all_numbers(), "%s: new events after the recovery not all acked" % name)
    dups += q.verify_delivery(recv, load_b.acked_numbers(), q.tmo(60), what="sent after the recovery")
    if usage_check:
        # Everything is shipped: the space comes back. Shipped segments are retired; what stays is
        # the write segment's file and the spare (a shipped segment's file kept for reuse), each
        # about 1/8 of the file system plus one group commit (measured: 1.0-1.9 MB of 3).
        used = wait_used_below(server.spool, DISK * 3 // 4, q.tmo(30))
        log("%s: after delivery: disk %d bytes used" % (name, used))
        check(used < DISK * 3 // 4, "%s: the disk stays %d of %d bytes used after everything was shipped: %r"
              % (name, used, DISK, q.spool_files(server.spool)))
    check(not recv.bad_json, "garbage at the receiver: %r" % recv.bad_json[:2])
    server.stop()
    rc, out = server.check_spool()
    check(rc == 0, "%s: --check-spool after the stop: exit %r\n%s" % (name, rc, out[-1500:]))
    recv.stop()
    return "%s: resumed at %d acked, %d duplicates" % (name, acked, dups)


def run():
    q.need_binaries()
    # The case: a 3 MB file system of its own.
    a = case("small-fs", "3m", 0, True)
    # A file system shared with other data: 3 MB free of 32 MB, so segments (1/8 of the file
    # system) never get full-sized before the disk is full.
    b = case("shared-fs", "32m", 29, False)
    return a + "; " + b


if __name__ == "__main__":
    q.main(run)
