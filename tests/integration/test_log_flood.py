#!/usr/bin/env python3
"""A flood of bad frames makes a bounded number of log lines (issue 22 item 4).

100,000 bad frames on one stream (quicstash-send --raw): 50,000 that are not JSON (the parser
rejects them) and 50,000 empty ones (the acceptor rejects them before any parser sees them). The
server runs with --debug, where each rejection has a line of its own at both places, so every one of
the 100,000 reaches a call site that logs. Checked:
  1. the server received them all: the client gets 100,000 rejections and `ack 100000`, and the
     stats lines (--stats-interval 2) count 100,000 rejected;
  2. the server's log holds fewer than 200 lines for the whole run (start, flood, stop);
  3. the rest were counted, not dropped silently: each process reports '... (N similar messages
     suppressed)' once the interval is over (without a further line from that call site: the
     once-a-second tick), and for each call site the lines shown plus the suppressed counts add
     up to exactly the 50,000 frames it rejected."""
import os
import re
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

N = 100000
MAX_LINES = 200
PARSER_RE = re.compile(r"frame \d+ from acceptor \d+ \(client \S+ port \d+\) rejected: ")
ACCEPTOR_RE = re.compile(r"stream \d+ seq \d+ rejected: ")
SUPPRESSED_RE = re.compile(r" \.\.\. \((\d+) similar messages suppressed\)$")
STATS_RE = re.compile(r"stats, last \d+ s: (\d+) events acknowledged \([0-9]+/s\), (\d+) rejected; now ")


def count(lines, site_re):
    """(lines shown, messages suppressed) of one call site, over every process."""
    shown = suppressed = 0
    for line in lines:
        if not site_re.search(line):
            continue
        m = SUPPRESSED_RE.search(line)
        if m:
            suppressed += int(m.group(1))
        else:
            shown += 1
    return shown, suppressed


def run():
    q.need_binaries()
    recv = q.Receiver().start()
    server = q.Server(recv, extra=["--debug", "--stats-interval", "2"], name="logflood")
    server.start()
    bad, empty = struct.pack(">I", 4) + b"{bad", struct.pack(">I", 0)
    data = (bad + empty) * (N // 2)
    t0 = time.monotonic()
    rc, out, err = q.send(server, data, extra_args=["--raw"], timeout=q.tmo(240), client_timeout=int(q.tmo(60)))
    took = time.monotonic() - t0
    rejects = sum(1 for l in out.splitlines() if l.startswith("reject "))
    acks = [int(l.split()[1]) for l in out.splitlines() if l.startswith("ack ")]
    log("flood of %d bad frames: client rc=%r in %.1f s, %d rejections, last ack %r"
        % (N, rc, took, rejects, acks[-1] if acks else None))
    check(rc == 0, "quicstash-send --raw: exit %r; stderr %r" % (rc, err[-500:]))
    check(rejects == N and acks and acks[-1] == N,
          "the server did not answer every frame: %d rejections, acks %r" % (rejects, acks[-3:]))

    # 3. the reports come when the interval ends (10 s), from each process's tick
    deadline = time.monotonic() + q.tmo(30)
    while time.monotonic() < deadline:
        lines = server.log(since_start=True).splitlines()
        p, a = count(lines, PARSER_RE), count(lines, ACCEPTOR_RE)
        if sum(p) == N // 2 and sum(a) == N // 2:
            break
        time.sleep(0.5)
    log("while running: parser lines %d + suppressed %d, acceptor lines %d + suppressed %d"
        % (p[0], p[1], a[0], a[1]))
    check(p[1] > 0 and a[1] > 0, "no '(N similar messages suppressed)' line from the parser and the acceptor "
          "within 30 s; log tail:\n%s" % server.log_tail())
    check(sum(p) == N // 2, "parser: %d lines + %d suppressed != %d rejected frames" % (p[0], p[1], N // 2))
    check(sum(a) == N // 2, "acceptor: %d lines + %d suppressed != %d rejected frames" % (a[0], a[1], N // 2))

    # 1. the server's own count
    deadline = time.monotonic() + q.tmo(10)
    while time.monotonic() < deadline:
        rejected = sum(int(r) for _, r in STATS_RE.findall(server.log(since_start=True)))
        if rejected >= N:
            break
        time.sleep(0.5)
    check(rejected == N, "the stats lines count %d rejected, expected %d" % (rejected, N))

    server.stop()
    # 2. bounded: the whole run, stop included
    lines = server.log(since_start=True).splitlines()
    log("server log: %d lines for %d bad frames" % (len(lines), N))
    check(len(lines) < MAX_LINES, "the server logged %d lines for %d bad frames (limit %d); first 40:\n%s"
          % (len(lines), N, MAX_LINES, "\n".join(lines[:40])))
    return "%d bad frames, all rejected; %d log lines; every suppressed line counted" % (N, len(lines))


if __name__ == "__main__":
    q.main(run)
