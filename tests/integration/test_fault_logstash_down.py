#!/usr/bin/env python3
"""Fault suite (issue 3): the receiver (Logstash) goes down mid-stream for a while, then comes back.
Acknowledgements go on while it is down (the spool holds the events); every acknowledged event
reaches the receiver; the duplicate count is printed."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log


def run():
    q.need_binaries()
    recv = q.Receiver().start()
    server = q.Server(recv, name="lsdown-mid")
    server.start()
    n = q.scale(100000)
    load = q.Load(server, n, client_timeout=int(q.tmo(90)), feed_rate=n / 4)
    load.start_client()
    q.mid_stream(load, 0.1)
    recv.stop()
    down_at = len(load.acked_numbers())
    lines_at_down = recv.count()
    log("receiver stopped at %d acked, %d lines received" % (down_at, lines_at_down))
    t_down = time.monotonic()
    # acknowledgements keep coming while Logstash is down
    got = load.client.wait_acked(down_at + max(1, n // 10), q.tmo(30))
    check(got > down_at, "no acknowledgement at all while Logstash was down (%d -> %d): events must be acked "
          "once durable in the spool" % (down_at, got))
    remaining = 4.0 - (time.monotonic() - t_down)
    if remaining > 0:
        time.sleep(remaining)
    check(server.running(), "quicstashd died while Logstash was down")
    log("receiver back after %.1fs down, %d acked meanwhile" % (time.monotonic() - t_down, len(load.acked_numbers()) - down_at))
    recv.start()
    q.finish_client(load)
    acked = load.acked_numbers()
    check(acked == load.all_numbers(), "client exit 0 but --ack-log has %d of %d" % (len(acked), n))
    dups = q.verify_delivery(recv, acked, q.tmo(60))
    check(not recv.bad_json, "garbage at the receiver: %r" % recv.bad_json[:2])
    server.stop()
    return "receiver down mid-stream then back: zero loss of %d acked, %d duplicates" % (len(acked), dups)


if __name__ == "__main__":
    q.main(run)
