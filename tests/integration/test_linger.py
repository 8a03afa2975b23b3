#!/usr/bin/env python3
"""Small commits linger before they go to Logstash (issue 27, --logstash-linger, default 5 ms).

At everyday rates each group commit holds a few events, and before, each one was its own write to
Logstash: a TCP send per millisecond for the shipper and a wake-up for Logstash. The acknowledgements
never waited for that write (they follow the fdatasync); now the commits of up to 5 ms go in one write,
from memory, unless 64 KiB are waiting.
  writes  quicstash-bench paces 1,000 events/s over 2 connections for 2 s against a default server:
          at most half as many writes to Logstash (quicstash_output_writes_total) as group commits
          (about a fifth expected: a commit a millisecond, a write each 5 ms); with
          `--logstash-linger 0` at least 0.8 (each commit written at once). Every event reaches the
          receiver once, in each connection's order, and the ack p50 stays under 5 ms.
  stop    `--logstash-linger 5000`: the events of a quicstash-send run still wait in the shipper when
          it is told to stop right after their acknowledgements; the stop writes them at once (all at
          the receiver within 3 s of SIGTERM, about 0.4 s here, not after the linger's 5 s) and exits 0.
  burst   `--logstash-linger 1000`, 2,000 events of ~200 bytes at full speed: each time 64 KiB
          wait they go at once, so within 0.5 s of the last acknowledgement the receiver has at least
          half of them (all but the last 64 KiB expected), where a linger of the whole burst would
          hold them all for 1 s from its first commit; the rest follow within the linger."""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qslib as q
from qslib import check, log

RATE = 1000


def paced_run(linger):
    """2 s at RATE over 2 connections; returns (writes per group commit, bench result)."""
    n = RATE * 2
    extra = ["--logstash-linger", str(linger)] if linger is not None else []
    r, m, got = q.counted_run("linger", n, ["-r", str(RATE), "-c", "2", "-S", "1"], extra)
    check(got == n, "the receiver got %d lines for %d events (duplicates?)" % (got, n))
    groups, writes = m["quicstash_spool_group_commits_total"], m["quicstash_output_writes_total"]
    check(groups > 0 and writes > 0, "%d group commits, %d writes counted" % (groups, writes))
    log("linger %s: %d events at %d/s, %d group commits, %d writes to Logstash (%.2f per commit), ack p50 %.2f "
        "ms p99 %.2f ms" % ("default" if linger is None else linger, n, RATE, groups, writes, writes / groups,
                            r["latency_us"]["p50"] / 1e3, r["latency_us"]["p99"] / 1e3))
    return writes / groups, r


def case_writes():
    per_commit, r = paced_run(None)
    check(per_commit <= 0.5, "%.2f writes to Logstash per group commit: small commits do not linger" % per_commit)
    check(r["latency_us"]["p50"] <= 5000, "ack p50 %.2f ms: the acknowledgements waited for Logstash"
          % (r["latency_us"]["p50"] / 1e3))
    off, _ = paced_run(0)
    check(off >= 0.8, "%.2f writes per group commit with --logstash-linger 0: each commit should be written at "
          "once" % off)
    return "%.2f writes per group commit (%.2f with --logstash-linger 0)" % (per_commit, off)


def case_stop():
    recv = q.Receiver()
    recv.start()
    server = q.Server(recv, name="linger-stop", extra=["--logstash-linger", "5000"])
    server.start()
    lines = q.gen_events(50)
    stopper = threading.Thread(target=server.stop)
    try:
        q.send_acked(server, lines, "50 events")
        t0 = time.monotonic()
        stopper.start()
        got = recv.wait_count(len(lines), q.tmo(10))
        arrived = time.monotonic() - t0
        stopper.join(q.tmo(40))
    finally:
        server.kill_tree()
        recv.stop()
    log("the receiver had %d of %d events %.2f s after the stop began" % (got, len(lines), arrived))
    check(got == len(lines), "%d of %d acknowledged events reached Logstash in a clean stop" % (got, len(lines)))
    check(arrived < 3, "the lingering events reached Logstash %.2f s after the stop began: the stop waited "
          "out the linger (5 s) instead of writing them at once" % arrived)
    return "%d of %d at the receiver %.2f s after the stop began" % (got, len(lines), arrived)


def case_burst():
    d = q.mkdtemp("linger-burst")
    n = 2000
    corpus = os.path.join(d, "corpus.jsonl")
    q.write_lines(corpus, q.gen_events(n))
    recv = q.Receiver()
    recv.start()
    server = q.Server(recv, name="linger-burst", extra=["--logstash-linger", "1000"])
    server.start()
    try:
        r = q.bench_run(server, corpus, n, ["-c", "1", "-S", "1"])
        acked_at = time.monotonic()
        got = recv.wait_count(n // 2, 0.5)
        waited = time.monotonic() - acked_at
        log("burst of %d events (%.0f bytes, %.3f s): the receiver had %d of them %.2f s after the last "
            "acknowledgement" % (n, r["acked_bytes"], r["elapsed_s"], got, waited))
        check(got >= n // 2, "%d of %d events at the receiver 0.5 s after a 2,000-event burst was acknowledged: "
              "64 KiB waiting did not go at once" % (got, n))
        check(recv.wait_count(n, q.tmo(10)) == n, "the receiver got %d of %d events" % (recv.count(), n))
        return "%d of %d at the receiver %.2f s after the acknowledgements" % (got, n, waited)
    finally:
        server.stop()
        recv.stop()


CASES = [("writes", case_writes), ("stop", case_stop), ("burst", case_burst)]


def run():
    return "; ".join("%s: %s" % (n, f()) for n, f in CASES)


if __name__ == "__main__":
    q.main(run, cases=CASES)
