#!/usr/bin/env python3
"""Fault suite (issue 3): the spool limit is reached with the receiver down (--spool-max-bytes 2M).
The client is slowed, not failed: acknowledgements stop near the limit, the client keeps running,
the spool stays within its limit, the log says why; once the receiver returns everything drains,
the client finishes with exit 0 and every acknowledged event arrives."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

LIMIT = 2 * 1024 * 1024


def run():
    q.need_binaries()
    recv = q.Receiver()  # down
    server = q.Server(recv, extra=["--spool-max-bytes", "2M"], name="spoolfull")
    server.start()
    n = 40000  # ~8 MB of events in the spool: 4x the limit (not scaled: the limit is the point)
    load = q.Load(server, n, client_timeout=int(q.tmo(120)))
    load.start_client()
    acked, stalled = load.client.wait_stall(quiet=3.0, timeout=q.tmo(90))
    log("acks stalled=%s at %d of %d; spool %d bytes" % (stalled, acked, n, q.spool_bytes(server.spool)))
    check(stalled, "acknowledgements did not stop with the receiver down and a 2M spool limit "
          "(%d of %d acked, client running=%s; spool %d bytes)" % (acked, n, load.client.running(),
                                                                     q.spool_bytes(server.spool)))
    check(acked < n, "all %d events acked with the receiver down: the 2M limit did not bite" % n)
    check(acked > 0, "nothing acked at all before the limit")
    # slowed, not failed: the client still runs several seconds later
    time.sleep(5.0)
    check(load.client.running(), "the client was failed, not slowed, when the spool was full: exit %r; stderr %s"
          % (load.client.proc.returncode, load.client.stderr()[-800:]))
    check(server.running(), "quicstashd died with a full spool")
    size = q.spool_bytes(server.spool)
    # at most one event over the limit (an empty spool takes one event of any size, never a batch)
    check(size <= LIMIT + 64 * 1024, "spool holds %d bytes with a limit of %d" % (size, LIMIT))
    check(re.search(r"spool.*(full|limit)|(full|limit).*spool", server.log(), re.I),
          "the log does not say that the spool is full:\n%s" % server.log_tail())
    still = load.client.acked_count()
    check(still - acked < n // 20, "acks went on past the limit (%d -> %d)" % (acked, still))
    log("receiver starts: spool %d bytes, %d acked" % (size, still))
    recv.start()
    q.finish_client(load)
    all_acked = load.acked_numbers()
    check(all_acked == load.all_numbers(), "--ack-log has %d of %d" % (len(all_acked), n))
    dups = q.verify_delivery(recv, all_acked, q.tmo(60))
    # never more than one event over the limit, also while it refills after draining
    for used, limit in re.findall(r"\(spool (\d+) of (\d+) bytes\)", server.log()):
        check(int(used) <= int(limit) + 64 * 1024, "the spool went to %s bytes with a limit of %s" % (used, limit))
    server.stop()
    return "2M spool full with the receiver down: client slowed at %d/%d, not failed; all drained, %d duplicates" % (
        acked, n, dups)


if __name__ == "__main__":
    q.main(run)
