#!/usr/bin/env python3
"""Fault suite: kill -9 of the shipper while it writes into a reused segment file (docs/SPOOL.md,
"Reused segment files"). Small segments (--spool-max-bytes 4M: 512 KiB each) and a rate the
receiver keeps up with, so that shipped segments are kept as spares and writing moves into them.
The test watches the spool directory and kills the shipper just after the newest segment turned out
to be a file seen before under another segment's name. At the restart the file's earlier records
behind the new ones are recognised and cut (not reported as damage), and every acknowledged event
reaches the receiver (zero loss)."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log


def wait_reused_write_segment(server, load, timeout):
    """Polls the spool every 20 ms until a new newest segment appears that is a file seen before
    under another segment's name (same inode): writing has just moved into a reused file, so most
    of its earlier records still lie ahead. Returns its name."""
    names = {}  # inode -> segment names seen for it
    known = set()  # segment names seen in an earlier poll
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and load.client.running():
        segs = {}
        for e in os.scandir(server.spool):
            if e.name.endswith(".seg"):
                try:
                    segs[e.name] = e.inode()
                except OSError:
                    continue
        for name, ino in segs.items():
            names.setdefault(ino, set()).add(name)
        newest = max(segs) if segs else None
        if newest and newest not in known and len(names[segs[newest]]) > 1 \
                and load.client.acked_count() > load.n // 5:
            return newest
        known.update(segs)
        time.sleep(0.02)
    return None


def run():
    q.need_binaries()
    recv = q.Receiver().start()
    server = q.Server(recv, extra=["--spool-max-bytes", "4M"], name="kill-reuse")
    server.start()
    n = q.scale(30000, 30000)
    # 2,500 events/s: the test receiver keeps up, so the spool never fills (a full spool cuts
    # segments short, and short segments are deleted, not reused)
    load = q.Load(server, n, client_timeout=int(q.tmo(90)), feed_rate=n / 12)
    load.start_client()
    seg = wait_reused_write_segment(server, load, q.tmo(30))
    check(seg, "writing never moved into a reused segment file (client acked %d of %d, running %s)" % (load.client.acked_count(), n, load.client.running()))
    old = server.kill_child("shipper")
    acked_at_kill = len(load.acked_numbers())
    new = server.wait_respawn("shipper", old, 1)
    log("kill -9 shipper %d at %d acked, writing %s (a reused file); new shipper %r" % (old, acked_at_kill, seg, new))
    q.finish_client(load)
    acked = load.acked_numbers()
    check(acked == load.all_numbers(), "client exit 0 but only %d of %d line numbers in --ack-log" % (len(acked), n))
    dups = q.verify_delivery(recv, acked, q.tmo(60))
    check(not recv.bad_json, "garbage at the receiver: %r" % recv.bad_json[:2])
    text = server.log()
    m = re.search(r"(\d+) bytes after offset (\d+) are records of the file's earlier use", text)
    check(m, "the restarted shipper found no earlier records behind the new ones: the kill did not hit a "
             "reused segment file\n%s" % server.log_tail())
    check(not re.search(r"torn or corrupt|damaged bytes", text), "reuse leftovers reported as damage:\n%s"
          % server.log_tail())
    extra = recv.count() - len(acked)
    log("leftover of the earlier use cut: %s bytes; receiver: %d lines for %d events (%d duplicates)"
        % (m.group(1), recv.count(), n, dups))
    server.stop()
    return "kill -9 of the shipper inside a reused segment at %d/%d acked: earlier records cut (%s bytes), " \
           "zero loss, %d duplicates, %d lines beyond the events" % (acked_at_kill, n, m.group(1), dups, extra)


if __name__ == "__main__":
    q.main(run)
