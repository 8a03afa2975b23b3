#!/usr/bin/env python3
"""Fault suite (issue 3): the disk under the spool fills up (a 3 MB tmpfs mounted by the test).
 A. With the receiver down the spool fills the disk: acks stop, the client is slowed, not failed, the
    log says why; room returns (remount at 64 MB) and the service resumes by itself: everything
    drains once the receiver is up.
 B. The disk fills again and the whole tree is killed -9 while it is full: --check-spool finds no
    damage, and after a restart with room, every event that was acknowledged arrives (no ack was
    given without a durable record)."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

NOSPACE = r"no space|ENOSPC|disk full|disk is full|full"


def fill(load, server, what):
    acked, stalled = load.client.wait_stall(quiet=3.0, timeout=q.tmo(90))
    log("%s: acks stalled=%s at %d of %d; spool %d bytes" % (what, stalled, acked, load.n, q.spool_bytes(server.spool)))
    check(stalled and acked < load.n, "%s: acknowledgements did not stop on a full 3 MB disk (%d of %d acked, "
          "client running=%s)" % (what, acked, load.n, load.client.running()))
    time.sleep(2.0)
    check(load.client.running(), "%s: the client failed on a full disk (exit %r): %s"
          % (what, load.client.proc.returncode, load.client.stderr()[-800:]))
    check(server.running(), "%s: quicstashd died on a full disk; log:\n%s" % (what, server.log_tail()))
    return acked


def run():
    q.need_binaries()
    recv = q.Receiver()
    server = q.Server(recv, name="diskfull")
    q.mount_tmpfs(server.spool, "3m")
    log("tmpfs of 3 MB at %s" % server.spool)
    server.start()
    n = 40000  # ~8 MB: more than the disk
    # A: fill, resume by itself when room returns
    load = q.Load(server, n, client_timeout=int(q.tmo(120)), name="a")
    load.start_client()
    acked_a = fill(load, server, "A")
    check(re.search(NOSPACE, server.log(), re.I), "A: the log does not say the disk is full:\n%s" % server.log_tail())
    q.remount_tmpfs(server.spool, "64m")
    log("A: remounted at 64 MB")
    got = load.client.wait_acked(acked_a + 1, q.tmo(30))
    check(got > acked_a, "A: no progress within 30 s after room returned (service must resume by itself); log:\n%s"
          % server.log_tail())
    recv.start()
    q.finish_client(load)
    dups_a = q.verify_delivery(recv, load.acked_numbers(), q.tmo(60))
    check(load.acked_numbers() == load.all_numbers(), "A: not every event acked after room returned")
    # B: full again (receiver down), crash while full
    recv.stop()
    q.remount_tmpfs(server.spool, "%dk" % max(3072, (q.spool_bytes(server.spool) // 1024) + 3072))
    load_b = q.Load(server, n, start=n, client_timeout=int(q.tmo(120)), name="b")
    load_b.start_client()
    acked_b = fill(load_b, server, "B")
    acked_before_crash = load_b.acked_numbers()
    server.kill_tree()
    load_b.client.kill()
    log("B: kill -9 of the tree with a full disk at %d acked" % len(acked_before_crash))
    rc, out = server.check_spool()
    log("B: --check-spool exit %s: %s" % (rc, out.strip()[-400:]))
    check(rc == 0, "B: --check-spool found damage after a crash on a full disk (exit %r):\n%s" % (rc, out[-1500:]))
    q.remount_tmpfs(server.spool, "64m")
    recv.start()
    server.start()
    dups_b = q.verify_delivery(recv, acked_before_crash, q.tmo(60), what="acked before the crash")
    check(not recv.bad_json, "garbage at the receiver: %r" % recv.bad_json[:2])
    server.stop()
    rc, out = server.check_spool()
    check(rc == 0, "--check-spool after the final stop: exit %r\n%s" % (rc, out[-1000:]))
    return "disk full: slowed at %d and %d acked, resumed with room, zero loss, %d+%d duplicates" % (
        acked_a, len(acked_before_crash), dups_a, dups_b)


if __name__ == "__main__":
    q.main(run)
