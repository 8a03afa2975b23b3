#!/usr/bin/env python3
"""-m/--max-connections (issue 2): connections beyond the limit are refused with the QUIC
transport error CONNECTION_REFUSED, never silently dropped; the refused client is told (and backs
off and retries), the server logs it, the connections already open keep working, and the refused
client gets through once a place is free.
All clients come from one address: the per-source limit (1/8 of -m by default, test_source_limit) is
lifted here with --max-connections-per-source 0 so that -m itself is what refuses.
The two first clients are kept connected by making them wait: the receiver is down and the spool
small, so their events stop being acknowledged (flow control holds them) without any error."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log


def run():
    q.need_binaries()
    recv = q.Receiver()  # not started: Logstash is down
    server = q.Server(recv, extra=["-m", "2", "--max-connections-per-source", "0", "--spool-max-bytes", "1M"],
                      name="limits")
    server.start()
    n = q.scale(40000, 20000)
    loads = [q.Load(server, n, start=i * n, client_timeout=int(q.tmo(120)), extra_args=["--streams", "1"],
                    name="held%d" % i) for i in range(2)]
    for l in loads:
        l.start_client()
    for l in loads:
        l.client.wait_acked(1, q.tmo(20))
    for l in loads:
        c, stalled = l.client.wait_stall(1.5, q.tmo(30))
        check(stalled and l.client.running(), "client %s did not stall while connected (acked %d)" % (l.input, c))
    log("two clients connected and held (acked %r)" % [l.client.acked_count() for l in loads])
    # a third client: refused while the two hold both places
    t0 = time.monotonic()
    rc, out, err = q.send(server, q.gen_events(10, 10 * n), timeout=q.tmo(60), client_timeout=4)
    log("third client: exit %r after %.1fs: %s" % (rc, time.monotonic() - t0, err.strip()[-300:]))
    check(rc == 2, "a client over the limit got exit %r (expected 2 after its timeout)" % rc)
    check(re.search(r"refused", err), "the refused client was not told why: %r" % err[-500:])
    check(re.search(r"refused \d+ new connection", server.log()), "the server did not log the refusals:\n%s"
          % server.log_tail())
    for l in loads:
        check(l.client.running(), "a held client died while a third was refused: %s" % l.client.stderr()[-300:])
    # Logstash comes back: the held clients finish, the third gets in
    recv.start()
    for l in loads:
        q.finish_client(l)
        q.verify_delivery(recv, l.acked_numbers(), q.tmo(60))
    rc, out, err = q.send(server, q.gen_events(10, 10 * n), timeout=q.tmo(60), client_timeout=int(q.tmo(20)))
    check(rc == 0, "once places were free the client still failed: exit %r %s" % (rc, err[-300:]))
    check(not recv.wait_numbers(range(10 * n, 10 * n + 10), q.tmo(20)), "the late client's events are missing")
    server.stop()
    return "-m 2: a third connection refused with CONNECTION_REFUSED (client told, server logged), " \
           "held clients unharmed, the third gets in once places are free"


if __name__ == "__main__":
    q.main(run)
