#!/usr/bin/env python3
"""One source must not take every connection (issue 26 point 8).

1. connections: a server with -m 20 and the default per-source limit (1/8 of -m: 3). One source,
   127.0.0.2, opens more connections than -m allows (clients that hold a half frame, so each
   connection stays open); all but 3 are refused with CONNECTION_REFUSED and a reason that says
   busy, too many connections from this address. Another source, 127.0.0.3, then connects and gets
   its events acknowledged. The refusals are logged a bounded number of times (one line per source
   per 10 s), and counted in the acceptor's stats line. Before the fix the first source took all
   20 places and the second was refused.
2. handshake rate: --max-handshakes-per-source 1 (a burst of 2): one source starting clients in
   batches is refused as soon as it goes beyond the burst and the rate, while another source is
   served at once."""
import os
import re
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

HOG, OTHER = "127.0.0.2", "127.0.0.3"


def holder(server, path, source):
    """A client from `source` that opens a connection and holds it: one stream with half a frame."""
    argv = [q.SEND, "-s", server.addr, "--cert", server.cert, "--test-source-addr", source,
            "--test-hold-streams", "1", "--timeout", "600", path]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=q._pdeathsig)


def half_frame(server):
    path = os.path.join(server.dir, "half.bin")
    with open(path, "wb") as f:
        f.write(struct.pack(">I", 1000) + b"x" * 10)
    return path


def accepted(server):
    counts = re.findall(r"connections accepted (\d+)", server.log())
    return int(counts[-1]) if counts else 0


def src_refused_count(server):
    counts = re.findall(r"refused over per-source limits (\d+)", server.log())
    return int(counts[-1]) if counts else 0


def settle(server, procs, timeout):
    """Waits until every holder either got a connection (counted by the acceptor) or exited;
    returns (holding, refused stderr texts)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in procs if p.poll() is not None]
        if len(done) + accepted(server) >= len(procs):
            break
        time.sleep(0.2)
    refused = [p.communicate()[1] for p in procs if p.poll() is not None]
    return [p for p in procs if p.poll() is None], refused


def kill_all(procs):
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.communicate()


def other_source_served(server, first):
    rc, out, err = q.send(server, q.gen_events(10, first), extra_args=["--test-source-addr", OTHER],
                          timeout=q.tmo(60), client_timeout=int(q.tmo(15)))
    log("other source %s: exit %r, %s" % (OTHER, rc, err.strip()[-200:]))
    check(rc == 0 and q.summary(err) == (10, 10, 0),
          "a client from %s was not served while %s held its share: exit %r %s\nserver log:\n%s"
          % (OTHER, HOG, rc, err[-500:], server.log_tail()))


def part_connections(recv):
    server = q.Server(recv, extra=["-m", "20"], name="persource").start()
    path = half_frame(server)
    n = 24  # more than -m: without a per-source limit this source takes every place
    procs = [holder(server, path, HOG) for _ in range(n)]
    at_exit = procs[:]
    q.at_cleanup(lambda: kill_all(at_exit))
    holding, refused = settle(server, procs, q.tmo(60))
    log("source %s: %d of %d connections held, %d refused; e.g. %s"
        % (HOG, len(holding), n, len(refused), (refused or ["-"])[0].strip()[-160:]))
    other_source_served(server, 1000)
    check(len(holding) <= 3, "one source holds %d connections of -m 20 (per-source default 3)" % len(holding))
    per_source = [e for e in refused if re.search(r"refused the connection \(busy: too many connections from "
                                                  r"this address\)", e)]
    check(len(per_source) >= n - 3,
          "%d of %d refused clients were told busy / too many connections from this address: %r"
          % (len(per_source), len(refused), refused[:2]))
    # the log: one line per source per 10 s at most (plus the count in the stats line)
    deadline = time.monotonic() + q.tmo(10)
    while time.monotonic() < deadline and src_refused_count(server) < len(per_source):
        time.sleep(0.2)
    lines = [l for l in server.log().splitlines() if "new connection(s) from %s" % HOG in l]
    log("log: %d line(s) about %s: %s; stats count %d" % (len(lines), HOG, (lines or ["-"])[0][-200:],
                                                          src_refused_count(server)))
    check(lines and len(lines) <= 3, "%d log lines for %d refusals of one source (expected 1..3):\n%s"
          % (len(lines), len(per_source), "\n".join(lines[:10])))
    check(src_refused_count(server) >= len(per_source), "the stats line counts %d per-source refusals, "
          "the clients saw %d" % (src_refused_count(server), len(per_source)))
    kill_all(procs)
    server.stop()
    return len(holding), len(per_source), len(lines)


def part_rate(recv):
    server = q.Server(recv, extra=["-m", "200", "--max-connections-per-source", "0",
                                   "--max-handshakes-per-source", "1"], name="hsrate").start()
    path = half_frame(server)
    procs, refused, t0 = [], [], time.monotonic()
    for batch in range(5):  # until the source goes past its burst faster than its rate refills it
        new = [holder(server, path, HOG) for _ in range(8)]
        procs += new
        _, r = settle(server, procs, q.tmo(30))
        refused = [e for e in r if "too many new connections from this address" in e]
        if refused:
            break
    elapsed = time.monotonic() - t0
    held = sum(p.poll() is None for p in procs)
    log("handshake rate 1/s, burst 2: %d clients of %s in %.1fs: %d connected, %d refused"
        % (len(procs), HOG, elapsed, held, len(refused)))
    check(refused, "no client of a source starting %d connections in %.1fs was refused at 1 handshake/s"
          % (len(procs), elapsed))
    check(held <= 2 + elapsed + 1, "%d connections in %.1fs at 1 a second with a burst of 2" % (held, elapsed))
    check(re.search(r"refused \d+ new connection\(s\) from %s: busy: too many new connections" % re.escape(HOG),
                    server.log()), "the refusal is not in the log:\n%s" % server.log_tail())
    other_source_served(server, 2000)
    kill_all(procs)
    server.stop()
    return held, len(refused), elapsed


def run():
    q.need_binaries("quicstashd", "quicstash-send")
    q.need_test_hooks("quicstash-send --test-source-addr/--test-hold-streams")
    recv = q.Receiver().start()
    held, refused, lines = part_connections(recv)
    hs_held, hs_refused, secs = part_rate(recv)
    return ("-m 20: one source held %d connections, %d refused (busy, %d log line(s)), another source served; "
            "1 handshake/s: %d connected and %d refused in %.1fs, another source served"
            % (held, refused, lines, hs_held, hs_refused, secs))


if __name__ == "__main__":
    q.main(run)
