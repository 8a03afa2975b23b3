#!/usr/bin/env python3
"""Clients on lossy networks (mobile, edge sites): QUIC's loss recovery must carry every event
through lost, duplicated, reordered and delayed datagrams, and through a few seconds of nothing
at all (a handover, a tunnel), without reconnecting and without storing anything twice.

quicstash-send talks to quicstashd through qslib.LossyRelay (a UDP relay in this process; the
kernel here has no netem), each direction on its own:
  1. 5% lost, 1% duplicated, 3% reordered, 10 ms each way: every event acknowledged, each one
     delivered exactly once, the one connection kept;
  2. 20% lost: every event acknowledged and delivered;
  3. 5 s without a single datagram in the middle of a steady send: the connection survives (no
     reconnect: the client's probes find the server again), every event delivered exactly once.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log


def send_through(relay, server, lines, extra=(), blackout_after=None, blackout_s=0):
    """quicstash-send of `lines` to server via relay; returns (exit, summary, stderr, seconds).
    blackout_after: once that many events are acknowledged (the send is under way, however long
    the client took to start), the relay passes nothing for blackout_s seconds."""
    path = os.path.join(server.dir, "in-%d.txt" % time.monotonic_ns())
    q.write_lines(path, lines)
    ack_log = path + ".acks"
    argv = [q.SEND, "-s", relay.addr, "--cert", server.cert, "--server-name", "localhost", "--timeout", "60",
            "--ack-log", ack_log]
    t0 = time.monotonic()
    p = subprocess.Popen(argv + list(extra) + [path], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if blackout_after is not None:
        deadline = time.monotonic() + q.tmo(30)
        while p.poll() is None and time.monotonic() < deadline and len(q.read_ack_log(ack_log)) < blackout_after:
            time.sleep(0.02)
        check(p.poll() is None and len(q.read_ack_log(ack_log)) >= blackout_after,
              "the client should be mid-send before the blackout: exit %r, %d acknowledged"
              % (p.poll(), len(q.read_ack_log(ack_log))))
        relay.blackout(blackout_s)
    try:
        _, err = p.communicate(timeout=q.tmo(180))
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    return p.returncode, q.summary(err), err, time.monotonic() - t0


def phase(name, server, recv, relay, first, n, exactly_once=True, **kw):
    """Sends n events numbered from `first` through relay; checks; returns the seconds it took."""
    lines = q.gen_events(n, start=first)
    rc, summ, err, secs = send_through(relay, server, lines, **kw)
    reconnects = err.count("reconnecting")
    log("%s: exit %r, %r in %.1f s, reconnects %d, relay %s" % (name, rc, summ, secs, reconnects, dict(relay.stats)))
    check(rc == 0 and summ == (n, n, 0), "%s: exit %r, summary %r (every event must be acknowledged);\n%s\n%s"
          % (name, rc, summ, err[-800:], server.log_tail()))
    check(reconnects == 0, "%s: the client reconnected %d times (QUIC should recover in the connection):\n%s"
          % (name, reconnects, err[-800:]))
    numbers = range(first, first + n)
    missing = q.arrived([recv], numbers, q.tmo(60))
    check(not missing, "%s: %d acknowledged events never reached Logstash: %s" % (name, len(missing),
                                                                                  sorted(missing)[:10]))
    if exactly_once:
        seen = recv.seen()
        dups = [k for k in numbers if seen[k] > 1]
        check(not dups, "%s: %d events delivered twice (first %s)" % (name, len(dups), dups[:10]))
    return secs


def run():
    q.need_binaries("quicstashd", "quicstash-send")
    recv = q.Receiver().start()
    server = q.Server(logstash=recv).start()
    n = q.scale(10000)
    relay = q.LossyRelay(server.addr, loss=0.05, dup=0.01, reorder=0.03, delay_ms=10, seed=5)
    phase("5% loss, 1% duplicates, 3% reordered, 10 ms", server, recv, relay, 0, n)
    check(relay.stats["lost"] > 0 and relay.stats["duplicated"] > 0 and relay.stats["reordered"] > 0,
          "the relay did not disturb anything: %r" % dict(relay.stats))
    relay.stop()

    relay = q.LossyRelay(server.addr, loss=0.20, delay_ms=5, seed=7)
    phase("20% loss", server, recv, relay, n, q.scale(3000))
    relay.stop()

    relay = q.LossyRelay(server.addr, delay_ms=5, seed=9)
    m = q.scale(6000)
    secs = phase("5 s blackout", server, recv, relay, 2 * n, m, extra=["--max-rate", "1000"], blackout_after=m // 3,
                 blackout_s=5)
    check(relay.stats["blackout"] > 0, "nothing was sent during the blackout: %r" % dict(relay.stats))
    # 1000/s plus the 5 s gap, plus at most 3 s to find the path again (11.6 s measured for
    # 11 s): a backed-off retransmission timer must not leave the client waiting much longer
    check(secs < m / 1000.0 + 5 + 3 * q.SLOW, "5 s blackout: the send took %.1f s for %.1f s of sending"
          % (secs, m / 1000.0 + 5))
    relay.stop()
    server.stop()
    return "every event acknowledged and delivered once through 5% and 20% loss, duplicates, " \
           "reordering and a 5 s blackout, on one connection"


if __name__ == "__main__":
    q.main(run)
