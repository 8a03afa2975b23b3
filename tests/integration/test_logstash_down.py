#!/usr/bin/env python3
"""Logstash down at the start, up later (issue 2, with issue 3's spool): the client gets its
acknowledgements once events are durable even though Logstash is down, and every event arrives
once the receiver is started."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log


def run():
    q.need_binaries()
    recv = q.Receiver()  # not started: Logstash is down
    server = q.Server(recv, name="lsdown")
    server.start()
    n = q.scale(20000)
    lines = q.gen_events(n)
    rc, out, err = q.send(server, lines, timeout=q.tmo(120), client_timeout=int(q.tmo(60)))
    log("send with the receiver down: rc=%s, %s" % (rc, err.strip()[-200:]))
    check(rc == 0, "quicstash-send exit %r with Logstash down (acks must come once events are durable); "
          "stderr:\n%s\nserver log tail:\n%s" % (rc, err[-1500:], server.log_tail()))
    check(q.summary(err) == (n, n, 0), "summary: %r, expected (%d, %d, 0)" % (q.summary(err), n, n))
    time.sleep(2.0)
    check(server.running(), "quicstashd died while Logstash was down")
    log("receiver starts on port %d after the send finished" % recv.port)
    recv.start()
    missing = recv.wait_numbers(range(n), q.tmo(60), quiet=1.0)
    check(not missing, "%d of %d events never arrived after Logstash came up: first %s; log tail:\n%s"
          % (len(missing), n, sorted(missing)[:20], server.log_tail()))
    seen = recv.seen()
    dups = sum(c - 1 for c in seen.values() if c > 1)
    check(not recv.bad_json, "invalid lines at the receiver: %r" % recv.bad_json[:2])
    log("all %d events arrived, %d duplicates" % (n, dups))
    # and the pipeline keeps working with Logstash up
    more = q.gen_events(1000, start=n)
    rc, out, err = q.send(server, more, timeout=q.tmo(60), client_timeout=int(q.tmo(30)))
    check(rc == 0, "send after Logstash came up: exit %r; %s" % (rc, err[-500:]))
    missing = recv.wait_numbers(range(n, n + 1000), q.tmo(30), quiet=0.2)
    check(not missing, "%d events of the second send missing" % len(missing))
    server.stop()
    return "%d events acked with Logstash down, all delivered after it came up (%d duplicates)" % (n, dups)


if __name__ == "__main__":
    q.main(run)
