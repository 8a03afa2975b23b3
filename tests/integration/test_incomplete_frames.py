#!/usr/bin/env python3
"""Clients that start frames and never finish them cannot exhaust the acceptor's memory.

QUIC flow control bounds what one connection sends ahead (16 MiB with the default 1 MiB frame
limit), not what all connections hold together: a few thousand connections that each open
streams, send most of a large frame and then wait would pin tens of GiB in the acceptor. With
--max-incomplete-bytes 8M:
  1. five hoarders (quicstash-send --test-hold-streams 4: each stream sends a length prefix of
     1 MiB and 900 KiB of it, never the rest, never FIN; ~4 MiB per connection) connect one after
     the other: the acceptor closes hoarders until what it holds fits in 8 MiB again (at most
     two stay), each closed one is told why (CONNECTION_REFUSED, retry later) and the server log
     names it;
  2. meanwhile an ordinary client sending large events (600 KiB, each spread over many packets)
     and small ones is never closed: the largest holder goes first, and that is a hoarder;
  3. a budget smaller than one frame of the largest size is refused at start (exit 2).
"""
import os
import re
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

HOARDERS = 5
BODY = 900 * 1024


def hoard(server, path):
    argv = [q.SEND, "-s", server.addr, "--cert", server.cert, "--test-hold-streams", "4", "--timeout", "600", path]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=q._pdeathsig)


def shed_lines(server):
    return [l for l in server.log().splitlines() if "incomplete frames" in l and "closing the connection" in l]


def shed_count(server):
    """The acceptor's count in its stats line (the warnings are at most one a second)."""
    counts = re.findall(r"closed for hoarding incomplete frames (\d+)", server.log())
    return int(counts[-1]) if counts else 0


def run():
    q.need_binaries("quicstashd", "quicstash-send")
    q.need_test_hooks("quicstash-send --test-hold-streams")
    recv = q.Receiver().start()
    server = q.Server(logstash=recv, extra=["--max-incomplete-bytes", "8M"]).start()
    path = os.path.join(server.dir, "partial.bin")
    with open(path, "wb") as f:
        f.write(struct.pack(">I", 1024 * 1024) + b"x" * BODY)

    procs = []
    for _ in range(HOARDERS):
        procs.append(hoard(server, path))
        time.sleep(q.tmo(0.7))
    deadline = time.monotonic() + q.tmo(20)
    while time.monotonic() < deadline and (shed_count(server) < HOARDERS - 2 or
                                           sum(p.poll() is not None for p in procs) < HOARDERS - 2):
        time.sleep(0.2)
    alive = [p for p in procs if p.poll() is None]
    closed = [p for p in procs if p.poll() is not None]
    log("hoarders: %d closed by the server, %d holding; counted %d; said: %s"
        % (len(closed), len(alive), shed_count(server), (shed_lines(server) or ["-"])[0][-160:]))
    check(len(alive) <= 2, "%d hoarders still hold ~4 MiB each against an 8 MiB budget" % len(alive))
    check(shed_lines(server) and shed_count(server) >= HOARDERS - 2,
          "the server log does not name or count the closed hoarders:\n%s" % server.log_tail())
    for p in closed:
        out, err = p.communicate()
        check("too many incomplete frames" in out + err,
              "a closed hoarder was not told why: %r %r" % (out[-300:], err[-300:]))

    # an ordinary client with large and small events is never the one closed
    big = ['{"n":%d,"pad":"%s"}' % (i, "y" * (600 * 1024)) for i in range(20)]
    small = q.gen_events(2000, start=100)
    rc, out, err = q.send(server, big + small, timeout=q.tmo(120), client_timeout=int(q.tmo(60)))
    log("ordinary client: exit %r, %r, reconnects %d" % (rc, q.summary(err), err.count("reconnecting")))
    check(rc == 0 and q.summary(err) == (2020, 2020, 0) and "reconnecting" not in err,
          "the ordinary client was disturbed: exit %r, %r\n%s" % (rc, q.summary(err), err[-600:]))
    missing = q.arrived([recv], list(range(20)) + list(range(100, 2100)), q.tmo(60))
    check(not missing, "%d acknowledged events missing at Logstash" % len(missing))
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.communicate()
    server.stop()

    p = subprocess.run([q.QUICSTASHD, "--max-incomplete-bytes", "2M", "--max-message-size", "4M"],
                       capture_output=True, text=True, timeout=30)
    check(p.returncode == 2 and "max-incomplete-bytes" in p.stderr,
          "a budget below one largest frame: exit %r, %r" % (p.returncode, p.stderr))
    return "hoarders of incomplete frames closed at the budget (told why), an ordinary client " \
           "with 600 KiB events untouched"


if __name__ == "__main__":
    q.main(run)
