#!/usr/bin/env python3
"""A spool left by an earlier run drains to the output configured now, and the log says so at start.

Events are spooled while Logstash is down (nothing listens at the first output's address); the
server stops. Started again with another output, it logs one line: how many bytes in how many
segments are not yet shipped, the oldest spooled when (within the time the events were sent), and
the output they go to now; every event then arrives there. Once everything is shipped a start
says nothing of a backlog.
"""
import calendar
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

N = 500
LINE = re.compile(r"spool: (\d+) bytes in (\d+) segment\(s\) not yet shipped, the oldest spooled at "
                  r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ): shipping them to (\S+) first")


def run():
    server = q.Server(None, name="backlog")  # its output: a port nothing listens on
    server.start()
    check(not LINE.search(server.log(since_start=True)), "a fresh spool reported a backlog")
    t0 = time.time()
    q.send_acked(server, q.gen_events(N), "while Logstash is down")
    t1 = time.time()
    server.stop()

    recv = q.Receiver().start()
    server.logstash = recv.addr
    server.start()
    m = LINE.search(server.log(since_start=True))
    check(m, "no backlog line at start; log:\n%s" % server.log_tail())
    nbytes, segs, when, out = int(m.group(1)), int(m.group(2)), m.group(3), m.group(4)
    oldest = calendar.timegm(time.strptime(when, "%Y-%m-%dT%H:%M:%SZ"))
    check(nbytes >= N * 100 and segs >= 1, "backlog of %d bytes in %d segments for %d events" % (nbytes, segs, N))
    check(int(t0) - 1 <= oldest <= t1 + 1, "oldest %s is not within the sending (%.0f..%.0f)" % (when, t0, t1))
    check(out == recv.addr, "the line names the output %r, configured now %r" % (out, recv.addr))
    q.verify_delivery(recv, range(N), q.tmo(30), "left in the spool")
    log(m.group(0))
    server.stop()

    server.start()
    check(not LINE.search(server.log(since_start=True)), "a start after everything was shipped reported a "
          "backlog:\n%s" % server.log_tail())
    server.stop()
    return "%d bytes in %d segment(s) from %s reported, all %d delivered to the new output" % (nbytes, segs, when, N)


if __name__ == "__main__":
    q.main(run)
