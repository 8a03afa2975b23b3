#!/usr/bin/env python3
"""Fault suite: kill -9 of the whole process tree in the middle of a reload (SIGHUP), under load, at
four points of it, each time restarting on the same spool:
1. as the reload begins (the keyholder is being replaced);
2. when the old shipper has stopped and the new one is not serving yet (the spool between owners);
3. as the next acceptor generation starts (two generations, two banks of steering keys);
4. while the old generation drains (its go-away sent, frames of both generations in flight).
The client (fed until the last round is done) keeps sending throughout and makes progress again within seconds of each restart (it
probes a server that owes it answers every second, so it notices the restart even when flow control
had blocked it). Every event it saw acknowledged reaches the receiver, and the spool checks clean at
the end."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

# (what the supervisor or a child logs at that point, what it means)
POINTS = [
    (r"replacing children one at a time", "reload begun"),
    (r"shipper[", "old shipper stopped"),  # with the next line: "shipper stopped"
    (r"of the next generation starting", "next acceptor generation starting"),
    (r"stopping (drain requested)", "old acceptor generation draining"),
]


def wait_marker(server, marker, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = server.log(since_start=True)
        if marker == "shipper[":
            if any(l.startswith("<6>shipper[") and l.endswith("shipper stopped") for l in text.splitlines()):
                return True
        elif marker in text:
            return True
        time.sleep(0.002)
    return False


def run():
    q.need_binaries()
    recv = q.Receiver().start()
    server = q.Server(recv, name="killreload")
    server.start()
    n = q.scale(120000)
    # fed, not a paced file: the client is still sending at round 4 however long the restarts take
    load = q.Load(server, n, client_timeout=int(q.tmo(30)), feed_rate=n / 12)
    load.start_client()
    q.mid_stream(load, 0.05)
    acked_at_kills = set()
    for i, (marker, what) in enumerate(POINTS):
        want = len(load.acked_numbers()) + n // 40  # 0.3 s of the feed
        got = load.client.wait_acked(want, q.tmo(20))
        log("round %d: %d acknowledged, reloading" % (i + 1, got))
        os.kill(server.proc.pid, signal.SIGHUP)
        check(wait_marker(server, marker, q.tmo(20)), "round %d: never saw %r in the log:\n%s"
              % (i + 1, marker, server.log_tail()))
        server.kill_tree()
        acked = load.acked_numbers()
        acked_at_kills |= acked
        log("round %d: kill -9 at '%s' with %d acknowledged" % (i + 1, what, len(acked)))
        check(load.client.running(), "the client exited before round %d (exit %r): %s"
              % (i + 1, load.client.proc.poll(), load.client.stderr()[-500:]))
        server.start()
        t_ready = time.monotonic()
        resumed = load.client.wait_acked(len(acked) + 1, q.tmo(30))
        took = time.monotonic() - t_ready
        log("round %d: the client made progress %.2fs after the restart was ready" % (i + 1, took))
        # Not scaled for sanitizers: the bound is about the client's probe while it waits for answers
        # (1 s; an unprobed client blocked by flow control noticed the restart only at its 10 s
        # keep-alive), and a reconnect takes well under a second in either build.
        check(resumed > len(acked) and took < 5, "round %d: no progress for %.1fs after the restart"
              % (i + 1, took))
        dups = q.verify_delivery(recv, acked, q.tmo(60), what="acknowledged before kill %d" % (i + 1))
    dups = q.finish_after_kills(load, recv, server, q.tmo(90))
    return "kill -9 at 4 points of a reload under load: zero loss (%d acknowledged before the kills), %d duplicates" \
        % (len(acked_at_kills), dups)


if __name__ == "__main__":
    q.main(run)
